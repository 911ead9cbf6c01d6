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

Edges carry ``index``: the position of the source among the target's inputs.
Graph attributes: ``scopes`` maps a scope path to ``{"kind", "block", "span"}``
(blocks and named groups, for diagrams and summaries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .ops import REGISTRY


def inputs_of(graph: nx.DiGraph, node: str) -> list[str]:
    """The producers feeding ``node``, in argument order."""
    preds = [(data["index"], src) for src, _, data in graph.in_edges(node, data=True)]
    return [src for _, src in sorted(preds)]


def verify(graph: nx.DiGraph) -> None:
    """Check the IR invariants; raises AssertionError (a compiler bug) on violation."""
    assert nx.is_directed_acyclic_graph(graph), "IR has a cycle"
    inputs = [n for n, d in graph.nodes(data=True) if d["op"] == "input"]
    assert len(inputs) == 1, f"IR must have one input, has {len(inputs)}"
    names = set()
    for node, data in graph.nodes(data=True):
        for key in ("op", "attrs", "name", "shape", "in_shapes", "params", "buffers", "macs", "order"):
            assert key in data, f"node {node} lacks {key}"
        assert data["name"] not in names, f"duplicate module path {data['name']}"
        names.add(data["name"])
        assert all(isinstance(d, int) and d > 0 for d in data["shape"]), f"bad shape at {node}"
        if data["op"] == "input":
            continue
        assert data["op"] in REGISTRY, f"unknown op {data['op']} at {node}"
        srcs = inputs_of(graph, node)
        indices = sorted(d["index"] for _, _, d in graph.in_edges(node, data=True))
        assert indices == list(range(len(srcs))), f"edge indices of {node} are not 0..n-1"
        assert [graph.nodes[s]["shape"] for s in srcs] == list(data["in_shapes"]), \
            f"input shapes of {node} disagree with its producers"
        expected = REGISTRY[data["op"]].inputs
        assert expected == -1 or expected == len(srcs), f"{node} has {len(srcs)} inputs"


@dataclass
class Architecture:
    """An elaborated network: the IR graph plus what it was made from.

    ``graph`` is the networkx IR; ``output`` and ``aux_outputs`` name the nodes
    whose values the network returns (auxiliary ones only in training mode).
    """

    name: str
    family: str
    variant: str | None
    source: str
    params: dict[str, Any]
    input_shape: tuple
    graph: nx.DiGraph
    output: str
    aux_outputs: dict[str, str] = field(default_factory=dict)

    @property
    def output_shape(self) -> tuple:
        return tuple(self.graph.nodes[self.output]["shape"])

    def ops(self, include_aux: bool = True):
        """Nodes in execution (topological) order, as ``(node_id, data)``."""
        order = nx.lexicographical_topological_sort(self.graph, key=lambda n: self.graph.nodes[n]["order"])
        for node in order:
            data = self.graph.nodes[node]
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
        from .torch_backend import compile_module
        return compile_module(self)

    def summary(self, depth: int | None = None):
        """The per-layer table of shapes, parameters and MACs (print it); see archdsl.summary."""
        from .summary import summarize
        return summarize(self, depth)

    def render(self, path, depth: int | None = None, collapse_repeats: bool = False, direction: str = "TB"):
        """Write a Graphviz diagram (.svg/.png/.pdf/.dot); see archdsl.render."""
        from .render import render
        return render(self, path, depth, collapse_repeats, direction)

    def _repr_svg_(self):
        """The diagram, inline in Jupyter."""
        from .render import repr_svg
        return repr_svg(self)

    def report(self) -> dict:
        """The facts ``archdsl compile --json`` prints."""
        return {
            "name": self.name, "family": self.family, "variant": self.variant,
            "source": self.source, "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape), "params": self.parameter_count(),
            "macs": self.macs(), "aux_outputs": sorted(self.aux_outputs),
        }
