"""The ``inplace`` pass: which ops may overwrite their input.

An activation with an in-place form (``inplace_safe``) may overwrite its
input, and a residual ``add`` may accumulate into its first branch, when that
input is a fresh tensor (``fresh_output``: a conv, norm, linear or join
result) that nothing else reads and that is not a network output, or the
output of dropout / stochastic depth (``aliases_input``: in eval mode their
input itself) over such a tensor — exactly when torchvision's hand-written
``relu(inplace=True)``, ``out += identity`` and EfficientNet's
``result = stochastic_depth(result); result += input`` are safe. The pass sets the node attribute ``inplace = True``; the torch
backend emits ``inplace=True`` modules and ``add_`` for those nodes. A spec
may keep an op out of place (``relu(inplace = false)``: the node arrives with
``inplace = False``), as a reference that writes ``nn.ReLU()`` does; on a
channels_last 1x1 map that decides the memory format the next conv sees.
"""

from __future__ import annotations

import dataclasses

from ..graph import Architecture, edge_indices, inputs_of
from ..registry import REGISTRY


def _overwritable(arch: Architecture, src: str) -> bool:
    graph = arch.ir
    op = graph.nodes[src]["op"]
    reads = sum(len(edge_indices(d)) for _, _, d in graph.out_edges(src, data=True))
    if op not in REGISTRY or reads != 1 or src in arch.outputs.values() or src in arch.aux_outputs.values():
        return False
    traits = REGISTRY[op].traits
    if traits.aliases_input:  # stochastic depth in eval hands on its input: as overwritable as that is
        srcs = inputs_of(graph, src)
        return bool(srcs) and _overwritable(arch, srcs[0])
    return traits.fresh_output


def mark_inplace(arch: Architecture) -> Architecture:
    """A copy of ``arch`` with ``inplace = True`` on nodes that may overwrite their first input."""
    graph = arch.ir.copy()
    for node, data in graph.nodes(data=True):
        if data["op"] == "input" or data.get("inplace") is False:
            continue
        srcs = inputs_of(graph, node)
        if REGISTRY[data["op"]].traits.inplace_safe and srcs and _overwritable(arch, srcs[0]):
            data["inplace"] = True
    return dataclasses.replace(arch, graph=graph)
