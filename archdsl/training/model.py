"""The network being trained: spec resolution, its classifier head, transfer learning, freezing.

The classifier follows the dataset's number of classes through the spec
parameter ``num_classes`` (every bundled spec declares it). The head — what
changes when the class count does — is found on the IR: the spec is
elaborated with ``num_classes`` and ``num_classes + 1`` and the ops whose
shapes or arguments differ are the head. Specs without the parameter fall back
to their last op with weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..api import elaborate_spec
from ..errors import ArchError, SpecError, shape_text
from ..frontend.parser import parse
from ..frontend.resolve import resolve
from ..ir.graph import Architecture


@dataclass
class ResolvedSpec:
    """An elaborated spec together with the text and parameters it came from."""

    arch: Architecture
    module: object          # the parsed AST, to elaborate again
    text: str
    path: str
    variant: str | None
    declares_num_classes: bool
    input_shape: tuple | None = None  # the input asked for (None: the spec's own)

    @property
    def params(self) -> dict:
        return self.arch.params


def resolve_spec(spec: str, variant: str | None, overrides: dict, num_classes: int | None = None,
                 *, text: str | None = None, path: str | None = None,
                 input_shape: tuple | None = None) -> ResolvedSpec:
    """Elaborate ``spec`` with ``overrides``, sizing its classifier for ``num_classes`` classes.

    ``input_shape`` (``(C, H, W)``, or ``(H, W)`` keeping the spec's channels)
    elaborates the network at another input than the spec's own.

    ``text``/``path`` elaborate a saved copy of the spec (resuming a run) while
    imports still resolve next to the original file. Raises ``SpecError`` when
    the network cannot output ``num_classes`` scores.
    """
    if text is None:
        file, implied = resolve(spec)
        path, text, variant = str(file), Path(file).read_text(), variant or implied
    module = parse(text, path)
    declared = {p.name for p in module.params}
    params = dict(overrides)
    if num_classes is not None and "num_classes" in declared and "num_classes" not in params:
        params["num_classes"] = num_classes
    shape = tuple(input_shape) if input_shape else None
    arch = elaborate_spec(module, path, variant, params, shape)
    resolved = ResolvedSpec(arch, module, text, path, variant, "num_classes" in declared, shape)
    if num_classes is not None:
        check_classifier(resolved, num_classes)
    return resolved


def trained_params(spec: str, variant: str | None, meta: dict, overrides: dict | None = None
                   ) -> tuple[str | None, dict]:
    """The variant and parameters to rebuild a checkpoint's network with, from its metadata.

    The variant is ``variant``, else the one ``spec`` names, else the trained
    one; for another variant than trained only the class count is kept (the
    other parameters belong to the trained variant). ``overrides`` win.
    """
    from ..frontend.resolve import resolve

    variant = variant or resolve(spec)[1] or meta.get("variant")
    trained = meta.get("params", {})
    if variant != meta.get("variant"):
        trained = {k: v for k, v in trained.items() if k == "num_classes"}
    probe = resolve_spec(spec, variant, {})
    return variant, {k: v for k, v in trained.items() if k in probe.params} | (overrides or {})


def check_classifier(resolved: ResolvedSpec, num_classes: int) -> None:
    """Raise ``SpecError`` unless the network outputs one score per class (or more, when asked)."""
    arch = resolved.arch
    out = arch.output_shape
    if len(out) != 1:
        raise SpecError(f"{arch.name} outputs a {shape_text(out)} tensor; training needs a "
                        "vector of class scores (end the network with flatten and linear)")
    if out[0] == num_classes:
        return
    if not resolved.declares_num_classes:
        raise SpecError(f"{arch.name} outputs {out[0]} scores but the data has {num_classes} classes, "
                        "and the spec has no `num_classes` parameter to resize its classifier",
                        hint="declare `param num_classes = ...` and use it in the last linear")
    if out[0] < num_classes:
        raise SpecError(f"num_classes = {out[0]} is fewer than the data's {num_classes} classes",
                        hint=f"drop --set num_classes, or set it to at least {num_classes}")


def head_modules(resolved: ResolvedSpec) -> list[str]:
    """Module paths of the classifier head (those that change with ``num_classes``)."""
    arch = resolved.arch
    if resolved.declares_num_classes and isinstance(arch.params.get("num_classes"), int):
        params = dict(arch.params, num_classes=arch.params["num_classes"] + 1)
        try:
            other = elaborate_spec(resolved.module, resolved.path, resolved.variant, params,
                                   resolved.input_shape)
        except ArchError:
            other = None
        if other is not None:
            theirs = {d["name"]: (d["shape"], d["attrs"], d["params"]) for _, d in other.ops()}
            head = [d["name"] for _, d in arch.ops()
                    if d["params"] and theirs.get(d["name"]) != (d["shape"], d["attrs"], d["params"])]
            if head:
                return head
    weighted = [d["name"] for _, d in arch.ops(include_aux=False) if d["params"]]
    return weighted[-1:]


def in_head(key: str, head: list[str]) -> bool:
    """Whether a parameter or state-dict key belongs to one of the ``head`` modules."""
    return any(key == h or key.startswith(h + ".") for h in head)


def transfer_weights(model, state: dict, head: list[str]) -> dict:
    """Load every tensor of ``state`` whose name and shape match ``model``'s; skip the rest.

    Returns ``{"loaded": [...], "skipped": [(key, why)], "missing": [...]}``:
    skipped are source tensors that do not fit (a classifier for another
    class count), missing are the model's tensors left at their initial values.
    Raises ``ArchError`` when nothing matches.
    """
    state = {_strip(k): v for k, v in state.items()}
    own = model.state_dict()
    loaded, skipped = {}, []
    for key, tensor in state.items():
        if key not in own:
            skipped.append((key, "not in this network"))
        elif tuple(tensor.shape) != tuple(own[key].shape):
            skipped.append((key, f"shape {tuple(tensor.shape)}, the network has {tuple(own[key].shape)}"))
        else:
            loaded[key] = tensor.to(own[key].dtype)
    if not loaded:
        raise ArchError("--init-from: no tensor of the source matches this network by name and shape "
                        f"(source has e.g. {', '.join(list(state)[:3])}; network has e.g. "
                        f"{', '.join(list(own)[:3])})")
    model.load_state_dict({**own, **loaded})
    missing = [k for k in own if k not in loaded]
    return {"loaded": sorted(loaded), "skipped": skipped, "missing": missing,
            "outside_head": [k for k in missing if not in_head(k, head)]}


def _strip(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def freeze_backbone(model, head: list[str]) -> list:
    """Stop gradients outside ``head``; returns the backbone's norm layers (kept in eval mode)."""
    from torch import nn

    for name, param in model.named_parameters():
        param.requires_grad_(in_head(name, head))
    norms = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
    return [m for name, m in model.named_modules() if isinstance(m, norms) and not in_head(name, head)]
