"""Graphviz diagrams drawn from the IR.

Nodes show each op and its key arguments (``conv 3×3/2, 64``, from
:func:`archdsl.ops.label_of`); edges show tensor shapes; blocks and named
groups are clusters labelled with their scope. ``depth`` draws the scopes that
many levels deep as single boxes, and ``collapse_repeats`` draws a run of
identical consecutive sibling blocks once, marked ``× N``.

:func:`to_dot` returns DOT source and needs nothing installed; :func:`render`
runs Graphviz's ``dot`` (Debian's ``graphviz`` package, or the static binary
of the ``graphviz-pure`` wheel) to write SVG or PNG.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from ..errors import ArchError
from ..errors import shape_text
from ..ir.graph import inputs_of
from ..ir.ops import REGISTRY, Category, label_of
from .table import describe_scope, scope_chain

FORMATS = ("svg", "png", "pdf", "dot")
_STYLE = {  # category → node attributes; categories not listed are plain white boxes
    Category.CONV: {"fillcolor": "#cfe2f3"},
    Category.LINEAR: {"fillcolor": "#d9ead3"},
    Category.NORM: {"fillcolor": "#eeeeee"},
    Category.POOL: {"fillcolor": "#fce5cd"},
    Category.ACTIVATION: {"fillcolor": "#fff2cc", "fontsize": "9"},
    Category.JOIN: {"shape": "ellipse", "fillcolor": "#f4cccc"},
}
_GLYPH = {"shape": "circle", "width": "0.3", "fixedsize": "true"}  # a join drawn as one symbol (+, ×)


def _style(op: str, label: str) -> dict:
    category = REGISTRY[op].category
    style = _STYLE.get(category, {})
    if category is Category.JOIN and len(label) == 1:
        style = {**style, **_GLYPH}
    return style
def _dims(shape) -> str:
    return shape_text(shape, "×")


_GRAPH = {"fontname": "Helvetica", "fontsize": "11", "nodesep": "0.25", "ranksep": "0.3",
          "labeljust": "l", "ordering": "out", "newrank": "true"}
_NODE = {"shape": "box", "style": "rounded,filled", "fillcolor": "white", "fontname": "Helvetica",
         "fontsize": "10", "height": "0.3"}
_EDGE = {"fontname": "Helvetica", "fontsize": "8", "color": "#555555", "arrowsize": "0.6"}
_IO = {"shape": "ellipse", "fillcolor": "#eeeeee"}


class RenderError(ArchError):
    """Graphviz is missing or failed."""


def find_dot() -> str | None:
    """The Graphviz executable: ``$ARCHDSL_DOT``, ``dot``, or ``graphviz-pure``'s binary."""
    for candidate in (os.environ.get("ARCHDSL_DOT"), "dot", "graphviz-pure"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(attrs: dict) -> str:
    return ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items())


def _params_text(n: int) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f} M params"
    return f"{n / 1e3:.1f} k params" if n >= 1e3 else f"{n} params"


@dataclass
class _Scope:
    path: str
    children: list = field(default_factory=list)  # ("op", node) or ("scope", _Scope), in order
    ops: list = field(default_factory=list)  # every op inside, at any depth


class _Drawing:
    """Builds DOT source for one architecture; see :func:`to_dot`."""

    def __init__(self, arch, depth, collapse_repeats, direction):
        self.arch = arch
        self.graph = arch.graph
        self.scopes = self.graph.graph.get("scopes", {})
        self.depth = depth
        self.collapse = collapse_repeats
        self.direction = direction
        self.lines: list[str] = []
        self.visible: dict[str, str] = {}  # IR node → DOT node id
        self.member: dict[str, tuple] = {}  # IR node → (run id, member index) for collapsed runs
        self.relabel: dict[str, str] = {}  # IR node → label replacing label_of's
        self.signatures: dict[str, tuple] = {}  # scope path → signature (memo)
        self.counter = 0

    def new_id(self, prefix: str = "n") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # ---- the scope tree ------------------------------------------------------------

    def tree(self) -> _Scope:
        root = _Scope("")
        made = {"": root}
        for node, data in self.arch.ops():
            parent = root
            for path in scope_chain(data["name"], self.scopes):
                if path not in made:
                    made[path] = _Scope(path)
                    parent.children.append(("scope", made[path]))
                parent = made[path]
                parent.ops.append(node)
            parent.children.append(("op", node))
            root.ops.append(node)
        return root

    def signature(self, scope: _Scope) -> tuple:
        """What makes two sibling blocks identical: ops, arguments, shapes and wiring, by relative name."""
        if scope.path in self.signatures:
            return self.signatures[scope.path]
        inside = set(scope.ops)
        cut = len(scope.path) + 1
        items = []
        for node in scope.ops:
            data = self.graph.nodes[node]
            # Ops whose rate may grow block by block (EfficientNet's stochastic depth)
            # do not make otherwise identical blocks differ.
            attrs = {} if REGISTRY[data["op"]].traits.varies else data["attrs"]
            sources = tuple(self.graph.nodes[s]["name"][cut:] if s in inside else "<in>"
                            for s in inputs_of(self.graph, node))
            items.append((data["name"][cut:], data["op"], repr(sorted(attrs.items())),
                          tuple(data["in_shapes"]), tuple(data["shape"]), sources))
        nested = tuple((k[cut:], v["kind"], v["block"]) for k, v in self.scopes.items()
                       if k.startswith(scope.path + "."))
        result = (self.scopes[scope.path]["block"], tuple(items), nested)
        self.signatures[scope.path] = result
        return result

    def runs(self, children: list) -> list:
        """Group children into runs: ``[("op", n)]`` or ``[("scope", s), …identical, chained scopes]``."""
        out: list = []
        for kind, item in children:
            if (self.collapse and kind == "scope" and out and out[-1][0][0] == "scope"
                    and self._continues(out[-1], item)):
                out[-1].append((kind, item))
            else:
                out.append([(kind, item)])
        return out

    def _continues(self, run: list, scope: _Scope) -> bool:
        last = run[-1][1]
        if self.signature(last) != self.signature(run[0][1]) or self.signature(scope) != self.signature(last):
            return False
        # Only a chain collapses: the new block reads nothing but the previous one,
        # and the previous one feeds nothing but the new block.
        inside, prev = set(scope.ops), set(last.ops)
        feeds_in = {s for n in scope.ops for s in inputs_of(self.graph, n) if s not in inside}
        feeds_out = {t for n in last.ops for t in self.graph.successors(n) if t not in prev}
        return feeds_in <= prev and feeds_out <= inside

    # ---- emitting --------------------------------------------------------------------

    def emit_children(self, children: list, indent: str) -> None:
        for run in self.runs(children):
            kind, item = run[0]
            if kind == "op":
                self.emit_op(item, indent)
            else:
                self.emit_scope(run, indent)

    def emit_op(self, node: str, indent: str) -> None:
        data = self.graph.nodes[node]
        text = self.relabel.get(node) or label_of(data["op"], data["attrs"])
        attrs = {"label": text, "tooltip": data["name"], **_style(data["op"], text)}
        if data.get("aux"):
            attrs["style"] = "rounded,filled,dashed"
        self.visible[node] = self.new_id()
        self.lines.append(f"{indent}{self.visible[node]} [{_attrs(attrs)}];")

    def emit_scope(self, run: list, indent: str) -> None:
        scope = run[0][1]
        members = [s for _, s in run]
        # Clusters nest like the scopes, so the local name is enough; tooltips hold the path.
        name = scope.path.rsplit(".", 1)[-1]
        if len(members) > 1:
            name += "–" + members[-1].path.rsplit(".", 1)[-1]
        what = describe_scope(scope.path, self.scopes)
        times = f" × {len(members)}" if len(members) > 1 else ""
        aux = self.scopes[scope.path]["kind"] == "aux" or self.graph.nodes[scope.ops[0]].get("aux")
        if self.depth is not None and scope.path.count(".") + 1 >= self.depth:
            box = self.new_id("b")
            params = sum(self.graph.nodes[n]["params"] for n in scope.ops)
            label = f"{name}\n{what}{times}"
            if params:
                label += f"\n{_params_text(params)}" + (" each" if times else "")
            attrs = {"label": label, "tooltip": scope.path, "shape": "box",
                     "style": "filled,bold" + (",dashed" if aux else ""), "fillcolor": "#d0e0e3"}
            self.lines.append(f"{indent}{box} [{_attrs(attrs)}];")
            for index, member in enumerate(members):
                for node in member.ops:
                    self.visible[node] = box
                    self.member[node] = (id(run), index)
            return
        cluster = self.new_id("cluster_")
        label = f"{name}: {what}{times}" if what != "group" else name + times
        self.lines.append(f"{indent}subgraph {cluster} {{")
        style = "rounded,dashed" if aux else "rounded"
        attrs = {"label": label, "style": style, "tooltip": scope.path}
        self.lines.append(f"{indent}  graph [{_attrs(attrs)}];")
        if len(members) == 1:
            self.emit_children(scope.children, indent + "  ")
        else:
            self.emit_repeated(scope, members, run, indent + "  ")
        self.lines.append(f"{indent}}}")

    def emit_repeated(self, scope: _Scope, members: list, run: list, indent: str) -> None:
        """Draw the first block of a run; map the others' ops onto it."""
        for node in scope.ops:  # labels that vary along the run show first … last
            rel = self.graph.nodes[node]["name"][len(scope.path):]
            ends = [self.graph.nodes[m.path + rel] for m in (members[0], members[-1])]
            first, last = (label_of(d["op"], d["attrs"]) for d in ends)
            if first != last:
                self.relabel[node] = f"{first} … {last.split()[-1]}"
        self.emit_children(scope.children, indent)
        for index, member in enumerate(members):
            for node in member.ops:
                twin = scope.path + self.graph.nodes[node]["name"][len(member.path):]
                self.visible[node] = self.visible[twin]
                self.member[node] = (id(run), index)

    def emit_edges(self) -> None:
        edges: list = []
        seen: set = set()
        nodes = self.graph.nodes
        # Spec order, auxiliary heads last: with ordering=out, side heads go to the right.
        for src, dst in sorted(self.graph.edges, key=lambda e: (bool(nodes[e[1]].get("aux")),
                                                                 nodes[e[1]]["order"],
                                                                 self.graph.edges[e]["index"])):
            a, b = self.visible.get(src), self.visible.get(dst)
            if a is None or b is None or a == b or (a, b) in seen:
                continue
            ms, md = self.member.get(src), self.member.get(dst)
            if ms and md and ms[0] == md[0] and ms[1] != md[1]:
                continue  # between two copies of a collapsed run
            seen.add((a, b))
            edges.append((a, b, src, dst))
        for a, b, src, dst in edges:
            attrs = {"label": " " + _dims(self.graph.nodes[src]["shape"])}
            if self.graph.nodes[dst].get("aux"):
                attrs["style"] = "dashed"
            self.lines.append(f"  {a} -> {b} [{_attrs(attrs)}];")
        self.emit_branch_ranks([(a, b) for a, b, _, _ in edges])

    def emit_branch_ranks(self, edges: list) -> None:
        """Start parallel branches on one rank, so they read left to right in spec order.

        Without this, dot lets a short branch sink towards its join and often
        swaps it with a longer sibling (ShuffleNet's units, Inception's branches).
        """
        shown = nx.DiGraph(edges)
        taken: set = set()
        for node in list(shown):
            heads = list(shown.successors(node))
            if len(heads) < 2:
                continue
            below = {h: nx.descendants(shown, h) for h in heads}
            heads = [h for h in heads if not any(h in below[o] for o in heads if o != h)]
            if len(heads) > 1 and not taken.intersection(heads):
                taken.update(heads)
                self.lines.append("  {rank=same; " + "; ".join(heads) + "}")

    def source(self) -> str:
        arch = self.arch
        self.lines = [
            f"digraph {_quote(arch.name)} {{",
            f"  graph [{_attrs({**_GRAPH, 'rankdir': self.direction, 'tooltip': arch.name})}];",
            f"  node [{_attrs(_NODE)}];",
            f"  edge [{_attrs(_EDGE)}];",
        ]
        for name, shape in arch.inputs.items():  # one box per input, one per output, keys shown
            box = "input" if name == "input" else self.new_id("in")
            self.lines.append(f"  {box} [{_attrs({'label': f'{name} {_dims(shape)}', **_IO})}];")
            self.visible[name] = box
        self.emit_children(self.tree().children, "  ")
        outputs = [(key, node, False) for key, node in arch.outputs.items()]
        outputs += [(name, node, True) for name, node in sorted(arch.aux_outputs.items())]
        for name, node, aux in outputs:
            out = self.new_id("out")
            attrs = {"label": f"{name} {_dims(self.graph.nodes[node]['shape'])}", **_IO}
            if aux:
                attrs["style"] = "filled,dashed"
            self.lines.append(f"  {out} [{_attrs(attrs)}];")
            self.lines.append(f"  {self.visible[node]} -> {out}" + (" [style=dashed];" if aux else ";"))
        self.emit_edges()
        self.lines.append("}")
        return "\n".join(self.lines) + "\n"



def to_dot(arch, depth: int | None = None, collapse_repeats: bool = False, direction: str = "TB") -> str:
    """DOT source for ``arch``'s diagram (needs no Graphviz installed).

    ``depth=N`` draws scopes N levels deep (``layer1`` is level 1,
    ``layer1.0`` level 2) as single boxes; ``collapse_repeats`` draws a run of
    identical, chained sibling blocks once, labelled ``× N``; ``direction`` is
    ``"TB"`` (top to bottom) or ``"LR"``.
    """
    if depth is not None and depth < 1:
        raise RenderError(f"depth must be at least 1, got {depth}")
    if direction not in ("TB", "LR"):
        raise RenderError(f"direction must be TB or LR, got {direction!r}")
    return _Drawing(arch, depth, collapse_repeats, direction).source()


def run_dot(source: str, fmt: str) -> bytes:
    """Lay out DOT ``source`` with Graphviz and return the ``fmt`` output (``svg``, ``png``…)."""
    dot = find_dot()
    if dot is None:
        raise RenderError("Graphviz's `dot` was not found on PATH; install it with "
                          "`apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
                          "or `pip install graphviz-pure` (a static binary; or point $ARCHDSL_DOT at it)")
    result = subprocess.run([dot, f"-T{fmt}"], input=source.encode(), capture_output=True)
    if result.returncode != 0:
        raise RenderError(f"{Path(dot).name} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def render(arch, path, depth: int | None = None, collapse_repeats: bool = False,
           direction: str = "TB") -> Path:
    """Write ``arch``'s diagram to ``path``; the suffix picks the format (.svg, .png, .pdf, .dot)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise RenderError(f"cannot tell the format from {str(path)!r}; use one of: "
                          + ", ".join("." + f for f in FORMATS))
    source = to_dot(arch, depth, collapse_repeats, direction)
    path.write_bytes(source.encode() if fmt == "dot" else run_dot(source, fmt))
    return path


def repr_svg(arch) -> str | None:
    """``Architecture._repr_svg_`` for Jupyter: repeats collapsed; None (text repr) without Graphviz."""
    if find_dot() is None:
        return None
    return run_dot(to_dot(arch, collapse_repeats=True), "svg").decode()
