"""Accuracy of a network on a split: loss, top-1, top-5 and per-class accuracy."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .distributed import Context, all_sum


def autocast(device: torch.device, amp: str):
    """The autocast context for ``amp`` ("none", "bf16", "fp16") on ``device``."""
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def logits_of(output):
    """The main output of a network (which returns ``NetworkOutputs`` in training with aux heads)."""
    return output.logits if hasattr(output, "logits") else output


@torch.no_grad()
def evaluate(model, batches, num_classes: int, ctx: Context, amp: str = "none") -> dict:
    """Run ``model`` in eval mode over ``batches`` (every process its shard) and reduce the counts.

    Returns ``loss`` (plain cross-entropy), ``top1``, ``top5`` (fractions),
    ``count`` and ``per_class`` (a list of ``(correct, total)``).
    """
    was_training = model.training
    model.eval()
    device = ctx.device
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    per_class = torch.zeros(2, num_classes, dtype=torch.float64, device=device)
    for x, y in batches.epoch(0):
        with autocast(device, amp):
            logits = logits_of(model(x))
        logits = logits.float()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hit1 = top[:, 0] == y
        sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
        sums[1] += hit1.sum()
        sums[2] += (top == y[:, None]).any(dim=1).sum()
        sums[3] += len(y)
        per_class[0].index_add_(0, y, hit1.double())
        per_class[1].index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
    all_sum(sums, ctx)
    all_sum(per_class, ctx)
    model.train(was_training)
    count = max(1.0, sums[3].item())
    return {"loss": sums[0].item() / count, "top1": sums[1].item() / count,
            "top5": sums[2].item() / count, "count": int(sums[3].item()),
            "per_class": [(int(c), int(t)) for c, t in zip(per_class[0].tolist(), per_class[1].tolist())]}
