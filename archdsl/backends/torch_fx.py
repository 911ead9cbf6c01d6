"""IR → ``torch.fx.GraphModule``: real modules, a generated ``forward``, no interpretation.

Module names are the IR's scope paths (``layer1.0.conv1``), so ``state_dict``
keys follow the spec. Auxiliary heads (training-only outputs) run only when the
module is in training mode, like torchvision's GoogLeNet and Inception v3.
``forward`` takes one argument per declared input (``x`` for a single unnamed
one) and returns a tensor, or a dict in declaration order for a network that
declares outputs (torchvision's convention), in every mode.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.fx as fx
from torch import nn

from ..ir.graph import Architecture, inputs_of
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


def _placeholders(arch: Architecture, emitter: "_Emitter") -> None:
    """One ``forward`` argument per input node, in declaration order (``x`` for ``input``)."""
    for node in arch.inputs:
        emitter.values[node] = emitter.graph.placeholder("x" if node == "input" else node)


def _result(arch: Architecture, values: dict):
    """The main result: the output tensor, or the dict of declared outputs."""
    if arch.returns_dict:
        return {key: values[node] for key, node in arch.outputs.items()}
    return values[arch.output]


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.add_module(leaf, module)


def _set_parameter(root: nn.Module, path: str, tensor: nn.Parameter) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.register_parameter(leaf, tensor)


class _Emitter:
    """Adds IR nodes to one fx graph (the network's, or an auxiliary head's)."""

    def __init__(self, owner: nn.Module, prefix: str = ""):
        self.owner = owner
        self.graph = fx.Graph()
        self.values: dict[str, fx.Node] = {}
        self.prefix = prefix

    def emit(self, node: str, data: dict, args: list) -> None:
        lowering = LOWERINGS[data["op"]]
        inplace = bool(data.get("inplace"))
        name = data["name"]
        if self.prefix and name.startswith(self.prefix):
            name = name[len(self.prefix):]
        if lowering.parameter is not None:  # a bare tensor at the op's own path (class_token)
            _set_parameter(self.owner, name, lowering.parameter(data["attrs"], data["in_shapes"][0]))
            args = [*args, self.graph.get_attr(name)]
        if lowering.module is not None:
            _set_submodule(self.owner, name, lowering.module(data["attrs"], data["in_shapes"][0], inplace))
            self.values[node] = self.graph.call_module(name, tuple(args))
        else:
            self.values[node] = lowering.function(self.graph, args, data["attrs"], inplace)


def compile_module(arch: Architecture) -> fx.GraphModule:
    """Build the ``GraphModule`` for an elaborated architecture.

    Submodules are created by :data:`~archdsl.backends.lowerings.LOWERINGS` at
    the IR's scope paths; auxiliary heads become :class:`AuxHead` submodules
    that run only in training mode. Raises ``NotImplementedError`` for an
    auxiliary head that reads more than one main-path value.
    """
    main = _Emitter(nn.Module())
    _placeholders(arch, main)
    heads = {name: _Emitter(nn.Module(), name + ".") for name in arch.aux_outputs}
    head_inputs: dict[str, str] = {}
    for node, data in arch.ops(include_aux=True):
        srcs = inputs_of(arch.graph, node)
        aux = data.get("aux")
        if aux is None:
            main.emit(node, data, [main.values[s] for s in srcs])
            continue
        head = heads[aux]
        for s in srcs:  # the head's entry point is the main-path value it reads
            if s not in head.values and arch.graph.nodes[s].get("aux") != aux:
                if head_inputs.setdefault(aux, s) != s:
                    raise NotImplementedError("an auxiliary head may read only one main-path value")
                head.values[s] = head.graph.placeholder("x")
        head.emit(node, data, [head.values[s] for s in srcs])

    aux_results = {}
    for aux, out_node in arch.aux_outputs.items():
        head = heads[aux]
        head.graph.output(head.values[out_node])
        _set_submodule(main.owner, aux, AuxHead(fx.GraphModule(head.owner, head.graph, class_name="AuxGraph")))
        aux_results[aux] = main.graph.call_module(aux, (main.values[head_inputs[aux]],))
    out = _result(arch, main.values)
    if aux_results:
        out = main.graph.call_function(network_outputs, (out, aux_results))
    main.graph.output(out)
    main.graph.lint()
    return apply_init(fx.GraphModule(main.owner, main.graph, class_name=_class_name(arch.name)), arch)


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


def _class_name(name: str) -> str:
    cleaned = "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part)
    return cleaned if cleaned.isidentifier() else "Network"
