"""Optimised IR → an eval-only torch module; its tensors derived from the loaded ones.

:func:`build_inference` runs :data:`~archdsl.ir.passes.INFERENCE_PIPELINE`
(folding, fusion, layout: torch-free), applies the pipeline's derivations to
a state dict in the training layout (:func:`derive_state`), and emits a
``torch.fx.GraphModule`` with its own small emitter: convs become
:class:`FusedConv2d` (oneDNN's fused conv + bias + activation, weights
reordered once), every other op its ordinary lowering from
:data:`~archdsl.backends.lowerings.LOWERINGS`. ``compile=True`` hands the
same optimised graph, in plain aten ops, to ``torch.compile`` (inductor,
freezing). :func:`export_package` / :func:`load_package` are the
ahead-of-time path (``torch.export`` + AOTInductor).
"""

from __future__ import annotations

import torch
import torch.fx as fx
from torch import nn
from torch.nn import functional as F

from ..errors import WeightsError
from ..ir.graph import Architecture, inputs_of
from ..ir.passes import INFERENCE_PIPELINE, run_pipeline
from .torch_fx import network_inputs, network_result, parent_of
from .lowerings import LOWERINGS

# activation op → (oneDNN post-op name, its scalars, its algorithm, the eager function)
_POST_OPS = {
    "relu": ("relu", [], "", lambda x: F.relu(x, inplace=True)),
    "relu6": ("hardtanh", [0.0, 6.0], "", lambda x: F.hardtanh(x, 0.0, 6.0, inplace=True)),
    "silu": ("swish", [], "", lambda x: F.silu(x, inplace=True)),
    "sigmoid": ("sigmoid", [], "", torch.sigmoid),
    "tanh": ("tanh", [], "", torch.tanh),
    "hardswish": ("hardswish", [], "", lambda x: F.hardswish(x, inplace=True)),
    "hardsigmoid": ("hardsigmoid", [], "", lambda x: F.hardsigmoid(x, inplace=True)),
    "gelu": ("gelu", [], "none", F.gelu),
}


def onednn_available() -> bool:
    """Whether torch was built with oneDNN (mkldnn) and its fused convolution op."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class FusedConv2d(nn.Module):
    """Conv2d + bias + optional activation as one oneDNN call (CPU, float32), for inference only.

    ``weight`` (out, in/groups, kh, kw) and ``bias`` (out,) are buffers, so the
    state dict keeps the conv's keys. With ``prepack``, the weight is reordered
    into oneDNN's blocked layout once per input shape (N, C, H, W) and kept:
    oneDNN picks the layout by shape (batch included), and a weight in another
    layout is reordered on every call — at batch 8 that costs ResNet-50 a
    quarter of its time. Inputs it cannot take (another device or dtype) use
    ``torch.nn.functional.conv2d`` and the eager activation, same result.
    """

    # Packed weights kept per conv: one per input shape seen, the oldest dropped first.
    MAX_PACKED_SHAPES = 4

    def __init__(self, attrs: dict, in_shape: tuple, activation: str | None, onednn: bool,
                 prepack: bool = False):
        super().__init__()
        kh, kw = attrs["kernel"]
        self.register_buffer("weight", torch.empty(attrs["out"], in_shape[0] // attrs["groups"], kh, kw))
        self.register_buffer("bias", torch.zeros(attrs["out"]) if attrs["bias"] else None)
        self.padding = attrs["padding"] if attrs["padding"] == "same" else list(attrs["padding"])
        self.stride, self.dilation = list(attrs["stride"]), list(attrs["dilation"])
        self.groups, self.in_shape, self.activation = attrs["groups"], tuple(in_shape), activation
        self.onednn = onednn and self.padding != "same" and onednn_available()
        self.prepack = prepack and self.onednn
        self._packed: dict = {}

    def packed_weight(self, input_shape: tuple) -> torch.Tensor:
        """The weight reordered for oneDNN at ``input_shape`` (N, C, H, W), made on first use.

        Keyed by the weight tensor and its version too, so loading new weights
        (in place or by assignment) never reuses a stale copy.
        """
        key = (tuple(input_shape), self.weight.data_ptr(), self.weight._version)
        packed = self._packed.get(key)
        if packed is None:
            while len(self._packed) >= self.MAX_PACKED_SHAPES:
                self._packed.pop(next(iter(self._packed)))
            packed = self._packed[key] = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, self.padding, self.stride, self.dilation, self.groups, list(input_shape))
        return packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.onednn and x.device.type == "cpu" and x.dtype == torch.float32 \
                and self.weight.device.type == "cpu" and self.weight.dtype == torch.float32:
            attr, scalars, algorithm, _ = _POST_OPS.get(self.activation, ("none", [], "", None))
            weight = self.packed_weight(x.shape) if self.prepack else self.weight
            return torch.ops.mkldnn._convolution_pointwise(x, weight, self.bias, self.padding, self.stride,
                                                           self.dilation, self.groups, attr, scalars,
                                                           algorithm)
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return y if self.activation is None else _POST_OPS[self.activation][3](y)

    def extra_repr(self) -> str:
        return (f"{self.in_shape[0]}, {self.weight.shape[0]}, kernel={tuple(self.weight.shape[2:])}, "
                f"stride={tuple(self.stride)}, groups={self.groups}, activation={self.activation}, "
                f"onednn={self.onednn}, prepack={self.prepack}")


# ---- derivations ------------------------------------------------------------------------

def _bn_factor(state: dict, norm: str, eps: float, dtype) -> torch.Tensor:
    # the per-channel factor in float64, the big tensors in their own dtype (less memory traffic)
    factor = state[f"{norm}.weight"].double() / torch.sqrt(state[f"{norm}.running_var"].double() + eps)
    return factor.to(dtype)


def _per(vector, like: torch.Tensor, dim: int) -> torch.Tensor:
    shape = [1] * like.ndim
    shape[dim] = -1
    return torch.as_tensor(vector, dtype=like.dtype).reshape(shape)


def _derive(state: dict, step: dict) -> torch.Tensor:
    rule = step["rule"]
    if rule == "bn_scale":
        w = state[step["weight"]]
        return w * _per(_bn_factor(state, step["norm"], step["eps"], w.dtype), w, 0)
    if rule == "bn_shift":
        norm = step["norm"]
        mean = state[f"{norm}.running_mean"]
        bias = state[step["bias"]].double() if step["bias"] else torch.zeros_like(mean, dtype=torch.float64)
        out = (bias - mean.double()) * _bn_factor(state, norm, step["eps"], torch.float64)
        return (out + state[f"{norm}.bias"].double()).to(mean.dtype)
    if rule == "in_scale":
        w = state[step["weight"]]
        return w * _per(step["scale"], w, 1)
    if rule == "in_shift":
        w = state[step["weight"]]
        moved = (w.double() * _per(step["shift"], w.double(), 1)).sum(dim=(1, 2, 3))
        bias = state[step["bias"]].double() if step["bias"] else torch.zeros_like(moved)
        return (bias + moved).to(w.dtype)
    raise WeightsError(f"internal error: unknown derivation rule {rule!r}; please report this")


def derive_state(arch: Architecture, state: dict) -> dict:
    """The optimised graph's tensors: ``state`` (training layout) with each derivation applied in order."""
    state = dict(state)
    try:
        for step in arch.graph.graph.get("derivations", ()):
            state[step["key"]] = _derive(state, step)
    except KeyError as err:
        raise WeightsError(f"the weights lack {err.args[0]!r}, needed to fold it into the graph") from None
    return state


# ---- emitter ------------------------------------------------------------------------------

def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    owner, leaf = parent_of(root, path)
    owner.add_module(leaf, module)


def _eval_only_train(self, mode: bool = True):
    if mode:
        raise RuntimeError("this module was built with optimize=\"inference\": it is eval-only "
                           "(BatchNorm folded, dropout removed); build without it to train")
    return nn.Module.train(self, False)


def emit_inference(arch: Architecture, onednn: bool = True) -> fx.GraphModule:
    """The ``GraphModule`` of an optimised IR (weights uninitialised: load a derived state next).

    ``onednn`` selects :class:`FusedConv2d`'s oneDNN kernel; without it every op
    is a plain aten call, the form ``torch.compile`` wants.
    """
    owner, graph = nn.Module(), fx.Graph()
    values = network_inputs(arch, graph)
    if arch.graph.graph.get("memory_format") == "channels_last":
        for node in arch.inputs:
            if len(arch.graph.nodes[node]["shape"]) == 3:  # (C, H, W): an image batch
                values[node] = graph.call_method("contiguous", (values[node],),
                                                 {"memory_format": torch.channels_last})
    for node, data in arch.ops(include_aux=False):
        args = tuple(values[s] for s in inputs_of(arch.graph, node))
        if data["op"] == "conv":
            with torch.device("meta"):  # the weights are assigned from the derived state
                module = FusedConv2d(data["attrs"], data["in_shapes"][0], data.get("activation"), onednn,
                                     bool(data.get("prepack")))
            _set_submodule(owner, data["name"], module)
            values[node] = graph.call_module(data["name"], args)
            continue
        lowering = LOWERINGS[data["op"]]
        inplace = bool(data.get("inplace"))
        if lowering.parameter is not None:  # a bare tensor at the op's path (layer scale, class token)
            with torch.device("meta"):  # assigned from the derived state
                tensor = lowering.parameter(data["attrs"], data["in_shapes"][0])
            owner_of, leaf = parent_of(owner, data["name"])
            owner_of.register_parameter(leaf, tensor)
            args = (*args, graph.get_attr(data["name"]))
        if lowering.module is not None:
            # no random initialisation for tensors the state will replace (those of ops with
            # parameters); constant buffers (ChannelAffine's) are made for real
            with torch.device("meta" if data["params"] else "cpu"):
                module = lowering.module(data["attrs"], data["in_shapes"][0], inplace)
            _set_submodule(owner, data["name"], module)
            values[node] = graph.call_module(data["name"], args)
        else:
            values[node] = lowering.function(graph, list(args), data["attrs"], inplace)
    network_result(arch, graph, values, {})  # every declared output (a dict for several)
    graph.lint()
    name = "".join(p.capitalize() for p in arch.name.replace("-", "_").split("_") if p) or "Network"
    return fx.GraphModule(owner, graph, class_name=(name if name.isidentifier() else "Network") + "Inference")


def compile_inference(arch: Architecture, state: dict, onednn: bool = True) -> fx.GraphModule:
    """Emit the optimised ``arch`` and load ``derive_state(arch, state)`` into it; eval-only.

    ``state`` is the network's state dict in the training layout (the keys of
    ``Architecture.to_torch()``). Raises :class:`~archdsl.WeightsError` when
    a tensor the graph needs is missing.
    """
    module = emit_inference(arch, onednn)
    floats = [t for t in state.values() if torch.is_tensor(t) and t.is_floating_point()]
    if floats:  # constant buffers follow the weights' dtype and device (float64 weights: float64)
        for sub in module.modules():
            for key, buf in sub._buffers.items():
                if buf is not None and not buf.is_meta and buf.is_floating_point():
                    sub._buffers[key] = buf.to(floats[0])
    derived = derive_state(arch, state)
    own = module.state_dict()
    missing = [k for k in own if k not in derived]
    if missing:
        raise WeightsError(f"the weights lack {len(missing)} tensors the graph needs (e.g. {missing[:3]})")
    # assign: the module takes the derived tensors (and shares the untouched ones with ``state``)
    module.load_state_dict({k: derived[k] for k in own}, assign=True)  # convs pack on first use
    module.requires_grad_(False)
    module.eval()
    # fx gives every GraphModule its own class: overriding train there touches no other module
    type(module).train = _eval_only_train
    return module


def build_inference(arch: Architecture, state: dict, compile: bool = False):
    """An eval-only module for ``arch`` (after the default pipeline) with ``state``'s weights.

    Runs :data:`INFERENCE_PIPELINE`, then :func:`compile_inference`. With
    ``compile=True`` the aten form of the optimised graph goes through
    ``torch.compile`` (inductor with freezing): the first call per input shape
    compiles (seconds to minutes), later calls are fast.
    """
    optimised = run_pipeline(arch, INFERENCE_PIPELINE)
    if not compile:
        return compile_inference(optimised, state)
    module = compile_inference(optimised, state, onednn=False)
    return torch.compile(module, options={"freezing": True})


def reference_state(arch: Architecture, weights=None) -> dict:
    """The state dict (training layout) ``build(arch, weights=weights)`` would hold, without building it.

    Weights that fit by name are used as they are (no random initialisation,
    no copy); anything else goes through :func:`~archdsl.backends.weights.load_weights`
    on a real module, with its checks and errors. ``None``: a random initialisation.
    """
    from .weights import load_weights, read_state_dict, state_fit

    if weights is not None:
        state = read_state_dict(weights)
        with torch.device("meta"):
            own = arch.to_torch().state_dict()
        if state_fit(own, state).exact:
            return {k: state[k] for k in own}
    module = arch.to_torch()
    if weights is not None:
        load_weights(module, weights)
    return module.state_dict()


def optimise(arch: Architecture) -> Architecture:
    """The IR after :data:`INFERENCE_PIPELINE` (what :func:`build_inference` emits)."""
    return run_pipeline(arch, INFERENCE_PIPELINE)


def export_package(arch: Architecture, state: dict, path, batch: int = 1):
    """Compile ahead of time: ``torch.export`` of the optimised graph, packaged by AOTInductor.

    ``arch`` is the network after the default pipeline and ``state`` its state
    dict (training layout); the package takes float32 inputs of shape
    ``(batch, *arch.input_shape)``. Needs a C++ compiler (AOTInductor compiles
    the generated kernels); takes as long as ``torch.compile``. Returns the
    package path; :func:`load_package` loads it back in about a second.
    """
    module = compile_inference(run_pipeline(arch, INFERENCE_PIPELINE), state, onednn=False)
    return package_module(module, torch.randn(batch, *arch.input_shape), path)


def package_module(module: nn.Module, example: torch.Tensor, path, dynamic_batch: bool = False):
    """``torch.export`` ``module`` at ``example`` (batch free with ``dynamic_batch``) and package it with
    AOTInductor (freezing) at ``path``; returns the package path."""
    dims = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
    with torch.no_grad():
        exported = torch.export.export(module, (example,), dynamic_shapes=dims)
        return torch._inductor.aoti_compile_and_package(
            exported, package_path=str(path), inductor_configs={"freezing": True})


def load_package(path):
    """A callable running a package written by :func:`export_package` (``model(x)`` → logits)."""
    return torch._inductor.aoti_load_package(str(path))
