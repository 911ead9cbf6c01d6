"""Loading weights in torchvision's layout into a compiled network, in one call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError


def read_state_dict(source) -> dict:
    """A state dict from a dict, a ``.safetensors`` file or a ``.pth``/``.pt`` file.

    ``.pth`` files are read with ``weights_only=True``: nothing is unpickled
    beyond tensors and plain containers.
    """
    if isinstance(source, dict):
        state = source
    else:
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"no such weights file: {path}")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file
                state = load_file(str(path))
            else:
                state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any reader failure means an unusable file
            raise WeightsError(f"cannot read weights from {path}: {err}") from None
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict):
        raise WeightsError("weights must be a state dict (a mapping of names to tensors)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


@dataclass(frozen=True)
class StateFit:
    """How a state dict fits a module's: names it lacks, extra names, tensors of another shape."""

    missing: list
    unexpected: list
    reshaped: list  # "key (given shape) vs (expected shape)"

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.reshaped)

    def __str__(self) -> str:
        parts = [f"{len(items)} {what} (e.g. {', '.join(items[:3])})"
                 for what, items in (("missing", self.missing), ("unexpected", self.unexpected),
                                     ("of another shape", self.reshaped)) if items]
        return "; ".join(parts)


def state_fit(own: dict, state: dict) -> StateFit:
    """Compare ``state`` with a module's own state dict ``own``, by name and shape."""
    return StateFit(
        missing=[k for k in own if k not in state],
        unexpected=[k for k in state if k not in own],
        reshaped=[f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)])


def load_weights(module: nn.Module, source) -> nn.Module:
    """Load ``source`` into ``module``: by name when the keys match, else by order and shape."""
    state = read_state_dict(source)
    own = module.state_dict()
    fit = state_fit(own, state)
    if not fit.missing and not fit.unexpected:
        if fit.reshaped:
            raise WeightsError(f"the weights do not fit this network: {fit}")
        module.load_state_dict(state)
        return module
    theirs = [(k, v) for k, v in state.items()]
    mine = list(own.items())
    if len(theirs) == len(mine) and all(tuple(v.shape) == tuple(w.shape)
                                        for (_, v), (_, w) in zip(theirs, mine)):
        module.load_state_dict({k: v for (k, _), (_, v) in zip(mine, theirs)})
        return module
    raise WeightsError(f"the weights do not fit this network: {len(state)} tensors given, "
                       f"{len(own)} expected; {fit}")
