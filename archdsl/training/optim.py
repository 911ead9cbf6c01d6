"""Optimizers, parameter groups and the learning-rate schedule.

Weight decay applies to weights only: parameters with one dimension or none
(norm scales and shifts, biases) get none. Fine-tuning may give the backbone
a fraction of the head's learning rate. The schedule is a pure function of
the global step, so resuming needs only the step count.
"""

from __future__ import annotations

import math

import torch

from .model import in_head


def param_groups(model, head: list[str], weight_decay: float, backbone_lr_scale: float) -> list[dict]:
    """Trainable parameters split by (head or backbone) x (decayed or not), in a fixed order."""
    groups: dict[tuple, list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        key = (in_head(name, head), param.ndim > 1)
        groups.setdefault(key, []).append(param)
    out = []
    for (is_head, decay), params in sorted(groups.items(), reverse=True):
        out.append({"params": params, "weight_decay": weight_decay if decay else 0.0,
                    "lr_scale": 1.0 if is_head else backbone_lr_scale,
                    "group": f"{'head' if is_head else 'backbone'}/{'decay' if decay else 'no_decay'}"})
    if not out:
        raise ValueError("the network has no trainable parameters")
    return out


def build_optimizer(kind: str, groups: list[dict], lr: float, momentum: float, nesterov: bool,
                    fused: bool = False) -> torch.optim.Optimizer:
    """SGD (with momentum, optionally Nesterov) or AdamW over ``groups``."""
    extra = {"fused": True} if fused else {}
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0,
                               **extra)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **extra)
    raise ValueError(f"unknown optimizer {kind!r}")


class LRSchedule:
    """Linear warm-up, then cosine decay to zero, step decay, or a constant rate."""

    def __init__(self, kind: str, base_lr: float, total_steps: int, warmup_steps: int,
                 steps_per_epoch: int, step_size: int = 30, gamma: float = 0.1):
        self.kind, self.base_lr = kind, base_lr
        self.total, self.warmup = max(1, total_steps), min(warmup_steps, max(0, total_steps - 1))
        self.steps_per_epoch, self.step_size, self.gamma = max(1, steps_per_epoch), step_size, gamma

    def factor(self, step: int) -> float:
        """The multiplier of the base rate at global step ``step`` (0-based)."""
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        if self.kind == "cosine":
            t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            return 0.5 * (1.0 + math.cos(math.pi * t))
        if self.kind == "step":
            return self.gamma ** (step // (self.step_size * self.steps_per_epoch))
        return 1.0

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every group's rate for ``step``; returns the head's rate."""
        lr = self.base_lr * self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr
