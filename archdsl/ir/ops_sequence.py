"""Sequence ops (vision transformers), ``permute`` and learnable standalone tensors.

A sequence is a ``(T, D)`` shape: T tokens of D features each (the batch
excluded, like every shape in the IR). Its shapes are checked like maps': an
op that needs a sequence rejects a map with a located error, and map ops
reject sequences. Imported by :mod:`archdsl.ir.ops`; nothing here imports torch.

Ops that own a bare tensor (``parameter``, ``class_token``,
``position_embedding``) put it in the state dict at the op's own path
(``class_token``, ``encoder.pos_embedding``, ``features.1.0.layer_scale``),
as torchvision's ``nn.Parameter`` attributes are.
"""

from __future__ import annotations

import math

from .ops_norm import kind_of, need_map
from .registry import Arg, ArgKind, Category, OpDef, ShapeProblem, Traits, register, weight_only

K = ArgKind
C = Category


def need_sequence(shape: tuple, op: str) -> tuple:
    """``shape`` if it is a tokens × dim sequence, else a :class:`ShapeProblem` saying what it is."""
    if len(shape) != 2:
        hint = "; add tokens before it" if len(shape) == 3 else ""
        raise ShapeProblem(f"{op} needs a sequence (tokens x dim), got {kind_of(shape)}{hint}")
    return shape


def _permute_shape(a, ins):
    dims, shape = a["dims"], ins[0]
    if sorted(dims) != list(range(len(shape))):
        raise ShapeProblem(f"permute dims {list(dims)} must be an order of 0..{len(shape) - 1} "
                           f"for {kind_of(shape)} (the batch dim is not counted)")
    return tuple(shape[d] for d in dims)


register(OpDef(
    "permute", "Reorder the dims (torch.permute, the batch dim kept first and not counted): "
               "permute([1, 2, 0]) turns a CxHxW map into HxWxC.",
    (Arg("dims", K.DIMS, "the new order of the dims, counted from 0 after the batch"),),
    _permute_shape, Traits(C.RESHAPE), label=lambda a: f"permute {list(a['dims'])}"))


def _tokens_shape(a, ins):
    c, h, w = need_map(ins[0], "tokens")
    return (h * w, c)


register(OpDef(
    "tokens", "A CxHxW map as a sequence of HxW tokens of C features, row by row "
              "(ViT's reshape and permute after the patch convolution).",
    (), _tokens_shape, Traits(C.RESHAPE), label=lambda a: "tokens"))


def _class_token_shape(a, ins):
    t, d = need_sequence(ins[0], "class_token")
    return (t + 1, d)


register(OpDef(
    "class_token", "Prepend a learnable token to a sequence (ViT's class token, a 1x1xD tensor "
                   "stored at the op's path; initialised to zeros).",
    (), _class_token_shape, Traits(C.LINEAR, fresh_output=True),
    params=lambda a, ins, out: ins[0][1], label=lambda a: "class token", inits=weight_only))

register(OpDef(
    "position_embedding", "Add a learnable position embedding to a sequence (a 1xTxD tensor stored "
                          "at the op's path; initialised from a normal of std 0.02, like torchvision).",
    (), lambda a, ins: need_sequence(ins[0], "position_embedding"), Traits(C.LINEAR, fresh_output=True),
    params=lambda a, ins, out: math.prod(ins[0]), label=lambda a: "+ position embedding",
    inits=weight_only))


def _attention_shape(a, ins):
    t, d = need_sequence(ins[0], "multihead_attention")
    if d % a["heads"]:
        raise ShapeProblem(f"multihead_attention heads={a['heads']} must divide the dim {d}")
    return (t, d)


def _attention_params(a, ins, out):
    d = ins[0][1]
    return 4 * d * d + (4 * d if a["bias"] else 0)


def _attention_macs(a, ins, out):
    t, d = ins[0]
    return 4 * t * d * d + 2 * t * t * d  # q, k, v and output projections; q·kᵀ and attention·v


register(OpDef(
    "multihead_attention", "Multi-head self-attention over a sequence (torch.nn.MultiheadAttention "
                           "with batch_first: in_proj_weight/bias for q, k, v; out_proj).",
    (Arg("heads", K.POSITIVE_INT, "attention heads; must divide the dim"),
     Arg("dropout", K.PROBABILITY, "dropout on the attention weights (training only)", 0.0),
     Arg("bias", K.BOOLEAN, "biases on the projections", True)),
    _attention_shape, Traits(C.LINEAR, fresh_output=True),
    params=_attention_params, macs=_attention_macs,
    label=lambda a: f"attention, {a['heads']} heads"))


def _select_shape(a, ins):
    t, d = need_sequence(ins[0], "select_token")
    if a["index"] >= t:
        raise ShapeProblem(f"select_token index {a['index']} is out of range for {t} tokens")
    return (d,)


register(OpDef(
    "select_token", "Take one token of a sequence as a vector (ViT's x[:, 0], the class token).",
    (Arg("index", K.NONNEG_INT, "which token, from 0", 0),),
    _select_shape, Traits(C.RESHAPE), label=lambda a: f"token {a['index']}"))


register(OpDef(
    "parameter", "A learnable tensor of a fixed shape, stored at the op's path; its input is "
                 "ignored, so it is written as a branch of a join (ConvNeXt's layer scale: "
                 "mul: with parameter([C, 1, 1], init = constant(1e-6))). Initialised to zeros "
                 "unless init says otherwise.",
    (Arg("shape", K.DIMS, "its shape (no batch dim); size-1 dims broadcast in a join"),),
    lambda a, ins: tuple(a["shape"]), Traits(C.LINEAR, fresh_output=True),
    params=lambda a, ins, out: math.prod(a["shape"]),
    label=lambda a: "parameter " + "×".join(map(str, a["shape"])), inits=weight_only))
