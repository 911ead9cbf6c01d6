"""Inference passes: an eval-only graph, simplified, folded, fused, with a chosen layout.

:data:`archdsl.ir.passes.INFERENCE_PIPELINE` runs, in order:

``eval_mode``         drop dropout, stochastic depth (identities in eval mode) and
                      the auxiliary heads (training-only outputs)
``simplify``          constant-fold ops the IR proves to be identities at these shapes
``fold_input_affine`` see :mod:`.fold`
``fold_batchnorm``    see :mod:`.fold`
``fuse_activation``   a conv followed by its only reader, an activation, becomes one
                      conv with ``activation`` set (oneDNN's fused post-op)
``inplace``           the training pipeline's pass, again on the rewritten graph
``layout``            ``graph.graph["memory_format"]``: channels_last where it pays
``prepack``           ``prepack = True`` on convs whose weights the CPU back end
                      reorders for oneDNN once per input shape, not on every call

Every pass is torch-free; :mod:`archdsl.backends.inference` turns the result
into a module and computes its tensors from the loaded ones.
"""

from __future__ import annotations

import dataclasses

from ..graph import Architecture
from ..registry import REGISTRY, Category
from .rewrite import copy_arch, first_input, only_reader, try_bypass


def _bypass_where(arch: Architecture, removable) -> Architecture:
    """Remove every node for which ``removable(arch, node, data)`` holds; readers read its input."""
    arch = copy_arch(arch)
    for node in list(arch.execution_order):
        if node not in arch.graph:  # removed by an earlier rewrite in this pass
            continue
        data = arch.graph.nodes[node]
        if data["op"] != "input" and removable(arch, node, data):
            arch = try_bypass(arch, node, first_input(arch, node)) or arch
    return arch


def eval_mode(arch: Architecture) -> Architecture:
    """Drop training-only work: regularizers (dropout, stochastic depth) and auxiliary heads."""
    arch = copy_arch(arch)
    aux_nodes = [n for n, d in arch.graph.nodes(data=True) if d.get("aux")]
    arch.graph.remove_nodes_from(aux_nodes)
    arch = dataclasses.replace(arch, aux_outputs={})
    return _bypass_where(arch, lambda a, n, d: REGISTRY[d["op"]].traits.category is Category.REGULARIZER)


def _is_identity(arch: Architecture, node: str, data: dict) -> bool:
    op, a, ins = data["op"], data["attrs"], data["in_shapes"]
    if REGISTRY[op].traits.category is Category.JOIN:
        return len(ins) == 1
    if op in ("maxpool", "avgpool"):
        return (a["kernel"] == (1, 1) and (a["stride"] or (1, 1)) == (1, 1) and a["padding"] == (0, 0))
    if op == "flatten":
        return len(ins[0]) == 1
    if op == "channel_split":
        return a["chunks"] == 1
    if op == "channel_shuffle":
        return a["groups"] in (1, ins[0][0])
    if op == "channel_affine":
        return all(s == 1 for s in a["scale"]) and all(t == 0 for t in a["shift"])
    return False


def simplify(arch: Architecture) -> Architecture:
    """Remove ops the IR proves are identities at their known shapes and arguments.

    1×1 stride-1 pools, flattening a vector, one-branch joins, a split into one
    chunk, a shuffle over one group (or one channel per group), a unit affine.
    Only rules that hold at every input size: the module still takes any input
    the original takes (an adaptive pool to the size it already has stays).
    """
    return _bypass_where(arch, _is_identity)


def fuse_activation(arch: Architecture) -> Architecture:
    """A conv whose only reader is an activation computes it too (``activation = "relu"`` …)."""
    arch = copy_arch(arch)
    for node in list(arch.execution_order):
        if node not in arch.graph:  # removed by an earlier rewrite in this pass
            continue
        data = arch.graph.nodes[node]
        if data["op"] != "conv" or data.get("activation"):
            continue
        reader = only_reader(arch, node)
        if reader is None or REGISTRY[arch.graph.nodes[reader]["op"]].traits.category is not Category.ACTIVATION:
            continue
        op = arch.graph.nodes[reader]["op"]
        fused = try_bypass(arch, reader, node)
        if fused is not None:
            arch = fused
            arch.graph.nodes[node]["activation"] = op
    return arch


# Ops whose torch form rewrites the layout to NCHW (a view over the channel axis), so
# channels_last would add a copy at each of them.
_NCHW_OPS = ("channel_shuffle", "channel_split")


def choose_layout(arch: Architecture) -> Architecture:
    """Pick the memory layout: channels_last when 2-D convs do the work, else contiguous.

    oneDNN's CPU convolutions run on NHWC data; in NCHW torch reorders around
    every conv. Networks that shuffle or split channels would copy at each
    shuffle instead, so they stay contiguous.
    """
    ops = [d for _, d in arch.ops()]
    conv_macs = sum(d["macs"] for d in ops if d["op"] == "conv")
    total = sum(d["macs"] for d in ops) or 1
    nhwc = conv_macs / total >= 0.5 and not any(d["op"] in _NCHW_OPS for d in ops)
    arch = copy_arch(arch)
    arch.graph.graph["memory_format"] = "channels_last" if nhwc else "contiguous"
    return arch


def mark_prepack(arch: Architecture) -> Architecture:
    """Mark convs whose weights the CPU back end reorders once for oneDNN (channels_last graphs).

    oneDNN picks a blocked weight layout per convolution and input shape; a
    weight given in torch's plain layout is reordered on every call, one kept
    reordered for the shape is not. Convs with ``padding = "same"`` keep
    torch's own kernel.
    """
    arch = copy_arch(arch)
    if arch.graph.graph.get("memory_format") != "channels_last":
        return arch
    for _, data in arch.graph.nodes(data=True):
        if data["op"] == "conv" and data["attrs"]["padding"] != "same":
            data["prepack"] = True
    return arch
