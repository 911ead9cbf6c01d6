"""The IR: a ``networkx.DiGraph`` with one node per primitive op, fully resolved.

Node attributes (every node):
    op         primitive op name (``"input"`` for the graph input)
    attrs      resolved, validated arguments (ints, floats, tuples, strings)
    name       module path, e.g. ``layer3.2.conv1`` (unique; the input is ``input``)
    span       the spec text that wrote this op (None for the input)
    shape      output shape without batch, ``(C, H, W)`` or ``(F,)``
    in_shapes  input shapes, in argument order
    params     trainable parameter count
    buffers    buffer element count (BatchNorm running stats)
    macs       multiply-accumulates (torchvision ``_ops`` convention)
    aux        name of the auxiliary output this node feeds only, else None
    order      creation index; ties in topological order are broken by it
    inplace    (optional, set by the ``inplace`` pass) may overwrite its first input

Edges carry ``index``: the position of the source among the target's inputs
(and ``indices``, every position, when a target reads one source twice).
Graph attributes: ``scopes`` maps a scope path to ``{"kind", "block", "span"}``
(blocks and named groups, for diagrams and summaries); ``outputs`` maps each
output's key to its node, in declaration order.

A network has one ``input`` node per declared input (node ``input`` when the
spec declares one unnamed input, else the inputs' names) and one or more outputs.

Elaboration builds the graph as an :class:`archdsl.ir.digraph.DiGraph` (same
methods, no networkx import); ``Architecture.graph`` converts it to networkx on
first access, so commands that only inspect a network never import networkx.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ArchError
from .digraph import DiGraph, is_acyclic, topological_order
from .ops import REGISTRY

if TYPE_CHECKING:
    import networkx as nx

NODE_KEYS = ("op", "attrs", "name", "shape", "in_shapes", "params", "buffers", "macs", "order")


class IRError(ArchError):
    """The IR broke one of its invariants: a compiler bug, not a spec mistake.

    Raised by :func:`verify` (never an ``assert``, so it holds under ``python -O``)
    with the offending node and the stage that produced the graph.
    """


def inputs_of(graph: "nx.DiGraph | DiGraph", node: str) -> list[str]:
    """The producers feeding ``node``, in argument order."""
    preds = [(i, src) for src, data in graph.pred[node].items() for i in edge_indices(data)]
    return [src for _, src in sorted(preds)]


def edge_indices(data: dict) -> tuple:
    """The argument positions an edge feeds: ``indices`` when one tensor is read twice (``x + x``)."""
    return tuple(data.get("indices", (data["index"],)))


def verify(graph: "nx.DiGraph | DiGraph", after: str = "elaboration") -> None:
    """Check the IR invariants; raises :class:`IRError` naming the node and ``after`` (the stage).

    Invariants: acyclic; at least one ``input`` node; every node has :data:`NODE_KEYS`;
    unique module paths; positive integer shapes; registered ops; edge indices
    ``0..n-1``; input shapes equal their producers' shapes; arity as registered.
    """
    def fail(message: str, node=None):
        where = f" at node {node!r} ({graph.nodes[node].get('name')})" if node is not None else ""
        raise IRError(f"internal error: invalid IR after {after}{where}: {message}; please report this")

    if not is_acyclic(graph):
        fail("the graph has a cycle")
    inputs = [n for n, d in graph.nodes(data=True) if d.get("op") == "input"]
    if not inputs:
        fail("the graph has no input node")
    for key, node in graph.graph.get("outputs", {}).items():
        if node not in graph:
            fail(f"output {key!r} names a missing node {node!r}")
    names = set()
    for node, data in graph.nodes(data=True):
        missing = [key for key in NODE_KEYS if key not in data]
        if missing:
            fail(f"missing attributes {missing}", node)
        if data["name"] in names:
            fail(f"duplicate module path {data['name']!r}", node)
        names.add(data["name"])
        if not all(isinstance(d, int) and d > 0 for d in data["shape"]):
            fail(f"bad shape {data['shape']!r}", node)
        if data["op"] != "input":
            _verify_op(graph, node, data, fail)


def _verify_op(graph: "nx.DiGraph | DiGraph", node, data: dict, fail) -> None:
    if data["op"] not in REGISTRY:
        fail(f"unknown op {data['op']!r}", node)
    reads = sorted((i, src) for src, d in graph.pred[node].items() for i in edge_indices(d))
    srcs = [src for _, src in reads]
    indices = [i for i, _ in reads]
    if indices != list(range(len(srcs))):
        fail(f"edge indices {indices} are not 0..{len(srcs) - 1}", node)
    nodes = graph.nodes
    if [nodes[s]["shape"] for s in srcs] != list(data["in_shapes"]):
        fail("input shapes disagree with the producers' shapes", node)
    expected = REGISTRY[data["op"]].inputs
    if expected != -1 and expected != len(srcs):
        fail(f"{len(srcs)} inputs, the op takes {expected}", node)


@dataclass
class Architecture:
    """An elaborated network: the IR graph plus what it was made from.

    ``graph`` is the networkx IR (converted from the front end's
    :class:`~archdsl.ir.digraph.DiGraph` on first access; ``ir`` is the graph as
    held, either kind, for code that needs only their shared methods). ``outputs`` maps each output's key to its
    node, in declaration order; a network that declares none has the one
    output ``{"output": node}`` and returns a tensor, one that declares some
    (``returns_dict``) returns a dict in every mode. ``output`` is the first
    (for a single-output network, the) output node. ``aux_outputs`` name the
    auxiliary heads' nodes (training mode only). ``inputs`` maps each input
    node (``input``, or the declared names) to its shape, in ``forward``'s
    argument order; ``input_shape`` is the first's.
    """

    name: str
    family: str
    variant: str | None
    source: str
    params: dict[str, Any]
    input_shape: tuple
    graph: Any  # networkx.DiGraph; a property (below) converting the front end's DiGraph lazily
    output: str
    aux_outputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    returns_dict: bool = False
    inputs: dict[str, tuple] = field(default_factory=dict)

    def __post_init__(self):
        if not self.outputs:
            self.outputs = {"output": self.output}
        if not self.inputs:
            self.inputs = {"input": tuple(self.input_shape)}

    @property
    def ir(self) -> "nx.DiGraph | DiGraph":
        """The IR graph as held, without converting: archdsl's :class:`DiGraph` until ``graph`` is
        first read, networkx's after. Both answer ``nodes``, ``in_edges``, ``out_edges``, ``copy`` …"""
        return self.__dict__["_graph"]

    @property
    def output_shape(self) -> tuple:
        return tuple(self.ir.nodes[self.output]["shape"])

    @property
    def output_shapes(self) -> dict[str, tuple]:
        """Each output's key and shape (batch excluded), in declaration order."""
        return {key: tuple(self.ir.nodes[node]["shape"]) for key, node in self.outputs.items()}

    @functools.cached_property
    def execution_order(self) -> tuple:
        """Node ids in execution order (topological, ties by creation), computed once."""
        nodes = self.ir.nodes
        return tuple(topological_order(self.ir, key=lambda n: nodes[n]["order"]))

    def ops(self, include_aux: bool = True):
        """Nodes in execution (topological) order, as ``(node_id, data)``."""
        nodes = self.ir.nodes
        for node in self.execution_order:
            data = nodes[node]
            if data["op"] == "input" or (data.get("aux") and not include_aux):
                continue
            yield node, data

    def parameter_count(self, include_aux: bool = True) -> int:
        return sum(d["params"] for _, d in self.ops(include_aux))

    def buffer_count(self, include_aux: bool = True) -> int:
        return sum(d["buffers"] for _, d in self.ops(include_aux))

    def macs(self, include_aux: bool = False) -> int:
        """Multiply-accumulates of one image (convs and linears; aux heads excluded by default)."""
        return sum(d["macs"] for _, d in self.ops(include_aux))

    def to_torch(self):
        """Compile to a ``torch.fx.GraphModule`` (random init, like torch's defaults)."""
        from ..backends.torch_fx import compile_module
        return compile_module(self)

    def summary(self, depth: int | None = None):
        """The per-layer table of shapes, parameters and MACs (print it); see archdsl.backends.table."""
        from ..backends.table import summarize
        return summarize(self, depth)

    def render(self, path, depth: int | None = None, collapse_repeats: bool = False, direction: str = "TB"):
        """Write a Graphviz diagram (.svg/.png/.pdf/.dot); see archdsl.backends.dot."""
        from ..backends.dot import render
        return render(self, path, depth, collapse_repeats, direction)

    def _repr_svg_(self):
        """The diagram, inline in Jupyter."""
        from ..backends.dot import repr_svg
        return repr_svg(self)

    def report(self) -> dict:
        """The facts ``archdsl compile --json`` prints."""
        return {
            "name": self.name, "family": self.family, "variant": self.variant,
            "source": self.source, "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape), "params": self.parameter_count(),
            "inputs": {k: list(v) for k, v in self.inputs.items()},
            "outputs": {k: list(v) for k, v in self.output_shapes.items()},
            "macs": self.macs(), "aux_outputs": sorted(self.aux_outputs),
        }


def _graph(arch: Architecture):
    held = arch.__dict__["_graph"]
    if isinstance(held, DiGraph):  # first access: convert once, keep networkx's
        held = arch.__dict__["_graph"] = held.to_networkx()
    return held


def _set_graph(arch: Architecture, graph) -> None:
    arch.__dict__["_graph"] = graph


# Assigned after the dataclass is made, so ``graph`` stays an ordinary constructor argument.
Architecture.graph = property(_graph, _set_graph, doc="The IR as a ``networkx.DiGraph`` (converted once, on "
                                                       "first access, from the front end's graph).")
