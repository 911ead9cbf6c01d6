"""Compare networks: parameters, MACs, input size and published ImageNet accuracy.

Parameters and MACs come from the IR (nothing is allocated). For bundled
names, the ImageNet-1K top-1 accuracy is torchvision's weights metadata
(``get_model_weights(name).DEFAULT.meta``) as recorded in
``archdsl/published.json`` (see :mod:`archdsl.published`): torchvision is
not imported, and an unknown name simply leaves the accuracy out.
"""

from __future__ import annotations

import math

from .errors import ArchError, shape_text
from .backends.table import CONVENTION
from .published import published


def published_top1(name: str) -> dict | None:
    """torchvision's published ImageNet-1K top-1 for ``name``'s default weights, or None.

    Returns ``{"top1", "crop", "weights", "source"}``: the accuracy (percent),
    the centre crop it was measured at, the weights enum member and the
    torchvision release it was read from.
    """
    facts = published(name)
    if facts is None or facts["top1"] is None:
        return None
    return {key: facts[key] for key in ("top1", "crop", "weights", "source")}


def compare(specs: list[str]) -> list[dict]:
    """One row per spec (path or bundled name): params, MACs, input and published top-1.

    Parameters exclude auxiliary heads (they are dropped for inference), and
    MACs are counted at each network's own default input size.
    """
    from .api import list_models, load

    bundled = set(list_models())
    rows = []
    for spec in specs:
        arch = load(spec)
        row = {"name": spec if spec in bundled else arch.name, "spec": spec, "family": arch.family,
               "params": arch.parameter_count(include_aux=False), "macs": arch.macs(),
               "input_shape": list(arch.input_shape), "top1": None, "top1_crop": None,
               "top1_weights": None, "top1_source": None}
        published = published_top1(spec) if spec in bundled else None
        if published:
            row.update(top1=published["top1"], top1_crop=published["crop"],
                       top1_weights=published["weights"], top1_source=published["source"])
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The comparison as an aligned text table with its footnotes."""
    head = ("name", "params", "GMACs", "input", "top-1 %")
    cells = []
    other_crop = False
    for r in rows:
        top1 = "-" if r["top1"] is None else f"{r['top1']:.2f}"
        if r["top1"] is not None and r["top1_crop"] not in (None, r["input_shape"][-1]):
            top1 += f" (@{r['top1_crop']})"
            other_crop = True
        cells.append((r["name"], f"{r['params']:,}", f"{r['macs'] / 1e9:.3f}",
                      shape_text(r["input_shape"]), top1))
    widths = [max(len(head[i]), *(len(c[i]) for c in cells)) for i in range(5)]

    def line(c):
        return (f"{c[0]:<{widths[0]}}  {c[1]:>{widths[1]}}  {c[2]:>{widths[2]}}  "
                f"{c[3]:<{widths[3]}}  {c[4]:>{widths[4]}}").rstrip()

    out = [line(head), "-" * len(line(head))] + [line(c) for c in cells]
    out.append("")
    out.append("params: without auxiliary heads; GMACs at each network's own input; " + CONVENTION + ".")
    sources = sorted({r["top1_source"] for r in rows if r["top1_source"]})
    if sources:
        out.append("top-1: ImageNet-1K acc@1 of torchvision's DEFAULT weights, read from "
                   f"{', '.join(sources)} (get_model_weights(name).DEFAULT.meta['_metrics'])"
                   + ("; (@N): measured at a centre crop of N pixels" if other_crop else ""))
    return "\n".join(out)


# ---- the bubble chart -----------------------------------------------------------------

def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _place_labels(ax, points, fig) -> list:
    """Put each bubble's name beside it where it overlaps the fewest labels and bubbles.

    Returns the labels' boxes in display pixels.
    """
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    scale = fig.dpi / 72.0
    bubbles = []
    for x, y, size, _ in points:
        cx, cy = to_px((x, y))
        r = math.sqrt(size) / 2 * scale
        bubbles.append(Bbox.from_extents(cx - r, cy - r, cx + r, cy + r))
    frame = ax.get_window_extent(renderer)
    placed = []
    directions = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
    order = sorted(range(len(points)), key=lambda i: -points[i][2])  # big bubbles choose first
    for i in order:
        x, y, size, name = points[i]
        radius = math.sqrt(size) / 2 + 2  # points
        best = None
        for gap in (0, 12, 26):
            for dx, dy in directions:
                norm = math.hypot(dx, dy)
                off = ((radius + gap) * dx / norm, (radius + gap) * dy / norm)
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                text = ax.annotate(name, (x, y), xytext=off, textcoords="offset points", ha=ha, va=va,
                                   fontsize=9, arrowprops=dict(arrowstyle="-", color="#777777", lw=0.6)
                                   if gap else None)
                box = text.get_window_extent(renderer).expanded(1.05, 1.15)
                cost = sum(_overlap(box, p) for p in placed)
                cost += 0.5 * sum(_overlap(box, b) for j, b in enumerate(bubbles) if j != i)
                cost += 10 * (box.width * box.height - _overlap(box, frame))  # stay inside the axes
                cost += gap * 4  # prefer labels next to their bubble
                if best is None or cost < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (cost, text, box)
                else:
                    text.remove()
            if best[0] <= gap * 4:
                break
        placed.append(best[2])
    return placed


PLOT_NEEDS = "--plot needs matplotlib: pip install 'archdsl[vision]'"


def plot(rows: list[dict], path) -> list[str]:
    """Draw the bubble chart (MACs on a log x axis, top-1 on y, area ∝ parameters) to ``path``.

    Returns the names left out for want of a published accuracy.
    """
    fig, _ = draw_chart(rows)  # first: it says which extra a missing matplotlib comes with
    import matplotlib.pyplot as plt

    fig.savefig(path)
    plt.close(fig)
    return [r["name"] for r in rows if r["top1"] is None]


def draw_chart(rows: list[dict]):
    """The bubble chart as a matplotlib figure, and its labels' boxes in display pixels."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ArchError(PLOT_NEEDS) from None
    shown = [r for r in rows if r["top1"] is not None]
    if not shown:
        raise ArchError("nothing to plot: none of the networks has a published top-1 accuracy "
                        "(only bundled names that torchvision has weights for do)")
    biggest = max(r["params"] for r in shown)

    def area(params):  # marker area in points²
        return max(40.0, 2400.0 * params / biggest)

    fig, ax = plt.subplots(figsize=(10, 6), dpi=110)
    families = sorted({r["family"] for r in shown})
    colours = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    points = []
    for r in shown:
        gmacs = r["macs"] / 1e9
        ax.scatter(gmacs, r["top1"], s=area(r["params"]), color=colours[r["family"]], alpha=0.55,
                   edgecolors="black", linewidths=0.6, zorder=3)
        points.append((gmacs, r["top1"], area(r["params"]), r["name"]))
    ax.set_xscale("log")
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    ax.set_xlim(min(xs) / 2.2, max(xs) * 2.2)
    ax.set_ylim(min(ys) - 3, max(ys) + 3)
    ax.grid(True, which="both", alpha=0.25)
    ax.set_xlabel("GMACs per image (log scale; convs + linears, torchvision _ops convention)")
    ax.set_ylabel("ImageNet-1K top-1 accuracy (%)")
    ax.set_title("Accuracy vs compute (bubble area ∝ parameters)")
    for millions in _size_keys(biggest):
        ax.scatter([], [], s=area(millions * 1e6), color="white", edgecolors="black", linewidths=0.6,
                   label=f"{millions:g} M params")
    ax.legend(title="bubble area", loc="center left", bbox_to_anchor=(1.01, 0.5), labelspacing=2.6,
              borderpad=1.3, handlelength=5, handletextpad=0.8, frameon=False, fontsize=8,
              title_fontsize=8)
    sources = sorted({r["top1_source"] for r in shown})
    fig.text(0.01, 0.01, f"top-1: {', '.join(sources)} weights metadata (DEFAULT weights)",
             fontsize=7, color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig, _place_labels(ax, points, fig)


def _size_keys(biggest: int) -> list[float]:
    """Two or three round parameter counts for the size legend."""
    keys = [k for k in (1, 5, 25, 100, 500) if k * 1e6 <= biggest * 1.05]
    return keys[-3:] or [round(biggest / 1e6, 1)]
