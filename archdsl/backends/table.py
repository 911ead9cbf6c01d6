"""Per-layer summary of an elaborated network: shapes, parameters, MACs, memory.

Everything here reads the IR only (:mod:`archdsl.ir.ops` already counted each op's
parameters and MACs at elaboration), so summarising EfficientNet-B7 allocates
no weights and never imports torch.

MACs follow torchvision's ``_ops`` convention: multiply-accumulates of
convolutions and linear layers only, auxiliary heads excluded (they run only
in training mode). Many papers and tools (Darknet, Ultralytics) print
FLOPs = 2 × MACs instead.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..errors import SpecError, shape_text
from ..ir.ops import label_of

CONVENTION = ("MACs = multiply-accumulates of convolutions and linear layers, one image, "
              "auxiliary heads excluded (torchvision's _ops convention; FLOPs elsewhere are often 2 x MACs)")
BYTES_PER_ELEMENT = 4  # float32


# ---- scopes -----------------------------------------------------------------------------

def scope_chain(name: str, scopes: dict) -> list[str]:
    """The scopes enclosing op ``name``, outermost first (``layer1``, ``layer1.0``)."""
    parts = name.split(".")
    prefixes = (".".join(parts[:i]) for i in range(1, len(parts)))
    return [p for p in prefixes if p in scopes]


def group_at(name: str, scopes: dict, depth: int | None) -> str:
    """The row an op belongs to at ``depth``: its enclosing scope of that depth, or itself."""
    if depth is None:
        return name
    chain = scope_chain(name, scopes)
    deep = [s for s in chain if s.count(".") + 1 == depth]
    return deep[0] if deep else name


def describe_scope(path: str, scopes: dict) -> str:
    """What a scope is: its block's name, ``n × block`` for a stage of equal blocks, or ``group``."""
    info = scopes[path]
    if info["kind"] == "block":
        return info["block"]
    children = [k for k in scopes if k.startswith(path + ".") and "." not in k[len(path) + 1:]]
    blocks = {scopes[k]["block"] for k in children}
    if children and len(blocks) == 1 and None not in blocks:
        return f"{len(children)} × {blocks.pop()}"
    return "aux head" if info["kind"] == "aux" else "group"


# ---- the summary ------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the table: an op, or a scope collapsed at the chosen depth."""
    name: str
    op: str
    shape: tuple
    params: int
    macs: int
    ops: int = 1
    aux: bool = False
    init: dict = field(default_factory=dict)  # role → initialiser text, as the spec declares

    def to_dict(self) -> dict:
        out = {"name": self.name, "op": self.op, "shape": list(self.shape), "params": self.params,
               "macs": self.macs, "ops": self.ops, "aux": self.aux}
        if self.init:
            out["init"] = dict(self.init)
        return out


@dataclass
class Summary:
    """The per-layer table and the totals; ``str()`` gives the printed table."""
    name: str
    source: str
    input_shape: tuple
    output_shape: tuple
    depth: int | None
    rows: list = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)   # every input's name and shape
    outputs: dict = field(default_factory=dict)  # every output's key and shape, in order
    init: list = field(default_factory=list)  # [{"tensor": "conv.weight", "init": text, "count": n}]

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape), "depth": self.depth,
                "inputs": {k: list(v) for k, v in self.inputs.items()},
                "outputs": {k: list(v) for k, v in self.outputs.items()},
                "convention": CONVENTION, "rows": [r.to_dict() for r in self.rows],
                "totals": dict(self.totals), "init": list(self.init)}

    def __str__(self) -> str:
        return format_summary(self)

    __repr__ = __str__


def summarize(arch, depth: int | None = None) -> Summary:
    """Build the :class:`Summary` of an :class:`~archdsl.ir.Architecture`.

    ``depth=None`` gives one row per op; ``depth=N`` one row per scope N levels
    deep (e.g. ``layer1`` at 1, ``layer1.0`` at 2), ops outside such scopes
    keeping their own rows.
    """
    if depth is not None and depth < 1:
        raise SpecError(f"depth must be at least 1, got {depth}")
    scopes = arch.ir.graph.get("scopes", {})
    rows: list[Row] = []
    current = None
    for _, data in arch.ops():
        key = group_at(data["name"], scopes, depth)
        aux = bool(data.get("aux"))
        if rows and key == current:
            row = rows[-1]
            row.shape, row.params, row.macs = data["shape"], row.params + data["params"], row.macs + data["macs"]
            row.ops += 1
            continue
        current = key
        op = describe_scope(key, scopes) if key != data["name"] else label_of(data["op"], data["attrs"])
        inits = {role: init.text() for role, init in (data.get("init") or {}).items()} \
            if key == data["name"] else {}
        rows.append(Row(key, op, tuple(data["shape"]), data["params"], data["macs"], 1, aux, inits))
    return Summary(arch.name, arch.source, tuple(arch.input_shape), tuple(arch.output_shape), depth,
                   rows, totals(arch), dict(arch.inputs),
                   arch.output_shapes if arch.returns_dict else {}, declared_inits(arch))


def declared_inits(arch) -> list[dict]:
    """The spec's initialisers, grouped: ``{"tensor": "conv.weight", "init": text, "count": n}``."""
    counts: dict = {}
    for _, data in arch.ops():
        for role, init in (data.get("init") or {}).items():
            key = (f"{data['op']}.{role}", init.text())
            counts[key] = counts.get(key, 0) + 1
    return [{"tensor": tensor, "init": text, "count": n} for (tensor, text), n in counts.items()]


def totals(arch) -> dict:
    """Network totals: parameters, buffers, MACs and float32 memory for one image."""
    params = arch.parameter_count()
    buffers = arch.buffer_count()
    activations = sum(math.prod(d["shape"]) for _, d in arch.ops(include_aux=False))
    out = {
        "params": params,
        "trainable_params": params,
        "buffers": buffers,
        "macs": arch.macs(),
        "activation_bytes": activations * BYTES_PER_ELEMENT,
        "param_bytes": params * BYTES_PER_ELEMENT,
        "buffer_bytes": buffers * BYTES_PER_ELEMENT,
        "ops": sum(1 for _ in arch.ops()),
    }
    if arch.aux_outputs:
        out["params_without_aux"] = arch.parameter_count(include_aux=False)
    return out


# ---- text -----------------------------------------------------------------------------------

def _count(n: int) -> str:
    return f"{n:,}" if n else "-"


def _display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if relative.startswith("..") else relative


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _io_line(summary: Summary) -> str:
    """``input 3x224x224 -> output 1000``; every input and output by name when there are several."""
    if len(summary.inputs) > 1:
        ins = "inputs " + ", ".join(f"{k} {shape_text(v)}" for k, v in summary.inputs.items())
    else:
        ins = f"input {shape_text(summary.input_shape)}"
    if summary.outputs:
        return ins + " -> outputs " + ", ".join(f"{k!r} {shape_text(v)}" for k, v in summary.outputs.items())
    return ins + f" -> output {shape_text(summary.output_shape)}"


def format_summary(summary: Summary) -> str:
    """The summary as an aligned text table with a header and totals."""
    cells = [(r.name + (" (aux)" if r.aux else ""), r.op, shape_text(r.shape), _count(r.params),
              _count(r.macs)) for r in summary.rows]
    head = ("name", "op" if summary.depth is None else "op / block", "output", "params", "MACs")
    widths = [max(len(head[i]), *(len(c[i]) for c in cells)) if cells else len(head[i]) for i in range(5)]

    def line(c):
        return (f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:<{widths[2]}}  "
                f"{c[3]:>{widths[3]}}  {c[4]:>{widths[4]}}").rstrip()

    t = summary.totals
    rule = "-" * len(line(head))
    out = [f"{summary.name}  ({_display_path(summary.source)})", _io_line(summary)
           + (f"; one row per scope {summary.depth} deep" if summary.depth else "; one row per op"),
           CONVENTION, rule, line(head), rule]
    out += [line(c) for c in cells]
    out.append(rule)
    params = f"{t['params']:,} trainable"
    if "params_without_aux" in t:
        params += f" ({t['params_without_aux']:,} without auxiliary heads)"
    out += [
        f"parameters         {params}; {t['buffers']:,} buffer elements",
        f"MACs               {t['macs']:,} ({t['macs'] / 1e9:.3f} G)",
        f"activation memory  {_mib(t['activation_bytes'])} (float32, one image, sum of op outputs)",
        f"parameter memory   {_mib(t['param_bytes'])} (float32; buffers {_mib(t['buffer_bytes'])})",
    ]
    for i, item in enumerate(summary.init):  # the spec's initialisation; other tensors: torch's default
        out.append(f"{'initialisation' if i == 0 else '':<19}{item['tensor']} = {item['init']} "
                   f"({item['count']} op{'s' * (item['count'] != 1)})")
    return "\n".join(out)

