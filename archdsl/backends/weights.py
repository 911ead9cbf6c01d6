"""Loading weights in torchvision's layout into a compiled network, in one call.

Weights files are untrusted input: ``.pth`` files are read with
``weights_only=True`` (tensors and plain containers, never arbitrary
objects), ``.safetensors`` files hold tensors only and an archdsl
checkpoint's checksum is verified. Every tensor must be finite and of the
dtype of the tensor it replaces; nothing is cast or matched silently.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError

# BatchNorm's counter: absent from checkpoints saved before PyTorch 0.4.1, which torch still loads.
OPTIONAL_SUFFIX = "num_batches_tracked"


class WeightsWarning(UserWarning):
    """Weights were loaded, but not by name (matched by order and shape)."""


def tensors_sha256(tensors: dict) -> str:
    """A digest of names, dtypes, shapes and bytes of ``tensors`` (in name order)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def _read_safetensors(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    if "archdsl" in header:  # an archdsl checkpoint carries a checksum of its tensors
        try:
            expected = json.loads(header["archdsl"]).get("tensor_sha256")
        except (ValueError, AttributeError):
            raise WeightsError(f"{path}: its archdsl metadata is not valid JSON") from None
        if expected is not None and tensors_sha256(state) != expected:
            raise WeightsError(f"{path} is corrupted: its tensors do not match the checksum "
                               "written with them")
    return state


def _read_pickle(path: Path) -> dict:
    import pickle

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message suggests weights_only=False, which would run the file's code: not here.
        reason = next((line.strip() for line in str(err).splitlines()
                       if "Unsupported" in line or "unsupported" in line), "")
        raise WeightsError(f"cannot read weights from {path}: it holds Python objects other than "
                           f"tensors, which archdsl does not unpickle"
                           + (f" ({reason.rstrip('.')})" if reason else "")
                           + "; save its state_dict() with torch.save or as .safetensors") from None


def read_state_dict(source) -> dict:
    """A state dict from a dict, a ``.safetensors`` file or a ``.pth``/``.pt`` file.

    ``.pth`` files are read with ``weights_only=True``: nothing is unpickled
    beyond tensors and plain containers. A checkpoint's ``model`` /
    ``state_dict`` entry and DataParallel's ``module.`` prefix are unwrapped.
    Raises :class:`WeightsError`.
    """
    if isinstance(source, dict):
        state = source
    else:
        path = Path(source)
        if not path.is_file():
            raise WeightsError(f"no such weights file: {path}")
        try:
            state = _read_safetensors(path) if path.suffix == ".safetensors" else _read_pickle(path)
        except WeightsError:
            raise
        except Exception as err:  # noqa: BLE001 - any reader failure means an unusable file
            raise WeightsError(f"cannot read weights from {path}: {err}") from None
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise WeightsError("weights must be a state dict (a mapping of names to tensors)")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"weights must be tensors; {len(bad)} entries are not (e.g. {bad[0]})")
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
    """Compare ``state`` with a module's own state dict ``own``, by name and shape.

    BatchNorm's ``num_batches_tracked`` counters may be absent (old checkpoints).
    """
    return StateFit(
        missing=[k for k in own if k not in state and not k.endswith(OPTIONAL_SUFFIX)],
        unexpected=[k for k in state if k not in own],
        reshaped=[f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                  for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)])


def check_values(state: dict, own: dict, cast: bool = False) -> None:
    """Refuse tensors holding NaN or Inf, and tensors of another dtype than the ones they replace.

    With ``cast=True`` a floating tensor may replace one of another floating
    precision (half → float); an integer or boolean tensor never replaces a
    floating one. Raises :class:`WeightsError` naming the tensors.
    """
    nonfinite = []
    for key, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                nonfinite.append(f"{key} ({bad:,} of {tensor.numel():,} values)")
    if nonfinite:
        raise WeightsError(f"{len(nonfinite)} tensors hold NaN or Inf values, e.g. "
                           + ", ".join(nonfinite[:3]))
    mismatched = []
    for key, tensor in state.items():
        mine = own[key]
        if tensor.dtype == mine.dtype:
            continue
        if cast and tensor.is_floating_point() and mine.is_floating_point():
            continue
        mismatched.append(f"{key} is {str(tensor.dtype).removeprefix('torch.')}, "
                          f"expected {str(mine.dtype).removeprefix('torch.')}")
    if mismatched:
        raise WeightsError(f"{len(mismatched)} tensors have another dtype than the network's, e.g. "
                           + "; ".join(mismatched[:3]) + " (nothing is cast silently"
                           + ("" if cast else "; load_weights(cast=True) converts floating precisions")
                           + ")")


def _by_position(own: dict, state: dict) -> dict | None:
    """``state`` renamed to ``own``'s names when both list the same shapes in the same order."""
    mine = list(own.items())
    if len(state) < len(mine):  # an old checkpoint may lack every BatchNorm counter
        mine = [(k, v) for k, v in mine if not k.endswith(OPTIONAL_SUFFIX)]
    theirs = list(state.values())
    if len(theirs) != len(mine) or any(tuple(v.shape) != tuple(w.shape)
                                       for v, (_, w) in zip(theirs, mine)):
        return None
    return {k: v for (k, _), v in zip(mine, theirs)}


def load_weights(module: nn.Module, source, *, strict: bool = False, cast: bool = False) -> nn.Module:
    """Load ``source`` (see :func:`read_state_dict`) into ``module`` and return it.

    Tensors are matched by name. When the names differ and ``strict`` is false,
    a checkpoint listing tensors of the same shapes in the same order is
    matched by position, with a :class:`WeightsWarning` saying how many tensors
    were. Missing BatchNorm ``num_batches_tracked`` counters are set to 0.
    Raises :class:`WeightsError` for tensors that do not fit, hold NaN/Inf, or
    have another dtype (see :func:`check_values`).
    """
    state = read_state_dict(source)
    own = module.state_dict()
    fit = state_fit(own, state)
    if not fit.missing and not fit.unexpected:
        if fit.reshaped:
            raise WeightsError(f"the weights do not fit this network: {fit}")
        return _load(module, state, own, cast)
    renamed = None if strict else _by_position(own, state)
    if renamed is None:
        how = "by name" if strict else "by name or by order and shape"
        raise WeightsError(f"the weights do not fit this network ({how}): {len(state)} tensors "
                           f"given, {len(own)} expected; {fit}")
    warnings.warn(f"matched {len(renamed)} of {len(state)} tensors by position (order and shape), "
                  f"not by name: {fit}", WeightsWarning, stacklevel=2)
    return _load(module, renamed, own, cast)


def _load(module: nn.Module, state: dict, own: dict, cast: bool) -> nn.Module:
    check_values(state, own, cast)
    state = dict(state)
    for key, tensor in own.items():  # counters absent from old checkpoints start at 0
        if key.endswith(OPTIONAL_SUFFIX) and key not in state:
            state[key] = torch.zeros_like(tensor, device="cpu")
    module.load_state_dict(state)
    return module
