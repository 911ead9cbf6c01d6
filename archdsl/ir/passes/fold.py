"""Folding passes: BatchNorm and fixed input affines merge into the neighbouring conv/linear.

The IR holds no tensors, so a fold rewrites the graph and appends
*derivations* to ``graph.graph["derivations"]``: ordered steps saying how
each new tensor is computed from the loaded state dict. A back end applies
them in order (:mod:`archdsl.backends.inference`); each step reads the state
as left by the steps before it, so folds compose. Steps (``key`` is the
tensor written; per-channel vectors have the conv's output channels):

``bn_scale``   ``key = weight * γ / sqrt(var + eps)`` along the output channels
               (``weight`` a key, ``norm`` the BatchNorm's module path)
``bn_shift``   ``key = (bias - mean) * γ / sqrt(var + eps) + β`` (``bias`` a key or
               None for zero)
``in_shift``   ``key = bias + Σ_{c,kh,kw} weight[o, c] * shift[c]`` (a fixed input
               shift moved behind a padding-free conv)
``in_scale``   ``key = weight * scale[c]`` along the input channels
"""

from __future__ import annotations

from ..graph import Architecture
from .rewrite import copy_arch, first_input, only_reader, try_bypass


def _step(key: str, rule: str, **args) -> dict:
    return {"key": key, "rule": rule, **args}


def _with_bias(arch: Architecture, node: str) -> None:
    """Give a conv/linear node a bias (folds always produce one)."""
    data = arch.graph.nodes[node]
    if not data["attrs"]["bias"]:
        data["attrs"]["bias"] = True
        data["params"] += data["shape"][0]


def nodes_of(arch: Architecture, op: str):
    """The nodes of ``op`` in execution order, skipping any an earlier rewrite in the pass removed."""
    for node in list(arch.execution_order):
        if node in arch.graph and arch.graph.nodes[node]["op"] == op:
            yield node


def fold_batchnorm(arch: Architecture) -> Architecture:
    """Fold each BatchNorm whose input is a conv or linear read by nothing else into that layer.

    The BatchNorm node disappears; the conv/linear gains a bias; two
    derivations (``bn_scale``, ``bn_shift``) say how its weight and bias follow
    from the loaded tensors. Exact in eval mode (running statistics).
    """
    arch = copy_arch(arch)
    steps = list(arch.graph.graph.get("derivations", ()))
    for node in nodes_of(arch, "batchnorm"):
        data = arch.graph.nodes[node]
        layer = first_input(arch, node)
        layer_data = arch.graph.nodes[layer]
        if layer_data["op"] not in ("conv", "linear") or only_reader(arch, layer) != node:
            continue
        folded = try_bypass(arch, node, layer)
        if folded is None:
            continue
        arch = folded
        had_bias = layer_data["attrs"]["bias"]
        _with_bias(arch, layer)
        eps = data["attrs"]["eps"]
        steps.append(_step(f"{layer}.bias", "bn_shift", bias=f"{layer}.bias" if had_bias else None,
                           norm=data["name"], eps=eps))
        steps.append(_step(f"{layer}.weight", "bn_scale", weight=f"{layer}.weight", norm=data["name"], eps=eps))
    arch.graph.graph["derivations"] = steps
    return arch


def fold_input_affine(arch: Architecture) -> Architecture:
    """Fold a fixed ``channel_affine`` into the padding-free, ungrouped conv that alone reads it.

    A shift moves into the conv's bias exactly only when no zero padding would
    see it, hence the padding condition. GoogLeNet's and Inception v3's input
    re-normalisation (``transform_input``) is such an affine.
    """
    arch = copy_arch(arch)
    steps = list(arch.graph.graph.get("derivations", ()))
    for node in nodes_of(arch, "channel_affine"):
        data = arch.graph.nodes[node]
        conv = only_reader(arch, node)
        if conv is None:
            continue
        attrs = arch.graph.nodes[conv]["attrs"]
        if arch.graph.nodes[conv]["op"] != "conv" or attrs["groups"] != 1 or attrs["padding"] != (0, 0):
            continue
        folded = try_bypass(arch, node, first_input(arch, node))
        if folded is None:
            continue
        arch = folded
        had_bias = attrs["bias"]
        _with_bias(arch, conv)
        steps.append(_step(f"{conv}.bias", "in_shift", bias=f"{conv}.bias" if had_bias else None,
                           weight=f"{conv}.weight", shift=list(data["attrs"]["shift"])))
        steps.append(_step(f"{conv}.weight", "in_scale", weight=f"{conv}.weight",
                           scale=list(data["attrs"]["scale"])))
    arch.graph.graph["derivations"] = steps
    return arch

