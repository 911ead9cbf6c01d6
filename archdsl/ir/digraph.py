"""The IR as elaboration builds it: a small directed graph that becomes a ``networkx.DiGraph`` on demand.

The IR is a ``networkx.DiGraph`` (``Architecture.graph``). Importing networkx,
though, takes ~0.2 s — its package import loads every algorithm — which was
half of an ``archdsl check``. Elaboration, ``verify``, the default pass
pipeline, summaries and counts need none of its algorithms, only a handful of
graph methods; :class:`DiGraph` has exactly those, with networkx's semantics
and iteration orders, and :meth:`DiGraph.to_networkx` gives the networkx graph
that building with networkx directly would have given (same node, edge,
successor and predecessor orders; attribute dicts copied). ``Architecture.graph``
converts on first access; ``Architecture.ir`` is whichever graph is held.

:func:`is_acyclic` and :func:`topological_order` work on either graph.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Iterator


class _NodeView:
    """``graph.nodes``: ``nodes[n]`` is n's attribute dict; ``nodes(data=True)`` yields ``(n, dict)``."""

    __slots__ = ("_node",)

    def __init__(self, node: dict):
        self._node = node

    def __getitem__(self, n) -> dict:
        return self._node[n]

    def __iter__(self) -> Iterator:
        return iter(self._node)

    def __len__(self) -> int:
        return len(self._node)

    def __contains__(self, n) -> bool:
        return n in self._node

    def __call__(self, data: bool = False):
        return iter(self._node.items()) if data else iter(self._node)


class _EdgeView:
    """``graph.edges``: ``edges[u, v]`` is the edge's attribute dict; ``edges(data=True)`` yields ``(u, v, dict)``."""

    __slots__ = ("_graph",)

    def __init__(self, graph: "DiGraph"):
        self._graph = graph

    def __getitem__(self, edge: tuple) -> dict:
        u, v = edge
        return self._graph._succ[u][v]

    def __iter__(self):
        return self(data=False)

    def __len__(self) -> int:
        return len(self._graph._edges)

    def __call__(self, data: bool = False):  # networkx's order: by source node, then by insertion
        return ((u, v, d) if data else (u, v) for u, nbrs in self._graph._succ.items() for v, d in nbrs.items())


class DiGraph:
    """A directed graph with node, edge and graph attributes: the subset of ``networkx.DiGraph`` the
    front end uses (``add_node``, ``add_edge``, ``has_edge``, ``nodes``, ``edges``, ``in_edges``,
    ``out_edges``, ``successors``, ``predecessors``, ``in_degree``, ``out_degree``, ``copy``,
    ``number_of_nodes``, ``graph``), with the same semantics. No removal: passes that remove nodes
    work on the networkx graph.
    """

    def __init__(self, **attr: Any):
        self.graph: dict = dict(attr)
        self._node: dict = {}
        self._succ: dict = {}
        self._pred: dict = {}
        # (u, v) -> None in insertion order: converting in this order gives networkx the same
        # successor and predecessor orders as building with it would have
        self._edges: dict = {}

    # ---- building ----------------------------------------------------------------------------
    def add_node(self, n, **attr) -> None:
        if n not in self._node:
            self._node[n] = {}
            self._succ[n] = {}
            self._pred[n] = {}
        self._node[n].update(attr)

    def add_edge(self, u, v, **attr) -> None:
        for n in (u, v):
            if n not in self._node:
                self.add_node(n)
        data = self._succ[u].get(v)
        if data is None:
            data = self._succ[u][v] = self._pred[v][u] = {}
            self._edges[(u, v)] = None
        data.update(attr)

    # ---- queries -----------------------------------------------------------------------------
    @property
    def nodes(self) -> _NodeView:
        return _NodeView(self._node)

    @property
    def edges(self) -> _EdgeView:
        return _EdgeView(self)

    @property
    def succ(self) -> dict:
        """``succ[u]`` maps each successor ``v`` to the edge's attribute dict (read only)."""
        return self._succ

    @property
    def pred(self) -> dict:
        """``pred[v]`` maps each predecessor ``u`` to the edge's attribute dict (read only)."""
        return self._pred

    def __contains__(self, n) -> bool:
        return n in self._node

    def __iter__(self) -> Iterator:
        return iter(self._node)

    def __len__(self) -> int:
        return len(self._node)

    def number_of_nodes(self) -> int:
        return len(self._node)

    def has_node(self, n) -> bool:
        return n in self._node

    def has_edge(self, u, v) -> bool:
        return u in self._succ and v in self._succ[u]

    def successors(self, n) -> Iterator:
        return iter(self._succ[n])

    def predecessors(self, n) -> Iterator:
        return iter(self._pred[n])

    def in_degree(self, n) -> int:
        return len(self._pred[n])

    def out_degree(self, n) -> int:
        return len(self._succ[n])

    def in_edges(self, n, data: bool = False) -> list:
        return [(u, n, d) if data else (u, n) for u, d in self._pred[n].items()]

    def out_edges(self, n, data: bool = False) -> list:
        return [(n, v, d) if data else (n, v) for v, d in self._succ[n].items()]

    # ---- copies ------------------------------------------------------------------------------
    def copy(self) -> "DiGraph":
        """A new graph with copies of every attribute dict, edges re-added by source node as
        networkx's ``copy`` does (so a copy's predecessor order is networkx's too)."""
        new = DiGraph(**self.graph)
        new._node = {n: dict(data) for n, data in self._node.items()}
        new._succ = {n: {} for n in self._node}
        new._pred = {n: {} for n in self._node}
        for u, nbrs in self._succ.items():
            for v, data in nbrs.items():
                new._succ[u][v] = new._pred[v][u] = dict(data)
                new._edges[(u, v)] = None
        return new

    def to_networkx(self):
        """The ``networkx.DiGraph`` with these nodes, edges and attributes, in the same orders."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.graph.update(self.graph)
        graph.add_nodes_from(self._node.items())
        graph.add_edges_from((u, v, self._succ[u][v]) for u, v in self._edges)
        return graph


def _in_degrees(graph) -> dict:
    return {n: len(graph.pred[n]) for n in graph}


def is_acyclic(graph) -> bool:
    """True when ``graph`` (archdsl's or networkx's ``DiGraph``) has no directed cycle (Kahn's algorithm)."""
    indegree = _in_degrees(graph)
    ready = [n for n, d in indegree.items() if d == 0]
    seen = 0
    while ready:
        n = ready.pop()
        seen += 1
        for m in graph.succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    return seen == len(indegree)


def topological_order(graph, key: Callable[[Any], Any]) -> list:
    """The topological order that takes, of the nodes ready at each step, the one with the smallest
    ``key`` (networkx's ``lexicographical_topological_sort``; unique when keys are). Raises
    ``ValueError`` on a cycle."""
    indegree = _in_degrees(graph)
    heap = [(key(n), i, n) for i, (n, d) in enumerate(indegree.items()) if d == 0]
    heapq.heapify(heap)
    order, tie = [], len(indegree)
    while heap:
        _, _, n = heapq.heappop(heap)
        order.append(n)
        for m in graph.succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                heapq.heappush(heap, (key(m), tie, m))
                tie += 1
    if len(order) != len(indegree):
        raise ValueError("the graph has a cycle")
    return order
