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


def evaluate_checkpoint(spec: str, checkpoint: str, data: str, *, variant: str | None = None,
                        overrides: dict | None = None, batch_size: int = 256, device: str | None = None,
                        amp: str | None = None, workers: int | None = None,
                        val_split: float | None = None) -> dict:
    """Evaluate a checkpoint of ``spec`` on the validation split of ``data``; returns a report.

    ``checkpoint`` is an archdsl checkpoint (its metadata restores the variant,
    parameters and held-out split of training), a run directory (its best
    checkpoint), or a plain state dict file (``.safetensors``/``.pth``).
    """
    from ..errors import ArchError
    from .checkpoint import CheckpointError, read_checkpoint, resolve_checkpoint_path
    from .data import load_dataset
    from .distributed import pick_device
    from .loaders import make_batches
    from .model import resolve_spec, trained_params
    from ..backends.weights import load_weights, state_fit

    ckpt = read_checkpoint(resolve_checkpoint_path(checkpoint))
    meta = ckpt.meta or {}
    variant, params = trained_params(spec, variant, meta, overrides)
    shape = meta.get("input_shape")  # the input it was trained at (train --input)
    probe = resolve_spec(spec, variant, params, input_shape=shape)
    split = val_split if val_split is not None else meta.get("val_split", 0.1)
    dataset = load_dataset(data, split, probe.arch.input_shape, flip=False)
    classes = dataset.classes
    if meta.get("classes") and meta["classes"] != classes:
        if len(meta["classes"]) != len(classes):
            raise ArchError(f"the checkpoint was trained on {len(meta['classes'])} classes "
                            f"({meta.get('dataset')}); {data} has {len(classes)}")
    resolved = resolve_spec(spec, variant, params, len(classes), input_shape=shape)
    model = resolved.arch.to_torch()
    if ckpt.meta is not None:
        problem = state_fit(model.state_dict(), ckpt.weights)
        if not problem.exact:
            raise CheckpointError(f"{ckpt.path} does not fit {resolved.arch.name}: {problem}; it was "
                                  f"trained as {meta.get('name')} ({meta.get('spec')})")
        model.load_state_dict(ckpt.weights)
    else:
        load_weights(model, ckpt.weights)
    dev = pick_device(device)
    cuda = dev.type == "cuda"
    amp = amp or ("bf16" if cuda else "none")
    model.to(dev)
    if cuda:
        model.to(memory_format=torch.channels_last)
    (batches,) = make_batches(dataset, resolved.arch.input_shape, batch_size, seed=0, rank=0, world=1,
                              device=dev, channels_last=cuda, workers=workers, splits=("val",))
    result = evaluate(model, batches, len(classes), Context(0, 1, 0, dev), amp)
    return {"spec": spec, "name": resolved.arch.name, "checkpoint": str(ckpt.path),
            "epoch": meta.get("epoch"), "data": dataset.name, "split": dataset.val_name,
            "images": result["count"], "top1": result["top1"], "top5": result["top5"],
            "loss": result["loss"],
            "per_class": [{"class": name, "accuracy": c / t if t else None, "correct": c, "total": t}
                          for name, (c, t) in zip(classes, result["per_class"])]}
