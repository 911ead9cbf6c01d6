"""Normalisations and activations beyond BatchNorm and the argument-free activations.

Layer, group and instance normalisation, and the activations with arguments
(LeakyReLU, PReLU, ELU, SELU, CELU, Mish, Softplus, GELU, Hardtanh). Imported
by :mod:`archdsl.ir.ops`, which registers the rest; nothing here imports torch.

Shapes exclude the batch: ``(C, H, W)`` maps, ``(T, D)`` sequences (tokens ×
dim), ``(F,)`` vectors.
"""

from __future__ import annotations

from ..errors import shape_text
from .registry import Arg, ArgKind, Category, OpDef, ShapeProblem, Traits, register, weight_and_bias, weight_only

K = ArgKind
C = Category


def kind_of(shape: tuple) -> str:
    """What a shape is, in words: ``a 64x56x56 feature map``, ``a 197x768 sequence``…"""
    if len(shape) == 3:
        return f"a {shape_text(shape)} feature map"
    if len(shape) == 2:
        return f"a {shape_text(shape)} sequence (tokens x dim)"
    return f"a flat vector of {shape[0]}"


def need_map(shape: tuple, op: str) -> tuple:
    """``shape`` if it is a C×H×W map, else a :class:`ShapeProblem` saying what it is."""
    if len(shape) != 3:
        raise ShapeProblem(f"{op} needs a CxHxW feature map, got {kind_of(shape)}")
    return shape


# ---- normalisation ----------------------------------------------------------------

def layernorm_features(a: dict, shape: tuple) -> int:
    """The size layernorm normalises over: a map's channels, else the last dim."""
    return shape[0] if len(shape) == 3 and a["over"] == "channels" else shape[-1]


def _affine_params(features):
    return lambda a, ins, out: 2 * features(a, ins[0]) if a["affine"] else 0


register(OpDef(
    "layernorm", "Layer normalisation (torch.nn.LayerNorm) over one dim: a map's channels at each "
                 "position (ConvNeXt's LayerNorm2d), or the last dim (a sequence's features, a vector, "
                 "a map permuted to HxWxC).",
    (Arg("eps", K.NUMBER, "added to the variance", 1e-5),
     Arg("over", K.CHOICE, "\"channels\": a map's channels (the last dim of a sequence or vector); "
                           "\"last\": the last dim of any tensor", "channels", ("channels", "last")),
     Arg("affine", K.BOOLEAN, "learnable per-feature weight and bias", True)),
    lambda a, ins: ins[0], Traits(C.NORM, fresh_output=True),
    params=_affine_params(layernorm_features),
    label=lambda a: "layernorm" + (" (last dim)" if a["over"] == "last" else ""), inits=weight_and_bias))


def _group_shape(a, ins):
    c = need_map(ins[0], "groupnorm")[0]
    if c % a["groups"]:
        raise ShapeProblem(f"groupnorm groups={a['groups']} must divide the {c} channels")
    return ins[0]


register(OpDef(
    "groupnorm", "Group normalisation (torch.nn.GroupNorm) of a map: statistics per sample over "
                 "each group of channels and all positions.",
    (Arg("groups", K.POSITIVE_INT, "channel groups; must divide the channels"),
     Arg("eps", K.NUMBER, "added to the variance", 1e-5),
     Arg("affine", K.BOOLEAN, "learnable per-channel weight and bias", True)),
    _group_shape, Traits(C.NORM, fresh_output=True),
    params=_affine_params(lambda a, shape: shape[0]),
    label=lambda a: f"groupnorm {a['groups']}", inits=weight_and_bias))

register(OpDef(
    "instancenorm", "Instance normalisation (torch.nn.InstanceNorm2d) of a map: statistics per "
                    "sample and channel over all positions.",
    (Arg("eps", K.NUMBER, "added to the variance", 1e-5),
     Arg("momentum", K.NUMBER, "running-statistics update rate", 0.1),
     Arg("affine", K.BOOLEAN, "learnable per-channel weight and bias", False),
     Arg("track_running_stats", K.BOOLEAN, "keep running statistics (buffers) for eval mode", False)),
    lambda a, ins: need_map(ins[0], "instancenorm"), Traits(C.NORM, fresh_output=True),
    params=_affine_params(lambda a, shape: shape[0]),
    buffers=lambda a, ins, out: 2 * ins[0][0] + 1 if a["track_running_stats"] else 0,
    label=lambda a: "instancenorm", inits=weight_and_bias))


# ---- activations with arguments --------------------------------------------------

def _elementwise(a, ins):
    return ins[0]


def _activation(name, doc, args=(), inplace=True, params=None, shape=_elementwise, label=None):
    extra = {"params": params, "inits": weight_only} if params else {}
    register(OpDef(name, doc, args, shape, Traits(C.ACTIVATION, inplace_safe=inplace), label=label, **extra))


_activation("leaky_relu", "Elementwise LeakyReLU: x if x > 0 else slope * x.",
            (Arg("slope", K.NUMBER, "the slope for negative inputs", 0.01),),
            label=lambda a: f"leaky_relu {a['slope']:g}")


def _prelu_shape(a, ins):
    if a["channelwise"] and len(ins[0]) == 2:
        raise ShapeProblem("a channelwise prelu needs a map or a vector (torch.nn.PReLU weighs dim 1), "
                           f"got {kind_of(ins[0])}")
    return ins[0]


_activation("prelu", "Elementwise PReLU with a learnable negative slope (torch.nn.PReLU; "
                     "initialised to 0.25).",
            (Arg("channelwise", K.BOOLEAN, "one slope per channel (feature) instead of one in all", False),),
            inplace=False, shape=_prelu_shape,
            params=lambda a, ins, out: ins[0][0] if a["channelwise"] else 1)
_activation("elu", "Elementwise ELU: x if x > 0 else alpha * (exp(x) - 1).",
            (Arg("alpha", K.NUMBER, "the negative saturation value", 1.0),))
_activation("selu", "Elementwise SELU (self-normalising ELU with fixed scale and alpha).")
_activation("celu", "Elementwise CELU: max(0, x) + min(0, alpha * (exp(x / alpha) - 1)).",
            (Arg("alpha", K.NUMBER, "the negative saturation value", 1.0),))
_activation("mish", "Elementwise Mish: x * tanh(softplus(x)).")
_activation("softplus", "Elementwise Softplus: log(1 + exp(beta * x)) / beta (linear above threshold).",
            (Arg("beta", K.NUMBER, "sharpness", 1.0),
             Arg("threshold", K.NUMBER, "above beta * x > threshold the op is the identity", 20.0)),
            inplace=False)
_activation("gelu", "Elementwise GELU, exact (erf) or with the tanh approximation.",
            (Arg("approximate", K.CHOICE, "\"none\": the exact erf form; \"tanh\": the tanh approximation",
                 "none", ("none", "tanh")),),
            inplace=False, label=lambda a: "gelu" if a["approximate"] == "none" else "gelu (tanh)")


def _hardtanh_shape(a, ins):
    if a["min"] >= a["max"]:
        raise ShapeProblem(f"hardtanh needs min < max, got min={a['min']:g}, max={a['max']:g}")
    return ins[0]


_activation("hardtanh", "Elementwise Hardtanh: x clamped to [min, max].",
            (Arg("min", K.NUMBER, "the lower bound", -1.0), Arg("max", K.NUMBER, "the upper bound", 1.0)),
            shape=_hardtanh_shape)
