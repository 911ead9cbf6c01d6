"""Single-process and ``torchrun`` (DistributedDataParallel) execution.

Under ``torchrun`` every process reads ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` from the environment and joins a process group: NCCL when each
process drives a GPU, gloo on CPU. Rank 0 alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ArchError


@dataclass
class Context:
    """Where this process runs and which share of the work it does."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """``requested`` (e.g. ``cuda:1``, ``cpu``), or CUDA when available, else CPU."""
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ArchError(f"--device {requested}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def setup(requested_device: str | None) -> Context:
    """Join the process group when launched by ``torchrun``; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(rank, world, local_rank, device)


def cleanup(ctx: Context) -> None:
    """Leave the process group (if any)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(tensor: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place; a no-op in a single process)."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(ctx: Context) -> None:
    """Wait for every process (e.g. until rank 0 has written a checkpoint)."""
    if ctx.distributed:
        dist.barrier()

