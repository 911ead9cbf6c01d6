"""timm's model interface over compiled specs: ``create_model``, features, heads, classifier reset.

    >>> model = archdsl.create_model("resnet50", num_classes=10)
    >>> model.forward_head(model.forward_features(x))          # == model(x)
    >>> backbone = archdsl.create_model("resnet50", features_only=True, out_indices=(1, 2, 3, 4))
    >>> backbone.feature_info.channels()                       # [256, 512, 1024, 2048]

Nothing here is declared by a spec: the classifier is what changes with
``num_classes``, the head and the stages are read from the IR
(:mod:`archdsl.ir.heads`). Module paths, hence ``state_dict`` keys, are those
of :func:`archdsl.build`.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

import torch
from torch import nn

from .api import list_models as _bundled
from .api import load, parse_spec
from .backends.torch_fx import compile_module, compile_region
from .errors import ArchError
from .ir.graph import Architecture
from .ir.heads import Feature, Head, feature_points, find_head, last_layer

# Spec parameters that timm's options set, when a spec declares them.
DROP_RATE_PARAMS = ("dropout", "drop_rate")
DROP_PATH_PARAMS = ("stochastic_depth_prob", "drop_path_rate")


class FeatureInfo(list):
    """One dict per feature map — ``num_chs``, ``reduction``, ``module`` — with timm's accessors."""

    def channels(self) -> list[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        return [f["module"] for f in self]

    def get_dicts(self) -> list[dict]:
        return [dict(f) for f in self]


def _info(features: list[Feature]) -> FeatureInfo:
    return FeatureInfo({"num_chs": f.channels, "reduction": f.reduction, "module": f.module} for f in features)


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Bundled model names matching the shell-style ``pattern`` (``"resnet*"``), sorted.

    ``pretrained=True`` keeps the names with published weights (torchvision's
    weights metadata; empty without torchvision).
    """
    names = [n for n in _bundled() if fnmatchcase(n, pattern)]
    if pretrained:
        from .published import weight_entry
        names = [n for n in names if weight_entry(n, "DEFAULT", missing_ok=True) is not None]
    return names


def classifier_of(arch: Architecture, spec: str, variant: str | None, params: dict) -> str:
    """The IR node whose arguments change with ``num_classes`` (elaborating the spec once more).

    For a spec without a ``num_classes`` parameter, the last conv or linear.
    """
    if "num_classes" not in arch.params:
        return last_layer(arch)
    other = load(spec, variant, input_shape=arch.input_shape,
                 **{**params, "num_classes": int(arch.params["num_classes"]) + 1})
    by_name = {d["name"]: d["attrs"] for _, d in other.ops()}
    changed = [n for n, d in arch.ops(include_aux=False) if by_name.get(d["name"]) != d["attrs"]]
    return changed[-1] if changed else last_layer(arch)


def _share_leaves(part: nn.Module, whole: nn.Module, arch: Architecture, nodes) -> nn.Module:
    """Point ``part``'s op modules at ``whole``'s (same paths), so both hold one set of weights."""
    for node in nodes:
        name = arch.graph.nodes[node]["name"]
        try:
            whole_module = whole.get_submodule(name)
        except AttributeError:
            continue  # a function op (flatten, add): no module
        _replace(part, name, whole_module)
    return part


def _replace(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


class Network(nn.Module):
    """A compiled network with timm's interface.

    Its children are the compiled module's (same ``state_dict`` keys as
    :func:`archdsl.build`); ``forward`` runs the generated graph.
    ``forward_features(x)`` returns the last feature map ``(N, C, H, W)``;
    ``forward_head(f, pre_logits=False)`` pools and classifies it (``(N,
    num_classes)``, or the pooled vector ``(N, num_features)`` with
    ``pre_logits``). Attributes: ``num_classes``, ``num_features``,
    ``feature_info`` (a :class:`FeatureInfo`), ``arch`` (the IR).
    """

    def __init__(self, arch: Architecture, head: Head):
        super().__init__()
        module = compile_module(arch)
        for name, child in module.named_children():
            self.add_module(name, child)
        body = [n for n, d in arch.ops(include_aux=False) if n not in head.nodes]
        with torch.device("meta"):  # the parts' own weights are discarded: they use the network's
            features = compile_region(arch, body, ["input"], [head.features])
            head_module = compile_region(arch, head.nodes, [head.features], [arch.output, head.pre_logits])
        object.__setattr__(self, "_network", module)
        object.__setattr__(self, "_features", _share_leaves(features, module, arch, body))
        object.__setattr__(self, "_head", _share_leaves(head_module, module, arch, head.nodes))
        self.arch, self.head_info = arch, head
        self.num_features = arch.graph.nodes[head.pre_logits]["shape"][0]
        self.num_classes = arch.output_shape[0]
        self.feature_info = _info(feature_points(arch, head))

    def forward(self, x):
        return self._network(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, before global pooling."""
        return self._features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool and classify a feature map; ``pre_logits=True`` stops before the classifier."""
        logits, pooled = self._head(x)
        return pooled if pre_logits else logits

    def get_classifier(self) -> nn.Module:
        """The classifier module (``fc``, ``classifier.1``, …)."""
        return self.get_submodule(self.arch.graph.nodes[self.head_info.classifier]["name"])

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a fresh one of ``num_classes`` outputs; 0 gives the pooled features.

        The new layer is the spec's classifier op (a linear, or SqueezeNet's
        1x1 conv) with another output count, on the old one's device.
        """
        data = self.arch.graph.nodes[self.head_info.classifier]
        a, channels = data["attrs"], data["in_shapes"][0][0]
        if num_classes == 0:
            new = nn.Identity()
        elif data["op"] == "linear":
            new = nn.Linear(channels, num_classes, bias=a["bias"])
        elif data["op"] == "conv":
            padding = a["padding"] if a["padding"] == "same" else tuple(a["padding"])
            new = nn.Conv2d(channels, num_classes, a["kernel"], a["stride"], padding, a["dilation"],
                            bias=a["bias"])
        else:
            raise ArchError(f"cannot replace a classifier made by {data['op']!r}")
        weight = next(self.get_classifier().parameters(), None)
        if weight is None:
            weight = next(self.parameters(), None)
        if weight is not None:
            new = new.to(weight.device)
        for root in (self, self._network, self._head):
            _replace(root, data["name"], new)
        self.num_classes = num_classes


class FeatureNetwork(nn.Module):
    """``features_only``: returns a list of feature maps, one per selected stage, ``(N, C_i, H/r_i, W/r_i)``.

    ``feature_info`` gives each map's channels, reduction and module path. Its
    ``state_dict`` keys are the whole network's, less the head and any stage
    after the last one selected.
    """

    def __init__(self, arch: Architecture, features: list[Feature]):
        super().__init__()
        wanted = {f.node for f in features}
        import networkx as nx
        keep = set().union(*(nx.ancestors(arch.graph, n) for n in wanted)) | wanted
        nodes = [n for n, d in arch.ops(include_aux=False) if n in keep]
        module = compile_region(arch, nodes, ["input"], [f.node for f in features])
        for name, child in module.named_children():
            self.add_module(name, child)
        object.__setattr__(self, "_module", module)
        self.arch = arch
        self.feature_info = _info(features)

    def forward(self, x: torch.Tensor) -> list:
        out = self._module(x)
        return list(out) if isinstance(out, tuple) else [out]


def _spec_params(spec: str) -> tuple[set, str | None]:
    module, _, implied = parse_spec(spec)
    return {p.name for p in module.params}, implied


def _set_declared(params: dict, declared: set, names: tuple, value, option: str, spec: str) -> None:
    for name in names:
        if name in declared:
            params[name] = value
            return
    raise ArchError(f"{spec} declares no parameter for {option} (looked for {', '.join(names)})")


def create_model(model_name: str, pretrained: bool = False, *, num_classes: int | None = None,
                 in_chans: int | None = None, features_only: bool = False, out_indices=None,
                 drop_rate: float | None = None, drop_path_rate: float | None = None,
                 weights: str | None = None, variant: str | None = None, **spec_params) -> nn.Module:
    """Build a bundled model (or a ``.arch`` file) the way ``timm.create_model`` does.

    ``num_classes`` sets the classifier's outputs (0: no classifier, the model
    returns pooled features); ``in_chans`` the input channels;
    ``drop_rate`` / ``drop_path_rate`` the spec's dropout / stochastic-depth
    parameter; other keywords set spec parameters. ``features_only=True``
    returns a :class:`FeatureNetwork` over the stages ``out_indices`` (default:
    all). ``pretrained=True`` (or ``weights="DEFAULT"`` / a tag such as
    ``"IMAGENET1K_V2"``) loads torchvision's published weights from the local
    torch cache (see :func:`archdsl.published.weights_path`). Returns a
    :class:`Network` or :class:`FeatureNetwork`. Raises
    :class:`~archdsl.ArchError` (e.g. :class:`~archdsl.WeightsError`).
    """
    declared, implied = _spec_params(model_name)
    variant = variant or implied
    params = dict(spec_params)
    if num_classes:
        _set_declared(params, declared, ("num_classes",), num_classes, "num_classes", model_name)
    if drop_rate is not None:
        _set_declared(params, declared, DROP_RATE_PARAMS, drop_rate, "drop_rate", model_name)
    if drop_path_rate is not None:
        _set_declared(params, declared, DROP_PATH_PARAMS, drop_path_rate, "drop_path_rate", model_name)
    arch = load(model_name, variant, **params)
    if in_chans is not None:
        arch = load(model_name, variant, input_shape=(in_chans, *arch.input_shape[1:]), **params)
    head = find_head(arch, classifier_of(arch, model_name, variant, params))
    if features_only:
        stages = feature_points(arch, head)
        chosen = range(len(stages)) if out_indices is None else list(out_indices)
        bad = [i for i in chosen if not -len(stages) <= i < len(stages)]
        if bad:
            raise ArchError(f"{model_name} has {len(stages)} feature levels (indices 0..{len(stages) - 1}); "
                            f"out_indices {bad} do not exist")
        model = FeatureNetwork(arch, [stages[i] for i in chosen])
    else:
        model = Network(arch, head)
        if num_classes == 0:
            model.reset_classifier(0)
    tag = weights or ("DEFAULT" if pretrained else None)
    if tag is not None:
        load_pretrained(model, model_name, tag)
    return model


def load_pretrained(model: nn.Module, name: str, tag: str = "DEFAULT") -> nn.Module:
    """Load torchvision's published weights ``tag`` of ``name`` from the local torch cache, by name.

    The file's hash is verified (:func:`archdsl.published.verified_weights`).
    A classifier of another size keeps its fresh weights (fine-tuning);
    other input channels get the first conv's weights summed (1 channel) or
    tiled and rescaled, as timm does; a feature extractor takes the tensors
    it has. ``model.pretrained_cfg`` records the entry (categories, transforms).
    Raises :class:`~archdsl.WeightsError`.
    """
    from .backends.weights import read_state_dict, state_fit
    from .errors import WeightsError
    from .published import verified_weights, weight_entry

    entry = weight_entry(name, tag)
    state = read_state_dict(verified_weights(entry))
    own = model.state_dict()
    for key, value in list(state.items()):
        if key in own and own[key].dim() == 4 and value.dim() == 4 and own[key].shape[1] != value.shape[1] \
                and own[key].shape[0] == value.shape[0] and value.shape[1] == 3:
            state[key] = _adapt_input_conv(value, own[key].shape[1])
    classifier = getattr(model, "head_info", None)
    prefix = model.arch.graph.nodes[classifier.classifier]["name"] + "." if classifier else None
    fit = state_fit(own, state)
    skip = {k.split(" ")[0] for k in fit.reshaped}
    if prefix and all(k.startswith(prefix) for k in skip):
        state = {k: v for k, v in state.items() if k not in skip and not (
            model.num_classes == 0 and k.startswith(prefix))}
    elif skip:
        raise WeightsError(f"{entry['file']} does not fit this {name}: {fit}")
    missing = [k for k in own if k not in state and not (prefix and k.startswith(prefix))]
    if missing:
        raise WeightsError(f"{entry['file']} does not fit this {name}: {len(missing)} tensors missing "
                           f"(e.g. {', '.join(missing[:3])})")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    model.pretrained_cfg = entry
    return model


def _adapt_input_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    if channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = -(-channels // weight.shape[1])
    return weight.repeat(1, repeat, 1, 1)[:, :channels] * (weight.shape[1] / channels)
