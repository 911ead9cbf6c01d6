"""Where a network's head starts and where its stages end, read from the IR alone.

timm's vocabulary: ``forward_features`` returns the last feature map (before
global pooling), ``forward_head`` pools and classifies it, ``pre_logits`` is
the vector the classifier reads, and ``features_only`` returns one feature map
per stage with its ``feature_info`` (channels, reduction, module). A spec
declares none of this; it follows from the graph:

- the *classifier* is what changes with ``num_classes`` (found by the caller,
  who can elaborate the spec twice), else the last conv or linear;
- the *head* is the chain ending at the output that holds the classifier and
  the global pooling, plus the flatten, dropout, linear and activation ops
  around them; ``features`` is the value it starts from;
- a *stage* ends where the spatial reduction changes: per reduction level,
  the last main-path value that a block instance returns (else the last
  main-path value at that level), so stage outputs are block outputs, as in
  timm's feature extractors; a 1x1 expansion conv feeding a head without a
  hidden layer is the head's (timm's ``conv_head``), not a stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ArchError
from .graph import Architecture, inputs_of
from .registry import REGISTRY, Category

_HEAD_CATEGORIES = {Category.LINEAR, Category.RESHAPE, Category.REGULARIZER, Category.ACTIVATION}


@dataclass(frozen=True)
class Head:
    """The split of a network into features and head (IR node ids).

    ``features``: the value ``forward_features`` returns; ``classifier``: the
    op that produces the logits' classes; ``pre_logits``: the value the
    classifier reads; ``nodes``: every op after ``features`` on the way out.
    """

    features: str
    classifier: str
    pre_logits: str
    nodes: frozenset


@dataclass(frozen=True)
class Feature:
    """One stage output: IR node, channels, reduction (input side / map side) and module path."""

    node: str
    channels: int
    reduction: int
    module: str


def last_layer(arch: Architecture) -> str:
    """The last conv or linear on the way to the output (the classifier of a spec without ``num_classes``)."""
    node = arch.output
    while True:
        if REGISTRY[arch.graph.nodes[node]["op"]].category in (Category.CONV, Category.LINEAR):
            return node
        srcs = inputs_of(arch.graph, node)
        if len(srcs) != 1 or arch.graph.nodes[srcs[0]]["op"] == "input":
            raise ArchError(f"{arch.name}: no classifier (a conv or linear) ends the network")
        node = srcs[0]


def find_head(arch: Architecture, classifier: str) -> Head:
    """Walk back from the output through the head: classifier, global pooling and the ops around them.

    Raises :class:`~archdsl.ArchError` when the output is not reached from the
    classifier through one chain.
    """
    graph = arch.graph
    node, nodes = arch.output, []
    seen_classifier = seen_pool = False
    while True:
        category = REGISTRY[graph.nodes[node]["op"]].category
        if node == classifier:
            seen_classifier = True
        elif seen_classifier and seen_pool and category is not Category.REGULARIZER:
            break  # the feature map: the head starts after it
        elif category is Category.POOL and len(graph.nodes[node]["shape"]) == 3:
            seen_pool = True
        elif category not in _HEAD_CATEGORIES and not (seen_pool and not seen_classifier):
            break
        nodes.append(node)
        srcs = inputs_of(graph, node)
        if len(srcs) != 1 or graph.nodes[srcs[0]]["op"] == "input":
            raise ArchError(f"{arch.name}: cannot tell the head from the features (no single chain "
                            f"from the feature map to the classifier)")
        node = srcs[0]
    if not seen_classifier:
        raise ArchError(f"{arch.name}: the classifier {graph.nodes[classifier]['name']!r} is not on the "
                        f"output's chain")
    pre_logits = inputs_of(graph, classifier)[0]
    return Head(features=node, classifier=classifier, pre_logits=pre_logits, nodes=frozenset(nodes))


def main_path(arch: Architecture, until: str) -> list[str]:
    """The values every path from the input to ``until`` passes through, input first (dominators)."""
    import networkx as nx  # only here: inspection commands never import it

    graph = arch.graph.subgraph(n for n, d in arch.graph.nodes(data=True) if not d.get("aux"))
    idom = nx.immediate_dominators(graph, "input")
    chain = [until]
    while chain[-1] != "input":
        chain.append(idom[chain[-1]])
    return chain[::-1][1:]


def scope_outputs(arch: Architecture, blocks_only: bool = False) -> dict[str, list]:
    """IR node → the scope paths it is the one output of, innermost first.

    ``blocks_only`` keeps the outermost block instances (``layer1.0``, not a
    block inside it), else every scope (``layer1`` too).
    """
    graph = arch.graph
    members: dict[str, set] = {}
    for node, data in arch.ops(include_aux=False):
        parts = data["name"].split(".")
        for i in range(1, len(parts)):
            members.setdefault(".".join(parts[:i]), set()).add(node)
    scopes = graph.graph.get("scopes", {})
    out: dict[str, list] = {}
    is_block = lambda p: (scopes.get(p) or {}).get("kind") == "block"  # noqa: E731
    for path in sorted(members, key=lambda p: -p.count(".")):
        parents = [path.rsplit(".", i)[0] for i in range(1, path.count(".") + 1)]
        if blocks_only and (not is_block(path) or any(is_block(p) for p in parents)):
            continue  # a block inside a block (an MBConv's expansion conv) ends no stage
        nodes = members[path]
        gives = {n for n in nodes if n == arch.output or any(s not in nodes for s in graph.successors(n))}
        if len(gives) == 1:
            out.setdefault(gives.pop(), []).append(path)
    return out


def feature_points(arch: Architecture, head: Head) -> list[Feature]:
    """One :class:`Feature` per reduction level, from the first below the input to ``head.features``."""
    side = arch.input_shape[-2]
    blocks = {node: paths[0] for node, paths in scope_outputs(arch, blocks_only=True).items()}
    modules = scope_outputs(arch)
    levels: dict[int, list] = {}
    for node in main_path(arch, head.features):
        shape = arch.graph.nodes[node]["shape"]
        if len(shape) != 3:
            continue
        reduction = 2 ** round(math.log2(side / shape[-2]))
        if reduction > 1:
            levels.setdefault(reduction, []).append(node)
    out = []
    last = max(levels, default=None)
    level_of = {n: r for r, nodes in levels.items() for n in nodes}
    for reduction, nodes in sorted(levels.items()):
        in_blocks = [n for n in nodes if n in blocks]
        if reduction == last and len(in_blocks) > 1 and _head_conv(arch, head, in_blocks[-1], blocks):
            in_blocks.pop()
        whole = [n for n in nodes if not _inside_unit(arch, n, level_of)]
        node = in_blocks[-1] if in_blocks else whole[-1] if whole else nodes[-1]
        data = arch.graph.nodes[node]
        out.append(Feature(node, data["shape"][0], reduction, modules.get(node, [data["name"]])[-1]))
    return out


def _head_conv(arch: Architecture, head: Head, node: str, blocks: dict) -> bool:
    """Whether ``node`` is a head's 1x1 expansion conv (EfficientNet's ``conv_head``), not a stage.

    It is when a block of one pointwise conv feeds the head directly and the
    head has no hidden layer of its own (MobileNetV3's head has one, and
    there the conv ends the last stage), as timm's feature extractors count.
    """
    if node != head.features:
        return False
    hidden = [n for n in head.nodes if n != head.classifier
              and REGISTRY[arch.graph.nodes[n]["op"]].category in (Category.CONV, Category.LINEAR)]
    prefix = blocks[node] + "."
    convs = [d for _, d in arch.ops(include_aux=False)
             if d["name"].startswith(prefix) and REGISTRY[d["op"]].category is Category.CONV]
    kernel = convs[0]["attrs"].get("kernel") if len(convs) == 1 else None
    return not hidden and kernel in (1, (1, 1), [1, 1])


def _inside_unit(arch: Architecture, node: str, level_of: dict) -> bool:
    """Whether ``node`` is inside a nested scope (``layers.8.0``) that ends at another reduction level.

    Such a value is half-way through a unit (an inverted residual's
    expansion before its strided conv), not a stage output. Top-level scopes
    (``features``) span every level and do not count.
    """
    name = arch.graph.nodes[node]["name"]
    scopes = [name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)]
    for scope in scopes:
        if "." not in scope:
            continue
        prefix = scope + "."
        levels = {level_of.get(n) for n in level_of if arch.graph.nodes[n]["name"].startswith(prefix)}
        if len(levels) > 1:
            return True
    return False
