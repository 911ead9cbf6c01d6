"""Crash-safe checkpoints.

A checkpoint of epoch ``n`` is two files in ``RUN_DIR/checkpoints``:

* ``epoch-000n.state.pt`` — optimizer, schedule, epoch, metrics history and RNG
  state, saved with ``torch.save`` and holding only tensors and plain
  containers, so it loads with ``torch.load(..., weights_only=True)``;
* ``epoch-000n.safetensors`` — the weights (parameters and buffers). Its
  metadata carries the spec, the resolved parameters, the class names, a
  SHA-256 of its own tensors and the SHA-256 of the state file.

Every file is written to a temporary name, flushed, fsync'ed and renamed over
the final name (``os.replace`` is atomic), and the state file is written
before the weights. The weights file is therefore the commit record: a
checkpoint exists only once its weights file does, and its checksums prove
both files whole. A process killed at any moment leaves the previous
checkpoint untouched (at worst a stray temporary file, removed on resume).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..backends.weights import tensors_sha256  # noqa: F401 - the reader verifies it in build() too
from ..errors import ArchError

FORMAT = 1
_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.safetensors$")


class CheckpointError(ArchError):
    """A checkpoint that is missing, truncated, corrupted or not an archdsl checkpoint."""


@dataclass
class Checkpoint:
    """Weights read from a checkpoint file, with their archdsl metadata (None for plain files)."""

    path: Path
    weights: dict
    meta: dict | None = None
    state_path: Path | None = field(default=None)

    @property
    def epoch(self) -> int | None:
        return None if self.meta is None else self.meta.get("epoch")


# ---- writing ------------------------------------------------------------------------------

def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # some filesystems do not allow fsync on directories




def weights_bytes(state_dict: dict, meta: dict) -> bytes:
    """Serialise weights as safetensors, with ``meta`` and a checksum in the header."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    meta = dict(meta, format=FORMAT, tensor_sha256=tensors_sha256(tensors))
    return save(tensors, metadata={"archdsl": json.dumps(meta)})


def save_checkpoint(directory: Path, epoch: int, state_dict: dict, state: dict, meta: dict) -> Path:
    """Write epoch ``epoch``'s checkpoint (state first, weights last); returns the weights path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    state_data = buffer.getvalue()
    stem = f"epoch-{epoch:04d}"
    atomic_write(directory / f"{stem}.state.pt", state_data)
    meta = dict(meta, epoch=epoch, state_file=f"{stem}.state.pt",
                state_sha256=hashlib.sha256(state_data).hexdigest())
    weights = directory / f"{stem}.safetensors"
    atomic_write(weights, weights_bytes(state_dict, meta))
    return weights


def save_weights(path: Path, state_dict: dict, meta: dict) -> None:
    """Write a weights-only checkpoint (the best epoch) atomically."""
    atomic_write(Path(path), weights_bytes(state_dict, meta))


def prune(directory: Path, keep: int) -> None:
    """Keep the newest ``keep`` epoch checkpoints; delete the others (weights first)."""
    epochs = sorted(epoch_checkpoints(directory), reverse=True)
    for epoch in epochs[keep:]:
        stem = Path(directory) / f"epoch-{epoch:04d}"
        for suffix in (".safetensors", ".state.pt"):
            stem.with_name(stem.name + suffix).unlink(missing_ok=True)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files left by a process killed while writing."""
    for tmp in Path(directory).glob("*.tmp-*"):
        tmp.unlink(missing_ok=True)


# ---- reading ------------------------------------------------------------------------------

def epoch_checkpoints(directory: Path) -> list[int]:
    """Epoch numbers with a weights file in ``directory`` (unverified), ascending."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = (_EPOCH_FILE.match(p.name) for p in directory.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def read_checkpoint(path: Path) -> Checkpoint:
    """Read and verify a weights file; plain safetensors/.pth state dicts give ``meta=None``.

    Raises :class:`CheckpointError` with the reason when the file is missing,
    truncated or its tensors do not match the checksum written with them.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint: {path}")
    if path.suffix != ".safetensors":
        from ..backends.weights import read_state_dict

        try:
            return Checkpoint(path, read_state_dict(path))
        except ArchError as err:
            raise CheckpointError(f"{path} is not a readable checkpoint: {err}") from None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001 - any parse failure means a damaged file
        raise CheckpointError(f"{path} is truncated or corrupted (safetensors: {err}); "
                              "use an earlier checkpoint") from None
    if "archdsl" not in header:
        return Checkpoint(path, weights)
    try:
        meta = json.loads(header["archdsl"])
    except ValueError:
        raise CheckpointError(f"{path}: its archdsl metadata is not valid JSON") from None
    if meta.get("format", 0) > FORMAT:
        raise CheckpointError(f"{path} was written by a newer archdsl (format {meta['format']})")
    if tensors_sha256(weights) != meta.get("tensor_sha256"):
        raise CheckpointError(f"{path} is corrupted: its tensors do not match the checksum "
                              "written with them; use an earlier checkpoint")
    state_path = path.with_name(meta["state_file"]) if meta.get("state_file") else None
    return Checkpoint(path, weights, meta, state_path)


def read_state(checkpoint: Checkpoint) -> dict:
    """Load and verify the training state that belongs to ``checkpoint``."""
    path = checkpoint.state_path
    if path is None:
        raise CheckpointError(f"{checkpoint.path} holds weights only (no training state to resume)")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {checkpoint.path} cannot be resumed")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != checkpoint.meta.get("state_sha256"):
        raise CheckpointError(f"{path} is truncated or corrupted (checksum mismatch); "
                              "use an earlier checkpoint")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"cannot read training state {path}: {err}") from None


def latest_checkpoint(directory: Path, warn=None) -> tuple[Checkpoint, dict]:
    """The newest checkpoint in ``directory`` whose weights and state both verify.

    Damaged newer checkpoints are skipped, each reported through ``warn``;
    raises :class:`CheckpointError` when none is usable.
    """
    problems = []
    for epoch in reversed(epoch_checkpoints(directory)):
        try:
            checkpoint = read_checkpoint(Path(directory) / f"epoch-{epoch:04d}.safetensors")
            if checkpoint.meta is None:
                raise CheckpointError(f"{checkpoint.path} has no archdsl metadata")
            state = read_state(checkpoint)
        except CheckpointError as err:
            problems.append(str(err))
            if warn:
                warn(f"skipping a damaged checkpoint: {err}")
            continue
        return checkpoint, state
    detail = ("; ".join(problems)) if problems else "there are none"
    raise CheckpointError(f"no usable checkpoint in {directory}: {detail}")


def resolve_checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or a run directory (its best checkpoint, else its newest one)."""
    path = Path(path)
    if path.is_dir():
        directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        if (directory / "best.safetensors").is_file():
            return directory / "best.safetensors"
        epochs = epoch_checkpoints(directory)
        if not epochs:
            raise CheckpointError(f"no checkpoint in {path}")
        return directory / f"epoch-{epochs[-1]:04d}.safetensors"
    return path
