"""The primitive op registry: argument schemas, shape rules, parameter and MAC counts.

Each op lives in one :class:`OpDef`. This module never imports torch, so
analysis (summary, render, scale) runs without allocating anything; the torch
factories live in :mod:`archdsl.torch_backend`, keyed by the same names.

Shapes exclude the batch: ``(C, H, W)`` for feature maps, ``(F,)`` for vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from .expr import describe


class ArgProblem(Exception):
    """An argument value is invalid; the elaborator adds the span of ``arg`` (a name or index)."""

    def __init__(self, message: str, arg=None):
        super().__init__(message)
        self.arg = arg


class ShapeProblem(Exception):
    """The op cannot take its input shape; the elaborator adds the span."""


_REQUIRED = object()


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str  # positive_int, nonneg_int, number, probability, boolean, pair, padding, number_list, choice
    default: Any = _REQUIRED
    choices: tuple = ()

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def describe(self) -> str:
        return {
            "positive_int": "a positive integer", "nonneg_int": "a non-negative integer",
            "number": "a number", "probability": "a number in [0, 1)", "boolean": "true or false",
            "pair": "a positive integer or a pair of them",
            "padding": "a non-negative integer, a pair of them, or \"same\"",
            "number_list": "a list of numbers",
            "choice": "one of " + ", ".join(repr(c) for c in self.choices),
            "size": "a positive integer or a pair of them",
        }[self.kind]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(arg: Arg, value):
    try:
        return _check_kind(arg, value)
    except ArgProblem as problem:
        raise ArgProblem(str(problem), arg.name) from None


def _check_kind(arg: Arg, value):
    kind = arg.kind
    if kind in ("positive_int", "nonneg_int"):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is_int(value) or value < (1 if kind == "positive_int" else 0):
            raise ArgProblem(f"{arg.name} must be {arg.describe()}, got {value!r}")
        return value
    if kind == "number":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ArgProblem(f"{arg.name} must be a number, got {describe(value)}")
        return float(value)
    if kind == "probability":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise ArgProblem(f"{arg.name} must be {arg.describe()}, got {value!r}")
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ArgProblem(f"{arg.name} must be true or false, got {describe(value)}")
        return value
    if kind in ("pair", "size", "padding"):
        if kind == "padding" and value == "same":
            return "same"
        low = 0 if kind == "padding" else 1
        items = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
        if len(items) != 2 or not all(_is_int(v) and v >= low for v in items):
            raise ArgProblem(f"{arg.name} must be {arg.describe()}, got {value!r}")
        return items
    if kind == "number_list":
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ArgProblem(f"{arg.name} must be a list of numbers, got {describe(value)}")
        return tuple(float(v) for v in value)
    if kind == "choice":
        if value not in arg.choices:
            raise ArgProblem(f"{arg.name} must be {arg.describe()}, got {value!r}")
        return value
    raise AssertionError(kind)


@dataclass(frozen=True)
class OpDef:
    """One primitive op: its arguments and the rules the compiler needs."""

    name: str
    args: tuple
    shape: Callable[[dict, tuple], tuple]
    doc: str
    params: Callable[[dict, tuple, tuple], int] = lambda a, i, o: 0
    buffers: Callable[[dict, tuple, tuple], int] = lambda a, i, o: 0
    macs: Callable[[dict, tuple, tuple], int] = lambda a, i, o: 0
    label: Callable[[dict], str] | None = None
    inputs: int = 1  # -1: any number (joins)

    def signature(self) -> str:
        parts = [a.name if a.required else f"{a.name}={a.default!r}" for a in self.args]
        return f"{self.name}({', '.join(parts)})"


REGISTRY: dict[str, OpDef] = {}
JOINS = ("add", "mul", "concat")


def register(op: OpDef) -> OpDef:
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} registered twice")
    REGISTRY[op.name] = op
    return op


def bind_op_args(op: OpDef, args: list, kwargs: dict) -> dict:
    """Validate and normalise call arguments into the op's attribute dict."""
    if len(args) > len(op.args):
        raise ArgProblem(f"{op.name} takes at most {len(op.args)} positional arguments, "
                         f"got {len(args)}", len(op.args))
    bound = dict(zip((a.name for a in op.args), args))
    names = [a.name for a in op.args]
    for key, value in kwargs.items():
        if key not in names:
            raise ArgProblem(f"{op.name} has no argument {key!r}", key)
        if key in bound:
            raise ArgProblem(f"{op.name} got two values for {key!r}", key)
        bound[key] = value
    attrs = {}
    for arg in op.args:
        if arg.name in bound:
            value = bound[arg.name]
            attrs[arg.name] = None if value is None and not arg.required else _check(arg, value)
        elif arg.required:
            raise ArgProblem(f"{op.name} is missing the argument {arg.name!r}")
        else:
            attrs[arg.name] = arg.default
    return attrs


# ---- shape helpers -------------------------------------------------------------

def _spatial(shape: tuple, op: str) -> tuple:
    if len(shape) != 3:
        raise ShapeProblem(f"{op} needs a CxHxW feature map, got a flat vector of {shape[0]}")
    return shape


def _window_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool, what: str) -> int:
    """PyTorch's output-size rule for convolution and pooling windows."""
    span = d * (k - 1) + 1
    room = size + 2 * p - span
    out = (room + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input
        out -= 1
    if out < 1 or (room < 0 and not ceil_mode):
        raise ShapeProblem(f"{what} {k} (spanning {span}) is larger than its padded input {size + 2 * p}")
    return out


def _shape_str(shape) -> str:
    return "x".join(str(d) for d in shape)


# ---- convolution, normalisation -------------------------------------------------

def _conv_shape(a, ins):
    c, h, w = _spatial(ins[0], "conv")
    if c % a["groups"] or a["out"] % a["groups"]:
        raise ShapeProblem(f"groups={a['groups']} must divide both the input channels ({c}) "
                           f"and the output channels ({a['out']})")
    (kh, kw), (sh, sw), (dh, dw) = a["kernel"], a["stride"], a["dilation"]
    if a["padding"] == "same":
        if (sh, sw) != (1, 1):
            raise ShapeProblem("padding=\"same\" needs stride 1")
        return (a["out"], h, w)
    ph, pw = a["padding"]
    return (a["out"], _window_out(h, kh, sh, ph, dh, False, "kernel"),
            _window_out(w, kw, sw, pw, dw, False, "kernel"))


def _conv_params(a, ins, out):
    kh, kw = a["kernel"]
    return a["out"] * (ins[0][0] // a["groups"]) * kh * kw + (a["out"] if a["bias"] else 0)


def _conv_macs(a, ins, out):
    kh, kw = a["kernel"]
    return a["out"] * (ins[0][0] // a["groups"]) * kh * kw * out[1] * out[2]


def _pair_text(p):
    return str(p[0]) if p[0] == p[1] else f"{p[0]}×{p[1]}"


def _conv_label(a):
    k = a["kernel"]
    text = f"conv {k[0]}×{k[1]}"
    if a["stride"] != (1, 1):
        text += f"/{_pair_text(a['stride'])}"
    text += f", {a['out']}"
    if a["groups"] > 1:
        text += f", g{a['groups']}"
    if a["dilation"] != (1, 1):
        text += f", d{_pair_text(a['dilation'])}"
    return text


register(OpDef(
    "conv", (Arg("out", "positive_int"), Arg("kernel", "pair"), Arg("stride", "pair", (1, 1)),
             Arg("padding", "padding", (0, 0)), Arg("dilation", "pair", (1, 1)),
             Arg("groups", "positive_int", 1), Arg("bias", "boolean", True)),
    _conv_shape, "2-D convolution; input channels are inferred.",
    params=_conv_params, macs=_conv_macs, label=_conv_label))


def _norm_shape(a, ins):
    return ins[0]


register(OpDef(
    "batchnorm", (Arg("eps", "number", 1e-5), Arg("momentum", "number", 0.1)),
    _norm_shape, "Batch normalisation over channels (2-D maps) or features (vectors).",
    params=lambda a, i, o: 2 * i[0][0], buffers=lambda a, i, o: 2 * i[0][0] + 1,
    label=lambda a: "batchnorm"))

register(OpDef(
    "lrn", (Arg("size", "positive_int"), Arg("alpha", "number", 1e-4), Arg("beta", "number", 0.75),
            Arg("k", "number", 1.0)),
    lambda a, ins: _spatial(ins[0], "lrn"), "Local response normalisation across channels.",
    label=lambda a: f"lrn {a['size']}"))


def _affine_shape(a, ins):
    c = ins[0][0]
    for key in ("scale", "shift"):
        if len(a[key]) != c:
            raise ShapeProblem(f"channel_affine {key} has {len(a[key])} values for {c} channels")
    return ins[0]


register(OpDef(
    "channel_affine", (Arg("scale", "number_list"), Arg("shift", "number_list")),
    _affine_shape, "Fixed per-channel x * scale + shift (e.g. re-normalising inputs); no parameters.",
    label=lambda a: "channel affine"))

ACTIVATIONS = ("relu", "relu6", "silu", "gelu", "sigmoid", "hardsigmoid", "hardswish", "tanh")
for _name in ACTIVATIONS:
    register(OpDef(_name, (), lambda a, ins: ins[0], f"Elementwise {_name}."))


# ---- pooling -------------------------------------------------------------------

def _pool_shape(kind):
    def shape(a, ins):
        c, h, w = _spatial(ins[0], kind)
        k = a["kernel"]
        s = a["stride"] or k
        p = a["padding"]
        if p[0] > k[0] // 2 or p[1] > k[1] // 2:
            raise ShapeProblem(f"{kind} padding {p} must be at most half the kernel {k}")
        return (c, _window_out(h, k[0], s[0], p[0], 1, a["ceil_mode"], "window"),
                _window_out(w, k[1], s[1], p[1], 1, a["ceil_mode"], "window"))
    return shape


def _pool_label(kind):
    def label(a):
        k, s = a["kernel"], a["stride"] or a["kernel"]
        return f"{kind} {k[0]}×{k[1]}" + (f"/{_pair_text(s)}" if s != (1, 1) else "")
    return label


register(OpDef(
    "maxpool", (Arg("kernel", "pair"), Arg("stride", "pair", None), Arg("padding", "pair", (0, 0)),
                Arg("ceil_mode", "boolean", False)),
    _pool_shape("maxpool"), "Max pooling; stride defaults to the kernel.",
    label=_pool_label("maxpool")))

register(OpDef(
    "avgpool", (Arg("kernel", "pair"), Arg("stride", "pair", None), Arg("padding", "pair", (0, 0)),
                Arg("ceil_mode", "boolean", False), Arg("count_include_pad", "boolean", True)),
    _pool_shape("avgpool"), "Average pooling; stride defaults to the kernel.",
    label=_pool_label("avgpool")))


def _adaptive_shape(kind):
    def shape(a, ins):
        c, _, _ = _spatial(ins[0], kind)
        return (c, *a["size"])
    return shape


for _kind in ("adaptive_avgpool", "adaptive_maxpool"):
    register(OpDef(_kind, (Arg("size", "size"),), _adaptive_shape(_kind),
                   "Pool to a fixed output size.",
                   label=lambda a, k=_kind: f"{k} {_pair_text(a['size'])}"))


# ---- vectors, regularisation ------------------------------------------------------

register(OpDef("flatten", (), lambda a, ins: (math.prod(ins[0]),), "Flatten C×H×W to a vector."))
register(OpDef("identity", (), lambda a, ins: ins[0], "Pass the input through unchanged."))


def _linear_shape(a, ins):
    if len(ins[0]) != 1:
        raise ShapeProblem(f"linear needs a flat vector, got a {_shape_str(ins[0])} feature map; "
                           "add flatten (or adaptive_avgpool(1); flatten) before it")
    return (a["out"],)


register(OpDef(
    "linear", (Arg("out", "positive_int"), Arg("bias", "boolean", True)), _linear_shape,
    "Fully connected layer; input features are inferred.",
    params=lambda a, i, o: i[0][0] * a["out"] + (a["out"] if a["bias"] else 0),
    macs=lambda a, i, o: i[0][0] * a["out"], label=lambda a: f"linear {a['out']}"))

register(OpDef("dropout", (Arg("p", "probability", 0.5),), lambda a, ins: ins[0],
               "Dropout (training only).", label=lambda a: f"dropout {a['p']:g}"))

register(OpDef(
    "stochastic_depth", (Arg("p", "probability"), Arg("mode", "choice", "row", ("row", "batch"))),
    lambda a, ins: ins[0], "Drop the whole path per sample (row) or per batch (training only).",
    label=lambda a: f"stochastic depth {a['p']:.3g}"))


def _shuffle_shape(a, ins):
    c = _spatial(ins[0], "channel_shuffle")[0]
    if c % a["groups"]:
        raise ShapeProblem(f"channel_shuffle groups={a['groups']} must divide the {c} channels")
    return ins[0]


register(OpDef("channel_shuffle", (Arg("groups", "positive_int"),), _shuffle_shape,
               "Interleave channels across groups (ShuffleNet).",
               label=lambda a: f"channel shuffle {a['groups']}"))


def _split_shape(a, ins):
    c = ins[0][0]
    if c % a["chunks"]:
        raise ShapeProblem(f"channel_split into {a['chunks']} chunks needs channels divisible by it, got {c}")
    if a["index"] >= a["chunks"]:
        raise ShapeProblem(f"channel_split index {a['index']} is out of range for {a['chunks']} chunks")
    return (c // a["chunks"], *ins[0][1:])


register(OpDef("channel_split", (Arg("chunks", "positive_int"), Arg("index", "nonneg_int")),
               _split_shape, "Take chunk number `index` of `chunks` equal channel chunks.",
               label=lambda a: f"split {a['index'] + 1}/{a['chunks']}"))


# ---- joins (written as groups: add:, mul:, concat:) -------------------------------

def _add_shape(a, ins):
    first = ins[0]
    for other in ins[1:]:
        if other != first:
            raise ShapeProblem(f"cannot add tensors of shape {_shape_str(first)} and {_shape_str(other)}")
    return first


def _mul_shape(a, ins):
    out = list(ins[0])
    for other in ins[1:]:
        if len(other) != len(out) or any(x != y and 1 not in (x, y) for x, y in zip(out, other)):
            raise ShapeProblem(f"cannot multiply tensors of shape {_shape_str(ins[0])} and "
                               f"{_shape_str(other)} (sizes must match or be 1)")
        out = [max(x, y) for x, y in zip(out, other)]
    return tuple(out)


def _concat_shape(a, ins):
    rest = ins[0][1:]
    for other in ins[1:]:
        if other[1:] != rest:
            raise ShapeProblem(f"cannot concatenate {_shape_str(ins[0])} and {_shape_str(other)}: "
                               "all but the channels must match")
    return (sum(s[0] for s in ins), *rest)


register(OpDef("add", (), _add_shape, "Sum of the branches.", inputs=-1, label=lambda a: "+"))
register(OpDef("mul", (), _mul_shape, "Product of the branches (broadcasting size-1 dims).",
               inputs=-1, label=lambda a: "×"))
register(OpDef("concat", (Arg("split", "boolean", False),), _concat_shape,
               "Concatenate branches along channels; split=true feeds each branch one channel chunk.",
               inputs=-1, label=lambda a: "concat"))


def label_of(op: str, attrs: dict) -> str:
    """The short text a diagram shows for an op, e.g. ``conv 3×3/2, 64``."""
    d = REGISTRY[op]
    return d.label(attrs) if d.label else op
