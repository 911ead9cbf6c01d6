"""The torch lowering of every op: one :data:`LOWERINGS` entry per registered op that emits a node.

A :class:`Lowering` either builds an ``nn.Module`` from the node's attributes
and input shape (``module``), so the op appears in the state dict and in
``named_modules()`` under its scope path, or adds torch calls to the fx graph
(``function``) for ops with no state (flatten, joins, channel splits).
:mod:`archdsl.backends.torch_fx` reads only this table; a test checks it covers
exactly the registry's node-emitting ops.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn


class StochasticDepth(nn.Module):
    """Randomly drop a residual branch per sample ("row") or per batch, like torchvision."""

    def __init__(self, p: float, mode: str = "row"):
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class ChannelAffine(nn.Module):
    """A fixed per-channel ``x * scale + shift`` (no parameters, nothing in the state dict)."""

    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


class ChannelShuffle(nn.Module):
    """Interleave channels across ``groups`` (works with channels_last, unlike a view trick alone)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous()
        return x.view(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all buffers (like torchvision.ops')."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        for name, fill in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
            self.register_buffer(name, torch.full((num_features,), fill))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a trained BatchNorm's counter has no meaning here: accept and drop it, as torchvision does
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


ModuleFactory = Callable[[dict, tuple, bool], nn.Module]
GraphEmitter = Callable[[fx.Graph, list, dict, bool], fx.Node]
ParameterFactory = Callable[[dict, tuple], nn.Parameter]


@dataclass(frozen=True)
class Lowering:
    """How one op becomes torch code.

    ``module(attrs, in_shape, inplace)`` returns the op's ``nn.Module``;
    ``function(graph, args, attrs, inplace)`` adds calls to an fx graph and
    returns the result node. Exactly one is set. ``inplace`` is the IR node's
    ``inplace`` annotation (set by the ``inplace`` pass). ``parameter(attrs,
    in_shape)``, with ``function``, makes a bare tensor that is registered at
    the op's own path and passed to ``function`` as its last argument.
    """

    module: ModuleFactory | None = None
    function: GraphEmitter | None = None
    parameter: ParameterFactory | None = None


def _activation(cls, inplace_form: bool) -> Lowering:
    if inplace_form:
        return Lowering(module=lambda a, shape, inplace: cls(inplace=True) if inplace else cls())
    return Lowering(module=lambda a, shape, inplace: cls())


def _conv(a, shape, inplace):
    padding = a["padding"] if a["padding"] == "same" else tuple(a["padding"])
    return nn.Conv2d(shape[0], a["out"], a["kernel"], a["stride"], padding, a["dilation"],
                     a["groups"], a["bias"])


def _batchnorm(a, shape, inplace):
    cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return cls(shape[0], eps=a["eps"], momentum=a["momentum"])


def _add(g, args, a, inplace):
    # In place (torchvision's `out += identity`) when the pass found the first
    # branch's fresh output has no other reader: one allocation less per block.
    out = args[0]
    for other in args[1:]:
        out = g.call_method("add_", (out, other)) if inplace else g.call_function(operator.add, (out, other))
    return out


def _mul(g, args, a, inplace):
    out = args[0]
    for other in args[1:]:
        out = g.call_function(operator.mul, (out, other))
    return out


def _split(g, args, a, inplace):
    # Sibling chunks of one tensor share one torch.chunk call, as hand-written code does.
    key = (args[0], a["chunks"], 1)
    chunks = next((user for user in args[0].users if user.op == "call_function"
                   and user.target is torch.chunk and user.args == key), None)
    if chunks is None:
        chunks = g.call_function(torch.chunk, key)
    return g.call_function(operator.getitem, (chunks, a["index"]))


# ---- resolution ops (dense prediction) -------------------------------------------------------

def _factor(scale: tuple):
    return float(scale[0]) if scale[0] == scale[1] else tuple(float(s) for s in scale)


def _spatial_size(t: torch.Tensor):
    """A tensor's height and width (fx-traceable; `resize(like = @t)` reads it at run time)."""
    return t.shape[-2:]


def _resize(g, args, a, inplace):
    size = g.call_function(_spatial_size, (args[1],)) if len(args) > 1 else tuple(a["size"])
    return g.call_function(F.interpolate, (args[0],), {"size": size, "mode": a["mode"],
                                                        "align_corners": a["align_corners"]})


def _conv_transpose(a, shape, inplace):
    return nn.ConvTranspose2d(shape[0], a["out"], a["kernel"], a["stride"], tuple(a["padding"]),
                              tuple(a["output_padding"]), a["groups"], a["bias"], a["dilation"])


DENSE_LOWERINGS: dict[str, Lowering] = {
    "upsample": Lowering(module=lambda a, s, i: nn.Upsample(scale_factor=_factor(a["scale"]), mode=a["mode"],
                                                            align_corners=a["align_corners"])),
    "resize": Lowering(function=_resize),
    "conv_transpose": Lowering(module=_conv_transpose),
    "pixel_shuffle": Lowering(module=lambda a, s, i: nn.PixelShuffle(a["factor"])),
    "pixel_unshuffle": Lowering(module=lambda a, s, i: nn.PixelUnshuffle(a["factor"])),
    "frozen_batchnorm": Lowering(module=lambda a, s, i: FrozenBatchNorm2d(s[0], a["eps"])),
}
# ---- normalisations and activations with arguments (archdsl.ir.ops_norm) --------------

class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map at each position (ConvNeXt's LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


def _layernorm(a, shape, inplace):
    if len(shape) == 3 and a["over"] == "channels":
        return LayerNorm2d(shape[0], eps=a["eps"], elementwise_affine=a["affine"])
    return nn.LayerNorm(shape[-1], eps=a["eps"], elementwise_affine=a["affine"])


def _inplace_capable(factory) -> Lowering:
    return Lowering(module=lambda a, shape, inplace: factory(a, shape, inplace))


def _norm_activation_lowerings() -> dict:
    return {
        "layernorm": Lowering(module=_layernorm),
        "groupnorm": Lowering(module=lambda a, s, i: nn.GroupNorm(a["groups"], s[0], a["eps"], a["affine"])),
        "instancenorm": Lowering(module=lambda a, s, i: nn.InstanceNorm2d(
            s[0], a["eps"], a["momentum"], a["affine"], a["track_running_stats"])),
        "leaky_relu": _inplace_capable(lambda a, s, i: nn.LeakyReLU(a["slope"], inplace=i)),
        "prelu": Lowering(module=lambda a, s, i: nn.PReLU(s[0] if a["channelwise"] else 1)),
        "elu": _inplace_capable(lambda a, s, i: nn.ELU(a["alpha"], inplace=i)),
        "selu": _inplace_capable(lambda a, s, i: nn.SELU(inplace=i)),
        "celu": _inplace_capable(lambda a, s, i: nn.CELU(a["alpha"], inplace=i)),
        "mish": _inplace_capable(lambda a, s, i: nn.Mish(inplace=i)),
        "softplus": Lowering(module=lambda a, s, i: nn.Softplus(a["beta"], a["threshold"])),
        "gelu": Lowering(module=lambda a, s, i: nn.GELU(approximate=a["approximate"])),
        "hardtanh": _inplace_capable(lambda a, s, i: nn.Hardtanh(a["min"], a["max"], inplace=i)),
    }


# ---- sequences, permute, standalone tensors (archdsl.ir.ops_sequence) ------------------

class SelfAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` (batch first) called on one sequence as query, key and value.

    A subclass, so its state dict is torch's (``in_proj_weight``, ``out_proj.weight``…).
    """

    def __init__(self, dim: int, heads: int, dropout: float, bias: bool):
        super().__init__(dim, heads, dropout=dropout, bias=bias, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - (N, T, D) → (N, T, D)
        return super().forward(x, x, x, need_weights=False)[0]


def _tokens(g, args, a, inplace):
    # (N, C, H, W) → (N, H·W, C), as torchvision's ViT: reshape, then permute
    flat = g.call_method("flatten", (args[0], 2))
    return g.call_method("permute", (flat, 0, 2, 1))


def _class_token(g, args, a, inplace):
    x, token = args
    n = g.call_method("size", (x, 0))
    batch = g.call_method("expand", (token, n, -1, -1))
    return g.call_function(torch.cat, ([batch, x],), {"dim": 1})


def _sequence_lowerings() -> dict:
    return {
        "permute": Lowering(function=lambda g, args, a, i: g.call_method(
            "permute", (args[0], 0, *(d + 1 for d in a["dims"])))),
        "tokens": Lowering(function=_tokens),
        "class_token": Lowering(function=_class_token,
                                parameter=lambda a, s: nn.Parameter(torch.zeros(1, 1, s[1]))),
        "position_embedding": Lowering(
            function=lambda g, args, a, i: g.call_function(operator.add, tuple(args)),
            parameter=lambda a, s: nn.Parameter(torch.empty(1, *s).normal_(std=0.02))),
        "multihead_attention": Lowering(module=lambda a, s, i: SelfAttention(s[1], a["heads"], a["dropout"],
                                                                             a["bias"])),
        "select_token": Lowering(function=lambda g, args, a, i: g.call_function(
            operator.getitem, (args[0], (slice(None), a["index"])))),
        "parameter": Lowering(function=lambda g, args, a, i: args[-1],
                              parameter=lambda a, s: nn.Parameter(torch.zeros(a["shape"]))),
    }


NORM_ACTIVATION_LOWERINGS = _norm_activation_lowerings()
SEQUENCE_LOWERINGS = _sequence_lowerings()


LOWERINGS: dict[str, Lowering] = {
    "conv": Lowering(module=_conv),
    "batchnorm": Lowering(module=_batchnorm),
    "lrn": Lowering(module=lambda a, s, i: nn.LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"])),
    "channel_affine": Lowering(module=lambda a, s, i: ChannelAffine(a["scale"], a["shift"])),
    "relu": _activation(nn.ReLU, True),
    "relu6": _activation(nn.ReLU6, True),
    "silu": _activation(nn.SiLU, True),
    "sigmoid": _activation(nn.Sigmoid, False),
    "hardsigmoid": _activation(nn.Hardsigmoid, True),
    "hardswish": _activation(nn.Hardswish, True),
    "tanh": _activation(nn.Tanh, False),
    **NORM_ACTIVATION_LOWERINGS,
    **SEQUENCE_LOWERINGS,
    "maxpool": Lowering(module=lambda a, s, i: nn.MaxPool2d(
        a["kernel"], a["stride"] or a["kernel"], a["padding"], ceil_mode=a["ceil_mode"])),
    "avgpool": Lowering(module=lambda a, s, i: nn.AvgPool2d(
        a["kernel"], a["stride"] or a["kernel"], a["padding"], ceil_mode=a["ceil_mode"],
        count_include_pad=a["count_include_pad"])),
    "adaptive_avgpool": Lowering(module=lambda a, s, i: nn.AdaptiveAvgPool2d(a["size"])),
    "adaptive_maxpool": Lowering(module=lambda a, s, i: nn.AdaptiveMaxPool2d(a["size"])),
    "flatten": Lowering(function=lambda g, args, a, i: g.call_function(torch.flatten, (args[0], 1))),
    "linear": Lowering(module=lambda a, s, i: nn.Linear(s[-1], a["out"], bias=a["bias"])),
    "dropout": Lowering(module=lambda a, s, i: nn.Dropout(a["p"], inplace=False)),
    "stochastic_depth": Lowering(module=lambda a, s, i: StochasticDepth(a["p"], a["mode"])),
    "channel_shuffle": Lowering(module=lambda a, s, i: ChannelShuffle(a["groups"])),
    "channel_split": Lowering(function=_split),
    "add": Lowering(function=_add),
    "mul": Lowering(function=_mul),
    "concat": Lowering(function=lambda g, args, a, i: g.call_function(torch.cat, (list(args), 1))),
    **DENSE_LOWERINGS,
}
