"""Loading weights in torchvision's layout into a compiled network, in one call."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .errors import WeightsError


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


def load_weights(module: nn.Module, source) -> nn.Module:
    """Load ``source`` into ``module``: by name when the keys match, else by order and shape."""
    state = read_state_dict(source)
    own = module.state_dict()
    if set(state) == set(own):
        for key, tensor in state.items():
            if tuple(tensor.shape) != tuple(own[key].shape):
                raise WeightsError(f"{key}: the weights have shape {tuple(tensor.shape)}, "
                                   f"the network expects {tuple(own[key].shape)}")
        module.load_state_dict(state)
        return module
    theirs = [(k, v) for k, v in state.items()]
    mine = list(own.items())
    if len(theirs) == len(mine) and all(tuple(v.shape) == tuple(w.shape)
                                        for (_, v), (_, w) in zip(theirs, mine)):
        module.load_state_dict({k: v for (k, _), (_, v) in zip(mine, theirs)})
        return module
    missing = sorted(set(own) - set(state))[:5]
    unexpected = sorted(set(state) - set(own))[:5]
    raise WeightsError(
        "the weights do not fit this network: "
        f"{len(state)} tensors given, {len(own)} expected"
        + (f"; missing e.g. {', '.join(missing)}" if missing else "")
        + (f"; unexpected e.g. {', '.join(unexpected)}" if unexpected else ""))
