"""Graph surgery shared by the inference passes: bypass a node, read its only reader.

Every helper works on a graph copy the pass owns and keeps the IR's
invariants: edge indices stay ``0..n-1`` and each reader's ``in_shapes``
follow its new producers, so ``verify()`` after the pass still holds.
"""

from __future__ import annotations

import dataclasses


from ..graph import Architecture, IRError, inputs_of


def copy_arch(arch: Architecture) -> Architecture:
    """A copy of ``arch`` whose graph (and each node's attribute dict) the caller may change."""
    graph = arch.graph.copy()
    for _, data in graph.nodes(data=True):
        data["attrs"] = dict(data["attrs"])
    graph.graph = {**arch.graph.graph}
    return dataclasses.replace(arch, graph=graph, aux_outputs=dict(arch.aux_outputs))


def only_reader(arch: Architecture, node: str) -> str | None:
    """The one node reading ``node``'s value, or None (several readers, none, or a network output)."""
    graph = arch.graph
    if graph.out_degree(node) != 1 or is_output(arch, node):
        return None
    return next(iter(graph.successors(node)))


def is_output(arch: Architecture, node: str) -> bool:
    """Whether the network returns ``node``'s value (the main or an auxiliary output)."""
    return node == arch.output or node in arch.outputs.values() or node in arch.aux_outputs.values()


def bypass(arch: Architecture, node: str, replacement: str) -> Architecture:
    """Remove ``node``; its readers (and the network output, if it was one) read ``replacement``.

    ``replacement`` must produce a value of ``node``'s shape (the caller's rule
    guarantees it: pass-through ops, or a producer that absorbed ``node``).
    Returns ``arch`` with its output names updated; the graph is changed in place.
    """
    graph = arch.graph
    for reader in list(graph.successors(node)):
        index = graph.edges[node, reader]["index"]
        graph.remove_edge(node, reader)
        if graph.has_edge(replacement, reader):
            # one IR edge cannot carry two arguments (``x + dropout(x)``); try_bypass checks first
            raise IRError(f"internal error: cannot bypass {node!r}: {reader!r} reads {replacement!r} already")
        graph.add_edge(replacement, reader, index=index)
        data = graph.nodes[reader]
        data["in_shapes"] = tuple(graph.nodes[s]["shape"] for s in inputs_of(graph, reader))
    graph.remove_node(node)
    output = replacement if arch.output == node else arch.output
    outputs = {k: (replacement if v == node else v) for k, v in arch.outputs.items()}
    aux = {k: (replacement if v == node else v) for k, v in arch.aux_outputs.items()}
    if graph.graph.get("output") == node:
        graph.graph["output"] = replacement
    if "outputs" in graph.graph:  # the graph's own record of the outputs, which verify() checks
        graph.graph["outputs"] = {k: (replacement if v == node else v) for k, v in graph.graph["outputs"].items()}
    return dataclasses.replace(arch, output=output, outputs=outputs, aux_outputs=aux)


def try_bypass(arch: Architecture, node: str, replacement: str) -> Architecture | None:
    """:func:`bypass`, or None (graph untouched) when a reader would read ``replacement`` twice."""
    graph = arch.graph
    if any(graph.has_edge(replacement, reader) for reader in graph.successors(node)):
        return None
    return bypass(arch, node, replacement)


def first_input(arch: Architecture, node: str) -> str:
    """The producer of ``node``'s first argument."""
    return inputs_of(arch.graph, node)[0]
