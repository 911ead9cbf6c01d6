"""The front end's graph (archdsl/ir/digraph.py) becomes the networkx IR that building with networkx gave."""

from __future__ import annotations

import networkx as nx
import pytest

import archdsl
from archdsl.frontend import elaborate as elaborate_module
from archdsl.ir.digraph import DiGraph, is_acyclic, topological_order

NETWORKS = ["resnet18", "googlenet", "densenet121", "shufflenet_v2_x1_0", "efficientnet_b0", "resnet18_fpn",
            "yolov8n", "hrnet_w18", "inception_v3", "vit_b_16"]


def _shape(graph) -> dict:
    """Everything order- or attribute-sensitive about a graph."""
    return {
        "graph": dict(graph.graph),
        "nodes": list(graph.nodes(data=True)),
        "edges": list(graph.edges(data=True)),
        "in": {n: list(graph.in_edges(n, data=True)) for n in graph},
        "out": {n: list(graph.out_edges(n, data=True)) for n in graph},
    }


@pytest.mark.parametrize("name", NETWORKS)
def test_the_converted_graph_equals_one_built_with_networkx(name, monkeypatch):
    arch = archdsl.load(name)
    assert isinstance(arch.ir, DiGraph)  # nothing asked for networkx yet
    light_order = arch.execution_order
    converted = arch.graph
    assert isinstance(converted, nx.DiGraph) and arch.ir is converted and arch.graph is converted

    monkeypatch.setattr(elaborate_module, "DiGraph", nx.DiGraph)
    direct = archdsl.load(name)
    assert isinstance(direct.ir, nx.DiGraph)
    assert _shape(converted) == _shape(direct.graph)
    order = list(nx.lexicographical_topological_sort(direct.graph, key=lambda n: direct.graph.nodes[n]["order"]))
    assert list(light_order) == order == list(direct.execution_order)
    assert (arch.parameter_count(), arch.macs()) == (direct.parameter_count(), direct.macs())


def test_digraph_answers_as_networkx_does():
    ours, theirs = DiGraph(kind="t"), nx.DiGraph(kind="t")
    for g in (ours, theirs):
        g.add_node("a", x=1)
        g.add_edge("a", "b", index=0)
        g.add_edge("c", "b", index=1)
        g.add_edge("a", "b", w=2)  # updates, keeps the edge's place
        g.add_node("a", y=2)
    assert _shape(ours) == _shape(theirs)
    assert [list(g.successors("a")) for g in (ours, theirs)] == [["b"], ["b"]]
    assert [list(g.predecessors("b")) for g in (ours, theirs)] == [["a", "c"], ["a", "c"]]
    assert (ours.in_degree("b"), ours.out_degree("a"), ours.has_edge("a", "b"), ours.has_edge("b", "a")) == \
           (theirs.in_degree("b"), theirs.out_degree("a"), True, False)
    copied = ours.copy()
    copied.nodes["a"]["x"] = 9
    copied.edges["a", "b"]["index"] = 5
    assert ours.nodes["a"]["x"] == 1 and ours.edges["a", "b"]["index"] == 0  # attribute dicts are copies
    assert _shape(ours.to_networkx()) == _shape(theirs)


def test_cycles_are_found_on_either_graph():
    for cls in (DiGraph, nx.DiGraph):
        g = cls()
        g.add_edge(1, 2)
        g.add_edge(2, 3)
        assert is_acyclic(g) and topological_order(g, key=lambda n: -n) == [1, 2, 3]
        g.add_edge(3, 1)
        assert not is_acyclic(g)
        with pytest.raises(ValueError, match="cycle"):
            topological_order(g, key=lambda n: n)


def test_ties_go_to_the_smallest_key():
    g = DiGraph()
    for n in "abcd":
        g.add_node(n)
    g.add_edge("d", "a")
    assert topological_order(g, key=lambda n: {"a": 0, "b": 3, "c": 1, "d": 2}[n]) == ["c", "d", "a", "b"]
