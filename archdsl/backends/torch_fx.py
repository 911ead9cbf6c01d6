"""IR → a tree of real modules with generated ``forward`` methods, no interpretation.

Code generation is hierarchical: every scope of the IR (a block instance such
as ``layer1.0``, a stage such as ``layer1``, a named group such as
``downsample``) becomes its own module, which its parent's graph calls like
any submodule. A scope whose members run one after another on one value is an
``nn.Sequential`` (indexable and sliceable, like torchvision's stages); any
other scope is a ``torch.fx.GraphModule`` whose generated ``forward`` takes the
scope's inputs and returns its outputs; the network itself is a
``GraphModule``. So ``model.layer4(x)``, ``nn.Sequential(*model.children())``
and torchvision's ``IntermediateLayerGetter`` work, and module names (hence
``state_dict`` keys) are the IR's scope paths (``layer1.0.conv1``). Auxiliary
heads (training-only outputs) run only in training mode, like torchvision's
GoogLeNet and Inception v3.

``forward`` takes one argument per declared input (``x`` for a single unnamed
one) and returns a tensor, or a dict in declaration order for a network that
declares outputs (torchvision's convention), in every mode.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple

import networkx as nx
import torch
import torch.fx as fx
from torch import nn

from ..ir.graph import Architecture, IRError, inputs_of
from .fx_share import CodeShare
from .init import apply_init
from .lowerings import LOWERINGS, ChannelAffine, ChannelShuffle, StochasticDepth  # noqa: F401 (re-exported)


class NetworkOutputs(NamedTuple):
    """Training-mode result of a network with auxiliary outputs.

    ``logits`` is the main output; ``aux`` maps each auxiliary output's name
    (e.g. ``aux1``) to its tensor. In eval mode the network returns the main
    output tensor alone.
    """

    logits: torch.Tensor
    aux: dict


@fx.wrap
def network_outputs(main, aux: dict):
    """Main output alone, or :class:`NetworkOutputs` when auxiliary outputs were computed.

    A dict of outputs gets the computed auxiliary outputs as extra entries instead.
    """
    computed = {k: v for k, v in aux.items() if v is not None}
    if isinstance(main, dict):
        return {**main, **computed}
    return NetworkOutputs(main, computed) if computed else main


@dataclass
class Scope:
    """One module of the compiled tree: a scope path and what it contains.

    ``ops`` maps each op node placed directly in this scope to its module name
    here (the last part of its path); ``children`` are the nested scopes by
    name; ``nodes`` holds every op node at or below this scope.
    """

    path: str
    ops: dict = field(default_factory=dict)
    children: dict = field(default_factory=dict)
    nodes: set = field(default_factory=set)

    def child(self, name: str) -> "Scope":
        if name not in self.children:
            self.children[name] = Scope(f"{self.path}.{name}" if self.path else name)
        return self.children[name]


def scope_tree(named_nodes) -> Scope:
    """The scope tree of ``(node, relative module path)`` pairs (``layer1.0.conv1``)."""
    root = Scope("")
    for node, name in named_nodes:
        *parents, leaf = name.split(".")
        scope = root
        scope.nodes.add(node)
        for part in parents:
            scope = scope.child(part)
            scope.nodes.add(node)
        scope.ops[node] = leaf
    return root


def boundary(graph: nx.DiGraph, nodes: set, outputs: set) -> tuple[list, list]:
    """The values a set of nodes reads from outside it and the values it gives outside.

    Both are in first-use (creation) order; ``outputs`` are nodes the network
    itself returns, which count as read from outside.
    """
    order = lambda n: graph.nodes[n]["order"]  # noqa: E731
    reads, gives = {}, set()
    for node in sorted(nodes, key=order):
        for src in inputs_of(graph, node):
            if src not in nodes:
                reads.setdefault(src, None)
        if node in outputs or any(dst not in nodes for dst in graph.successors(node)):
            gives.add(node)
    return list(reads), sorted(gives, key=order)


class _Codegen:
    """Emits one scope's graph; nested scopes become child modules."""

    def __init__(self, graph: nx.DiGraph, outputs: set):
        self.graph = graph  # the IR, or a view of the part being compiled
        self.outputs = outputs  # nodes the module returns: always a scope output
        self.share = CodeShare()  # identical blocks get one generated forward

    def members(self, scope: Scope) -> list:
        """Ops and child scopes of ``scope`` in an order that respects data flow.

        A child scope that cannot run as one call (data leaves it and comes
        back) is inlined: its members join the parent's, its modules stay at
        their paths under plain containers.
        """
        items = [(node, leaf) for node, leaf in scope.ops.items()]
        items += [(child, name) for name, child in scope.children.items()]
        while True:
            owner = {node: i for i, (item, _) in enumerate(items)
                     for node in (item.nodes if isinstance(item, Scope) else (item,))}
            contracted = nx.DiGraph()
            contracted.add_nodes_from(range(len(items)))
            contracted.add_edges_from((owner[src], owner[dst]) for src, dst in self.graph.subgraph(owner).edges()
                                      if owner[src] != owner[dst])
            cyclic = [i for comp in nx.strongly_connected_components(contracted) if len(comp) > 1 for i in comp]
            if not cyclic:
                break
            items = self._inline(items, {i for i in cyclic if isinstance(items[i][0], Scope)})
        first = {i: min(self.graph.nodes[n]["order"] for n in (item.nodes if isinstance(item, Scope) else (item,)))
                 for i, (item, _) in enumerate(items)}
        return [items[i] for i in nx.lexicographical_topological_sort(contracted, key=first.get)]

    @staticmethod
    def _inline(items: list, which: set) -> list:
        if not which:
            raise IRError("internal error: the IR's data flow has a cycle; please report this")
        out = []
        for i, (item, name) in enumerate(items):
            if i not in which:
                out.append((item, name))
                continue
            out += [(node, f"{name}.{leaf}") for node, leaf in item.ops.items()]
            out += [(child, f"{name}.{sub}") for sub, child in item.children.items()]
        return out

    def emit_members(self, members: list, owner: nn.Module, graph: fx.Graph, values: dict) -> dict:
        """Add ``members`` (of a scope, see :meth:`members`) to ``graph``, reading and filling ``values`` (node → fx value).

        Returns the child scopes' modules by path: ``owner`` holds empty
        stand-ins for them, to be swapped in by :func:`_with_children` once
        the parent is built (a ``GraphModule`` recompiles every ``GraphModule``
        below it when built, which nested bottom-up would cost depth × size).
        """
        children = {}
        for item, name in members:
            if isinstance(item, Scope):
                reads, gives = boundary(self.graph, item.nodes, self.outputs)
                children[name] = self.compile_scope(item, reads, gives)
                _set_submodule(owner, name, nn.Module())
                call = graph.call_module(name, tuple(values[s] for s in reads))
                if len(gives) == 1:
                    values[gives[0]] = call
                else:
                    for i, node in enumerate(gives):
                        values[node] = graph.call_function(operator.getitem, (call, i))
            else:
                values[item] = self.emit_op(item, name, owner, graph, values)
        return children

    def emit_op(self, node, name: str, owner: nn.Module, graph: fx.Graph, values: dict) -> fx.Node:
        data = self.graph.nodes[node]
        lowering = LOWERINGS[data["op"]]
        args = tuple(values[s] for s in inputs_of(self.graph, node))
        if lowering.parameter is not None:  # a bare tensor at the op's own path (class_token)
            _set_parameter(owner, name, lowering.parameter(data["attrs"], data["in_shapes"][0]))
            args = (*args, graph.get_attr(name))
        if lowering.module is None:
            return lowering.function(graph, list(args), data["attrs"], bool(data.get("inplace")))
        _set_submodule(owner, name, self.op_module(node))
        return graph.call_module(name, args)

    def op_module(self, node) -> nn.Module:
        data = self.graph.nodes[node]
        return LOWERINGS[data["op"]].module(data["attrs"], data["in_shapes"][0], bool(data.get("inplace")))

    def chain(self, members: list, reads: list, gives: list) -> bool:
        """Whether ``members`` run one after another, each on the previous one's only value.

        Such a scope compiles to an ``nn.Sequential`` (indexable, sliceable,
        iterable, as torchvision's stages are).
        """
        if len(reads) != 1 or len(gives) != 1:
            return False
        value = reads[0]
        for item, name in members:
            if "." in name:
                return False
            if isinstance(item, Scope):
                r, g = boundary(self.graph, item.nodes, self.outputs)
                if r != [value] or len(g) != 1:
                    return False
                value = g[0]
            else:
                if LOWERINGS[self.graph.nodes[item]["op"]].module is None or inputs_of(self.graph, item) != [value]:
                    return False
                value = item
        return value == gives[0]

    def compile_scope(self, scope: Scope, reads: list, gives: list) -> nn.Module:
        """The module for ``scope``: ``forward(*reads)`` returns ``gives`` (one value, or a tuple).

        An ``nn.Sequential`` when its members form a chain, else a ``GraphModule``.
        """
        members = self.members(scope)
        if self.chain(members, reads, gives):
            return nn.Sequential(OrderedDict(
                (name, self.compile_scope(item, *boundary(self.graph, item.nodes, self.outputs))
                 if isinstance(item, Scope) else self.op_module(item)) for item, name in members))
        owner, graph = nn.Module(), fx.Graph()
        names = ["x"] if len(reads) == 1 else [f"x{i}" for i in range(len(reads))]
        values = {src: graph.placeholder(n) for src, n in zip(reads, names)}
        children = self.emit_members(members, owner, graph, values)
        graph.output(values[gives[0]] if len(gives) == 1 else tuple(values[n] for n in gives))
        graph.lint()
        return _with_children(self.share.graph_module(owner, graph, _scope_class(self.graph, scope.path)), children)


def network_inputs(arch: Architecture, graph: fx.Graph) -> dict:
    """Placeholders of the network's ``forward``, one per input node in declaration order
    (``x`` for the single unnamed ``input``): IR input node → fx value."""
    return {node: graph.placeholder("x" if node == "input" else node) for node in arch.inputs}


def network_result(arch: Architecture, graph: fx.Graph, values: dict, aux_results: dict) -> None:
    """The network's return: the output tensor, or the dict of declared outputs, with the
    auxiliary outputs in training mode."""
    if arch.returns_dict:
        out = {key: values[node] for key, node in arch.outputs.items()}
    else:
        out = values[arch.output]
    if aux_results:
        out = graph.call_function(network_outputs, (out, aux_results))
    graph.output(out)


def compile_module(arch: Architecture) -> fx.GraphModule:
    """Build the module tree for an elaborated architecture.

    Returns the network's ``GraphModule``; every scope below it is a
    ``GraphModule`` too, at the IR's scope path. Auxiliary heads become
    :class:`AuxHead` submodules that run only in training mode. Raises
    ``NotImplementedError`` for an auxiliary head that reads more than one
    main-path value.
    """
    main_ops = [(node, data["name"]) for node, data in arch.ops() if not data.get("aux")]
    heads = {name: [(node, data["name"]) for node, data in arch.ops() if data.get("aux") == name]
             for name in arch.aux_outputs}
    outputs = set(arch.outputs.values()) | set(arch.aux_outputs.values())
    codegen = _Codegen(arch.graph, outputs)
    root, graph = nn.Module(), fx.Graph()
    values = network_inputs(arch, graph)
    children = codegen.emit_members(codegen.members(scope_tree(main_ops)), root, graph, values)
    aux_results, aux_heads = {}, {}
    for aux, named in heads.items():
        aux_heads[aux] = _aux_head(codegen, aux, named, arch.aux_outputs[aux])
        reads, _ = boundary(arch.graph, {n for n, _ in named}, outputs)
        if len(reads) != 1:
            raise NotImplementedError("an auxiliary head may read only one main-path value")
        _set_submodule(root, aux, aux_heads[aux])
        aux_results[aux] = graph.call_module(aux, (values[reads[0]],))
    network_result(arch, graph, values, aux_results)
    graph.lint()
    module = _with_children(codegen.share.graph_module(root, graph, _class_name(arch.name)), children)
    for aux, head in aux_heads.items():  # a head inside a scope sits in that scope's module (unused by it)
        _set_submodule(module, aux, head)
    return apply_init(module, arch)


def _aux_head(codegen: _Codegen, aux: str, named: list, out: str) -> "AuxHead":
    prefix = aux + "."
    relative = [(n, name[len(prefix):] if name.startswith(prefix) else name) for n, name in named]
    nodes = {n for n, _ in named}
    reads, _ = boundary(codegen.graph, nodes, set())
    return AuxHead(codegen.compile_scope(scope_tree(relative), reads, [out]))


def compile_region(arch: Architecture, nodes, reads: list, gives: list) -> nn.Module:
    """A module computing ``gives`` from ``reads`` through main-path op ``nodes`` (IR node ids).

    Used for parts of a network (its features, its head, a feature
    extractor): scopes and module paths are the network's own, so the
    state-dict keys are a subset of the whole network's. ``forward(*reads)``
    returns one tensor, or a tuple when ``gives`` has several.
    """
    nodes = set(nodes)
    view = arch.graph.subgraph(nodes | set(reads))
    named = [(n, arch.graph.nodes[n]["name"]) for n in arch.execution_order if n in nodes]
    return _Codegen(view, set(gives)).compile_scope(scope_tree(named), list(reads), list(gives))


class AuxHead(nn.Module):
    """An auxiliary head: runs only in training mode, returns None in eval mode.

    The head's submodules are registered directly here, so parameters keep the
    spec's paths (``aux1.fc1.weight``); the compiled graph is kept unregistered.
    """

    def __init__(self, graph_module: fx.GraphModule):
        super().__init__()
        for name, child in graph_module.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "_graph_module", graph_module)

    def forward(self, x):
        if not self.training:
            return None
        return self._graph_module(x)


def parent_of(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    """The module holding ``path`` under ``root`` (plain containers made on demand) and its last name.

    Only an inlined scope leaves a plain container on a path.
    """
    *parents, leaf = path.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    return root, leaf


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    owner, leaf = parent_of(root, path)
    setattr(owner, leaf, module)


def _set_parameter(root: nn.Module, path: str, tensor: nn.Parameter) -> None:
    owner, leaf = parent_of(root, path)
    owner.register_parameter(leaf, tensor)


def _with_children(module: fx.GraphModule, children: dict) -> fx.GraphModule:
    """``module`` with the stand-ins at ``children``'s paths replaced by the real modules (same order)."""
    for path, child in children.items():
        *parents, leaf = path.split(".")
        owner = module.get_submodule(".".join(parents)) if parents else module
        setattr(owner, leaf, child)
    return module


def _scope_class(graph: nx.DiGraph, path: str) -> str:
    """Class name of a scope's module: its block's name (``Bottleneck``), else ``Scope``."""
    info = graph.graph.get("scopes", {}).get(path) or {}
    return _class_name(info.get("block") or "", "Scope")


def _class_name(name: str, default: str = "Network") -> str:
    cleaned = "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_") if part)
    return cleaned if cleaned.isidentifier() else default


def generated_code(module: nn.Module) -> str:
    """The generated ``forward`` of every module in the tree, each distinct one once.

    Each is headed by the paths that share it (``network`` for the root);
    ``nn.Sequential`` scopes are listed with their members' names.
    """
    shared: dict[str, list] = {}
    for path, sub in module.named_modules():
        if isinstance(sub, fx.GraphModule):
            text = f"({type(sub).__name__})\n{sub.code.strip()}\n"
        elif isinstance(sub, nn.Sequential):
            text = f"(nn.Sequential)\n# runs {', '.join(name for name, _ in sub.named_children())} in turn\n"
        else:
            continue
        shared.setdefault(text, []).append(path or "network")
    parts = []
    for text, paths in shared.items():
        where = ", ".join(paths) if len(paths) <= 4 else f"{', '.join(paths[:3])} and {len(paths) - 3} more"
        parts.append(f"# {where} {text}")
    return "\n".join(parts)
