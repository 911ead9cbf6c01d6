"""The primitive ops: one :class:`~archdsl.ir.registry.OpDef` each.

Each definition carries the op's doc, typed and documented arguments, shape
rule, parameter/buffer/MAC counts, diagram label and traits. Adding an op
means one ``register(...)`` here, one entry in
:data:`archdsl.backends.lowerings.LOWERINGS`, its row in ``docs/ops.md``
(generated: ``python -m archdsl ops --markdown``) and a test. Nothing here
imports torch.

Shapes exclude the batch: ``(C, H, W)`` for feature maps, ``(F,)`` for vectors.
"""

from __future__ import annotations

import math

from ..errors import shape_text
from .ops_norm import need_map
from .registry import (REGISTRY, REQUIRED, Arg, ArgKind, ArgProblem, Category, OpDef, ShapeProblem,
                       Traits, joins, ops_in, register, weight_and_bias)

__all__ = ["REGISTRY", "REQUIRED", "Arg", "ArgKind", "ArgProblem", "Category", "OpDef", "ShapeProblem",
           "Traits", "joins", "ops_in", "register", "label_of", "window_out"]

K = ArgKind
C = Category


# ---- shape helpers -------------------------------------------------------------

def _spatial(shape: tuple, op: str) -> tuple:
    return need_map(shape, op)


def window_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool, what: str) -> int:
    """PyTorch's output-size rule for convolution and pooling windows."""
    span = d * (k - 1) + 1
    room = size + 2 * p - span
    out = (room + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside the input
        out -= 1
    if out < 1 or (room < 0 and not ceil_mode):
        raise ShapeProblem(f"{what} {k} (spanning {span}) is larger than its padded input {size + 2 * p}")
    return out


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
    return (a["out"], window_out(h, kh, sh, ph, dh, False, "kernel"),
            window_out(w, kw, sw, pw, dw, False, "kernel"))


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
    "conv", "2-D convolution (torch.nn.Conv2d); input channels are inferred.",
    (Arg("out", K.POSITIVE_INT, "output channels"),
     Arg("kernel", K.PAIR, "kernel size, k or (kh, kw)"),
     Arg("stride", K.PAIR, "stride", (1, 1)),
     Arg("padding", K.PADDING, "zero padding per side, or \"same\" (stride 1 only)", (0, 0)),
     Arg("dilation", K.PAIR, "spacing between kernel taps", (1, 1)),
     Arg("groups", K.POSITIVE_INT, "channel groups; must divide input and output channels", 1),
     Arg("bias", K.BOOLEAN, "add a learnable bias", True)),
    _conv_shape, Traits(C.CONV, fresh_output=True),
    params=_conv_params, macs=_conv_macs, label=_conv_label, inits=weight_and_bias))


def _norm_shape(a, ins):
    return ins[0]


register(OpDef(
    "batchnorm", "Batch normalisation over channels (2-D maps) or features (vectors); "
                 "running statistics are buffers.",
    (Arg("eps", K.NUMBER, "added to the variance", 1e-5),
     Arg("momentum", K.NUMBER, "running-statistics update rate", 0.1)),
    _norm_shape, Traits(C.NORM, fresh_output=True),
    params=lambda a, i, o: 2 * i[0][0], buffers=lambda a, i, o: 2 * i[0][0] + 1,
    label=lambda a: "batchnorm", inits=weight_and_bias))

register(OpDef(
    "lrn", "Local response normalisation across channels (AlexNet).",
    (Arg("size", K.POSITIVE_INT, "neighbouring channels to normalise over"),
     Arg("alpha", K.NUMBER, "scale", 1e-4), Arg("beta", K.NUMBER, "exponent", 0.75),
     Arg("k", K.NUMBER, "additive constant", 1.0)),
    lambda a, ins: _spatial(ins[0], "lrn"), Traits(C.NORM, fresh_output=True),
    label=lambda a: f"lrn {a['size']}"))


def _affine_shape(a, ins):
    c = ins[0][0]
    for key in ("scale", "shift"):
        if len(a[key]) != c:
            raise ShapeProblem(f"channel_affine {key} has {len(a[key])} values for {c} channels")
    return ins[0]


register(OpDef(
    "channel_affine", "Fixed per-channel x * scale + shift (e.g. re-normalising inputs); "
                      "adds no parameters and nothing to the state dict.",
    (Arg("scale", K.NUMBER_LIST, "one factor per channel"),
     Arg("shift", K.NUMBER_LIST, "one offset per channel")),
    _affine_shape, Traits(C.NORM), label=lambda a: "channel affine"))

# Activations: elementwise, no arguments. ``inplace_safe``: torch offers an in-place form.
for _name, _inplace in (("relu", True), ("relu6", True), ("silu", True), ("sigmoid", False), ("hardsigmoid", True), ("hardswish", True),
                        ("tanh", False)):
    register(OpDef(_name, f"Elementwise {_name}.", (), lambda a, ins: ins[0],
                   Traits(C.ACTIVATION, inplace_safe=_inplace)))


# ---- pooling -------------------------------------------------------------------

def _pool_shape(kind):
    def shape(a, ins):
        c, h, w = _spatial(ins[0], kind)
        k = a["kernel"]
        s = a["stride"] or k
        p = a["padding"]
        if p[0] > k[0] // 2 or p[1] > k[1] // 2:
            raise ShapeProblem(f"{kind} padding {p} must be at most half the kernel {k}")
        return (c, window_out(h, k[0], s[0], p[0], 1, a["ceil_mode"], "window"),
                window_out(w, k[1], s[1], p[1], 1, a["ceil_mode"], "window"))
    return shape


def _pool_label(kind):
    def label(a):
        k, s = a["kernel"], a["stride"] or a["kernel"]
        return f"{kind} {k[0]}×{k[1]}" + (f"/{_pair_text(s)}" if s != (1, 1) else "")
    return label


def _window_args():
    return (Arg("kernel", K.PAIR, "window size, k or (kh, kw)"),
            Arg("stride", K.PAIR, "stride (default: the kernel)", None),
            Arg("padding", K.PAIR, "implicit padding per side, at most half the kernel", (0, 0)),
            Arg("ceil_mode", K.BOOLEAN, "round the output size up (PyTorch's rule)", False))


register(OpDef(
    "maxpool", "Max pooling (torch.nn.MaxPool2d); stride defaults to the kernel.",
    _window_args(), _pool_shape("maxpool"), Traits(C.POOL), label=_pool_label("maxpool")))

register(OpDef(
    "avgpool", "Average pooling (torch.nn.AvgPool2d); stride defaults to the kernel.",
    _window_args() + (Arg("count_include_pad", K.BOOLEAN, "count padding in the average", True),),
    _pool_shape("avgpool"), Traits(C.POOL), label=_pool_label("avgpool")))


def _adaptive_shape(kind):
    def shape(a, ins):
        c, _, _ = _spatial(ins[0], kind)
        return (c, *a["size"])
    return shape


for _kind in ("adaptive_avgpool", "adaptive_maxpool"):
    register(OpDef(_kind, "Pool to a fixed output size, whatever the input size.",
                   (Arg("size", K.SIZE, "output size, s or (h, w)"),), _adaptive_shape(_kind),
                   Traits(C.POOL),
                   label=lambda a, k=_kind: f"{k} {_pair_text(a['size'])}"))


# ---- vectors, regularisation ------------------------------------------------------

register(OpDef("flatten", "Flatten C×H×W to a vector of C·H·W features.", (),
               lambda a, ins: (math.prod(ins[0]),), Traits(C.RESHAPE)))
register(OpDef("identity", "Pass the input through unchanged (adds no node and no index).", (),
               lambda a, ins: ins[0], Traits(C.RESHAPE, emits_node=False)))


def _linear_shape(a, ins):
    if len(ins[0]) == 3 and a["over"] != "last":
        raise ShapeProblem(f"linear needs a flat vector or a sequence, got a {shape_text(ins[0])} feature "
                           "map; add flatten (or adaptive_avgpool(1); flatten) before it, or write "
                           "over = \"last\" for a map permuted to HxWxC")
    return (*ins[0][:-1], a["out"])


register(OpDef(
    "linear", "Fully connected layer (torch.nn.Linear) over the last dim: a vector's features, "
              "each token of a sequence, or (over = \"last\") each position of a permuted map; "
              "input features are inferred.",
    (Arg("out", K.POSITIVE_INT, "output features"), Arg("bias", K.BOOLEAN, "add a learnable bias", True),
     Arg("over", K.CHOICE, "\"features\": a vector or a sequence (a map is an error); \"last\": "
                           "the last dim of any tensor", "features", ("features", "last"))),
    _linear_shape, Traits(C.LINEAR, fresh_output=True),
    params=lambda a, i, o: i[0][-1] * a["out"] + (a["out"] if a["bias"] else 0),
    macs=lambda a, i, o: math.prod(i[0]) * a["out"], label=lambda a: f"linear {a['out']}",
    inits=weight_and_bias))

register(OpDef("dropout", "Dropout (training only).",
               (Arg("p", K.PROBABILITY, "probability of zeroing an element", 0.5),),
               lambda a, ins: ins[0], Traits(C.REGULARIZER, varies=True, aliases_input=True),
               label=lambda a: f"dropout {a['p']:g}"))

register(OpDef(
    "stochastic_depth", "Drop the whole path per sample (row) or per batch (training only), "
                        "like torchvision.ops.StochasticDepth.",
    (Arg("p", K.PROBABILITY, "probability of dropping the path"),
     Arg("mode", K.CHOICE, "\"row\": per sample; \"batch\": the whole batch", "row", ("row", "batch"))),
    lambda a, ins: ins[0], Traits(C.REGULARIZER, varies=True, aliases_input=True),
    label=lambda a: f"stochastic depth {a['p']:.3g}"))


def _shuffle_shape(a, ins):
    c = _spatial(ins[0], "channel_shuffle")[0]
    if c % a["groups"]:
        raise ShapeProblem(f"channel_shuffle groups={a['groups']} must divide the {c} channels")
    return ins[0]


register(OpDef("channel_shuffle", "Interleave channels across groups (ShuffleNet).",
               (Arg("groups", K.POSITIVE_INT, "groups; must divide the channels"),), _shuffle_shape,
               Traits(C.RESHAPE),
               label=lambda a: f"channel shuffle {a['groups']}"))


def _split_shape(a, ins):
    c = ins[0][0]
    if c % a["chunks"]:
        raise ShapeProblem(f"channel_split into {a['chunks']} chunks needs channels divisible by it, got {c}")
    if a["index"] >= a["chunks"]:
        raise ShapeProblem(f"channel_split index {a['index']} is out of range for {a['chunks']} chunks")
    return (c // a["chunks"], *ins[0][1:])


register(OpDef("channel_split", "Take chunk number `index` of `chunks` equal channel chunks.",
               (Arg("chunks", K.POSITIVE_INT, "equal chunks to cut the channels into"),
                Arg("index", K.NONNEG_INT, "which chunk to keep, from 0")),
               _split_shape, Traits(C.RESHAPE),
               label=lambda a: f"split {a['index'] + 1}/{a['chunks']}"))


# ---- joins (written as groups: add:, mul:, concat:) -------------------------------

def _add_shape(a, ins):
    first = ins[0]
    for other in ins[1:]:
        if other != first:
            raise ShapeProblem(f"cannot add tensors of shape {shape_text(first)} and {shape_text(other)}")
    return first


def _mul_shape(a, ins):
    out = list(ins[0])
    for other in ins[1:]:
        if len(other) != len(out) or any(x != y and 1 not in (x, y) for x, y in zip(out, other)):
            raise ShapeProblem(f"cannot multiply tensors of shape {shape_text(ins[0])} and "
                               f"{shape_text(other)} (sizes must match or be 1)")
        out = [max(x, y) for x, y in zip(out, other)]
    return tuple(out)


def _concat_shape(a, ins):
    rest = ins[0][1:]
    for other in ins[1:]:
        if other[1:] != rest:
            raise ShapeProblem(f"cannot concatenate {shape_text(ins[0])} and {shape_text(other)}: "
                               "all but the channels must match")
    return (sum(s[0] for s in ins), *rest)


register(OpDef("add", "Sum of the branches (all the same shape).", (), _add_shape,
               Traits(C.JOIN, inplace_safe=True, fresh_output=True), inputs=-1, label=lambda a: "+"))
register(OpDef("mul", "Product of the branches (broadcasting size-1 dims).", (), _mul_shape,
               Traits(C.JOIN, fresh_output=True), inputs=-1, label=lambda a: "×"))
register(OpDef("concat", "Concatenate the branches along channels.",
               (Arg("split", K.BOOLEAN, "feed each branch one equal chunk of the input's channels", False),),
               _concat_shape, Traits(C.JOIN, fresh_output=True), inputs=-1, label=lambda a: "concat"))


# ---- resolution: dense prediction (upsampling, resizing, transposed conv, frozen norms) ----
# MACs: torchvision's convention counts convolutions and linear layers only, so upsample and
# resize count 0 (an interpolation's few multiply-adds per output element are not counted);
# conv_transpose counts like a conv: each input pixel meets the whole kernel.

def _interp_check(a):
    if a["align_corners"] is not None and a["mode"] == "nearest":
        raise ShapeProblem("align_corners applies only to mode=\"bilinear\"")


def _upsample_shape(a, ins):
    c, h, w = _spatial(ins[0], "upsample")
    _interp_check(a)
    return (c, h * a["scale"][0], w * a["scale"][1])


def _mode_arg():
    return Arg("mode", K.CHOICE, "interpolation: \"nearest\" or \"bilinear\"", "nearest",
               ("nearest", "bilinear"))


def _align_arg():
    return Arg("align_corners", K.BOOLEAN, "bilinear only: align the corner pixels (none: torch's default)",
               None)


register(OpDef(
    "upsample", "Enlarge a map by an integer factor (torch.nn.Upsample).",
    (Arg("scale", K.PAIR, "integer factor, s or (sh, sw)"), _mode_arg(), _align_arg()),
    _upsample_shape, Traits(C.RESHAPE),
    label=lambda a: f"upsample ×{_pair_text(a['scale'])}" + (f" {a['mode']}" if a["mode"] != "nearest" else "")))


def _resize_shape(a, ins):
    c, h, w = _spatial(ins[0], "resize")
    _interp_check(a)
    if (a["size"] is None) == (a["like"] is None):
        raise ShapeProblem("resize needs exactly one of size = (h, w) and like = @tensor")
    if a["like"] is not None:
        if len(a["like"]) != 3:
            raise ShapeProblem("resize like = @tensor needs a CxHxW tensor")
        return (c, *a["like"][1:])
    return (c, *a["size"])


register(OpDef(
    "resize", "Resize a map to a fixed size, or to another tensor's height and width at run time "
              "(torch.nn.functional.interpolate); adds no module.",
    (Arg("size", K.SIZE, "output size, s or (h, w)", None),
     Arg("like", K.TENSOR, "take the output height and width from this tensor", None),
     _mode_arg(), _align_arg()),
    _resize_shape, Traits(C.RESHAPE), inputs=-1,
    label=lambda a: "resize" + (f" {a['mode']}" if a["mode"] != "nearest" else "")))


def _conv_transpose_shape(a, ins):
    c, h, w = _spatial(ins[0], "conv_transpose")
    if c % a["groups"] or a["out"] % a["groups"]:
        raise ShapeProblem(f"groups={a['groups']} must divide both the input channels ({c}) "
                           f"and the output channels ({a['out']})")
    if "same" in (a["padding"], a["output_padding"]):
        raise ShapeProblem("conv_transpose takes integer padding, not \"same\"")
    dims = []
    for i, size in enumerate((h, w)):
        k, s, p, op, d = (a[key][i] for key in ("kernel", "stride", "padding", "output_padding", "dilation"))
        if op >= max(s, d):
            raise ShapeProblem(f"output_padding {op} must be smaller than the stride or the dilation")
        dims.append((size - 1) * s - 2 * p + d * (k - 1) + op + 1)
    if min(dims) < 1:
        raise ShapeProblem(f"padding {a['padding']} leaves no output")
    return (a["out"], *dims)


def _conv_transpose_macs(a, ins, out):
    c, h, w = ins[0]
    kh, kw = a["kernel"]
    return c * (a["out"] // a["groups"]) * kh * kw * h * w


register(OpDef(
    "conv_transpose", "2-D transposed convolution (torch.nn.ConvTranspose2d); input channels are inferred.",
    (Arg("out", K.POSITIVE_INT, "output channels"),
     Arg("kernel", K.PAIR, "kernel size, k or (kh, kw)"),
     Arg("stride", K.PAIR, "stride (the enlargement factor)", (1, 1)),
     Arg("padding", K.PADDING, "padding removed from each side (not \"same\")", (0, 0)),
     Arg("output_padding", K.PADDING, "extra rows/columns added on one side (not \"same\")", (0, 0)),
     Arg("groups", K.POSITIVE_INT, "channel groups; must divide input and output channels", 1),
     Arg("bias", K.BOOLEAN, "add a learnable bias", True),
     Arg("dilation", K.PAIR, "spacing between kernel taps", (1, 1))),
    _conv_transpose_shape, Traits(C.CONV, fresh_output=True),
    params=lambda a, i, o: i[0][0] * (a["out"] // a["groups"]) * a["kernel"][0] * a["kernel"][1]
    + (a["out"] if a["bias"] else 0),
    macs=_conv_transpose_macs,
    label=lambda a: f"conv_transpose {a['kernel'][0]}×{a['kernel'][1]}"
    + (f"/{_pair_text(a['stride'])}" if a["stride"] != (1, 1) else "") + f", {a['out']}"))


def _shuffle_pixels(kind):
    def shape(a, ins):
        c, h, w = _spatial(ins[0], kind)
        r = a["factor"]
        if kind == "pixel_shuffle":
            if c % (r * r):
                raise ShapeProblem(f"pixel_shuffle({r}) needs channels divisible by {r * r}, got {c}")
            return (c // (r * r), h * r, w * r)
        if h % r or w % r:
            raise ShapeProblem(f"pixel_unshuffle({r}) needs height and width divisible by {r}, got {h}x{w}")
        return (c * r * r, h // r, w // r)
    return shape


register(OpDef("pixel_shuffle", "Move channel blocks into space: C·r²×H×W → C×rH×rW (torch.nn.PixelShuffle).",
               (Arg("factor", K.POSITIVE_INT, "upscale factor r"),), _shuffle_pixels("pixel_shuffle"),
               Traits(C.RESHAPE), label=lambda a: f"pixel shuffle ×{a['factor']}"))
register(OpDef("pixel_unshuffle", "Move space into channels: C×rH×rW → C·r²×H×W (torch.nn.PixelUnshuffle).",
               (Arg("factor", K.POSITIVE_INT, "downscale factor r"),), _shuffle_pixels("pixel_unshuffle"),
               Traits(C.RESHAPE), label=lambda a: f"pixel unshuffle ÷{a['factor']}"))

register(OpDef(
    "frozen_batchnorm", "Batch normalisation with fixed statistics and affine parameters, all buffers "
                        "(torchvision.ops.FrozenBatchNorm2d): nothing trains.",
    (Arg("eps", K.NUMBER, "added to the variance", 1e-5),),
    lambda a, ins: _spatial(ins[0], "frozen_batchnorm"), Traits(C.NORM, fresh_output=True),
    buffers=lambda a, i, o: 4 * i[0][0], label=lambda a: "frozen batchnorm"))
# ---- families in their own modules (they register on import) -----------------------

from . import ops_norm, ops_sequence  # noqa: E402,F401  (norms/activations; sequences, permute)


def label_of(op: str, attrs: dict) -> str:
    """The short text a diagram shows for an op, e.g. ``conv 3×3/2, 64``."""
    return REGISTRY[op].label_text(attrs)
