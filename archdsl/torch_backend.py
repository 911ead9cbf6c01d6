"""IR → ``torch.fx.GraphModule``: real modules, a generated ``forward``, no interpretation.

Module names are the IR's scope paths (``layer1.0.conv1``), so ``state_dict``
keys follow the spec. Auxiliary heads (training-only outputs) run only when the
module is in training mode, like torchvision's GoogLeNet and Inception v3.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import torch
import torch.fx as fx
from torch import nn

from .ir import Architecture, inputs_of
from .ops import REGISTRY


class NetworkOutputs(NamedTuple):
    """Training-mode result of a network with auxiliary outputs.

    ``logits`` is the main output; ``aux`` maps each auxiliary output's name
    (e.g. ``aux1``) to its tensor. In eval mode the network returns the main
    output tensor alone.
    """

    logits: torch.Tensor
    aux: dict


class StochasticDepth(nn.Module):
    """Randomly drop a residual branch per sample ("row") or per batch, like torchvision."""

    def __init__(self, p: float, mode: str = "row"):
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class ChannelAffine(nn.Module):
    """A fixed per-channel ``x * scale + shift`` (no parameters, nothing in the state dict)."""

    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)


class ChannelShuffle(nn.Module):
    """Interleave channels across ``groups`` (works with channels_last, unlike a view trick alone)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        x = x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous()
        return x.view(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


@fx.wrap
def network_outputs(main, aux: dict):
    """Main output alone, or :class:`NetworkOutputs` when auxiliary outputs were computed."""
    computed = {k: v for k, v in aux.items() if v is not None}
    return NetworkOutputs(main, computed) if computed else main


_ACTIVATIONS = {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "silu": nn.SiLU, "gelu": nn.GELU, "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid, "hardswish": nn.Hardswish, "tanh": nn.Tanh,
}
_INPLACE_OK = {"relu", "relu6", "silu", "hardsigmoid", "hardswish"}
# Producers whose output nobody else reads, so an activation may overwrite it.
_INPLACE_PRODUCERS = {"conv", "batchnorm", "linear", "add", "concat", "lrn"}


def _module_for(op: str, a: dict, in_shape: tuple, inplace: bool) -> nn.Module | None:
    """The nn.Module for one IR node, or None for ops compiled to plain functions."""
    if op == "conv":
        padding = a["padding"] if a["padding"] == "same" else tuple(a["padding"])
        return nn.Conv2d(in_shape[0], a["out"], a["kernel"], a["stride"], padding, a["dilation"],
                         a["groups"], a["bias"])
    if op == "batchnorm":
        cls = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
        return cls(in_shape[0], eps=a["eps"], momentum=a["momentum"])
    if op in _ACTIVATIONS:
        return _ACTIVATIONS[op](inplace=True) if inplace and op in _INPLACE_OK else _ACTIVATIONS[op]()
    if op == "maxpool":
        return nn.MaxPool2d(a["kernel"], a["stride"] or a["kernel"], a["padding"], ceil_mode=a["ceil_mode"])
    if op == "avgpool":
        return nn.AvgPool2d(a["kernel"], a["stride"] or a["kernel"], a["padding"], ceil_mode=a["ceil_mode"],
                            count_include_pad=a["count_include_pad"])
    if op == "adaptive_avgpool":
        return nn.AdaptiveAvgPool2d(a["size"])
    if op == "adaptive_maxpool":
        return nn.AdaptiveMaxPool2d(a["size"])
    if op == "linear":
        return nn.Linear(in_shape[0], a["out"], bias=a["bias"])
    if op == "dropout":
        return nn.Dropout(a["p"], inplace=False)
    if op == "stochastic_depth":
        return StochasticDepth(a["p"], a["mode"])
    if op == "lrn":
        return nn.LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"])
    if op == "channel_affine":
        return ChannelAffine(a["scale"], a["shift"])
    if op == "channel_shuffle":
        return ChannelShuffle(a["groups"])
    return None


_FUNCTIONAL = {"flatten", "add", "mul", "concat", "channel_split"}
assert set(REGISTRY) - {"identity"} == _FUNCTIONAL | {
    "conv", "batchnorm", "maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool", "linear",
    "dropout", "stochastic_depth", "lrn", "channel_affine", "channel_shuffle"} | set(_ACTIVATIONS), \
    "every registered op needs a torch lowering"


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.add_module(leaf, module)


def _can_run_inplace(arch: Architecture, node: str) -> bool:
    graph = arch.graph
    (src,) = inputs_of(graph, node)
    producer = graph.nodes[src]
    return producer["op"] in _INPLACE_PRODUCERS and graph.out_degree(src) == 1 and src != arch.output


def compile_module(arch: Architecture) -> fx.GraphModule:
    """Build the ``GraphModule`` for an elaborated architecture."""
    root = nn.Module()
    graph = fx.Graph()
    values: dict[str, fx.Node] = {}
    aux_roots = {name: nn.Module() for name in arch.aux_outputs}
    aux_graphs = {name: fx.Graph() for name in arch.aux_outputs}
    aux_values: dict[str, dict[str, fx.Node]] = {name: {} for name in arch.aux_outputs}
    aux_inputs: dict[str, str] = {}

    for node, data in arch.ops(include_aux=True):
        op, a = data["op"], data["attrs"]
        srcs = inputs_of(arch.graph, node)
        aux = data.get("aux")
        if aux is not None:
            g, vals, owner, prefix = aux_graphs[aux], aux_values[aux], aux_roots[aux], aux + "."
            for s in srcs:  # the aux head's entry point is the main-path value it reads
                if s not in vals and arch.graph.nodes[s].get("aux") != aux:
                    if aux in aux_inputs and aux_inputs[aux] != s:
                        raise NotImplementedError("an auxiliary head may read only one main-path value")
                    aux_inputs[aux] = s
                    vals[s] = g.placeholder("x")
            args = [vals[s] for s in srcs]
        else:
            g, vals, owner, prefix = graph, values, root, ""
            if not values:
                values["input"] = graph.placeholder("x")
            args = [values[s] for s in srcs]
        name = data["name"][len(prefix):] if data["name"].startswith(prefix) else data["name"]
        module = _module_for(op, a, data["in_shapes"][0],
                             inplace=op in _ACTIVATIONS and _can_run_inplace(arch, node))
        if module is not None:
            _set_submodule(owner, name, module)
            vals[node] = g.call_module(name, tuple(args))
        elif op == "flatten":
            vals[node] = g.call_function(torch.flatten, (args[0], 1))
        elif op == "add":
            # Accumulate into the first branch's fresh output when nothing else reads it
            # (torchvision's `out += identity`): saves an allocation per residual block.
            first = srcs[0]
            in_place = (arch.graph.nodes[first]["op"] in _INPLACE_PRODUCERS
                        and arch.graph.out_degree(first) == 1 and first != "input")
            out = args[0]
            for other in args[1:]:
                out = (g.call_method("add_", (out, other)) if in_place
                       else g.call_function(operator.add, (out, other)))
            vals[node] = out
        elif op == "mul":
            out = args[0]
            for other in args[1:]:
                out = g.call_function(operator.mul, (out, other))
            vals[node] = out
        elif op == "concat":
            vals[node] = g.call_function(torch.cat, (list(args), 1))
        elif op == "channel_split":
            chunks = g.call_function(torch.chunk, (args[0], a["chunks"], 1))
            vals[node] = g.call_function(operator.getitem, (chunks, a["index"]))
        else:
            raise AssertionError(f"no torch lowering for {op}")

    if "input" not in values:
        values["input"] = graph.placeholder("x")
    aux_results = {}
    for aux, out_node in arch.aux_outputs.items():
        g = aux_graphs[aux]
        g.output(aux_values[aux][out_node])
        head = fx.GraphModule(aux_roots[aux], g, class_name="AuxGraph")
        _set_submodule(root, aux, AuxHead(head))
        aux_results[aux] = graph.call_module(aux, (values[aux_inputs[aux]],))
    if aux_results:
        out = graph.call_function(network_outputs, (values[arch.output], aux_results))
    else:
        out = values[arch.output]
    graph.output(out)
    graph.lint()
    module = fx.GraphModule(root, graph, class_name=_class_name(arch.name))
    return module


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
