"""The run's learning curves as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
from pathlib import Path

from .checkpoint import atomic_write


def plot_curves(history: list[dict], path: Path, title: str = "", label_smoothing: float = 0.0) -> None:
    """Loss (train, val) and top-1 accuracy (train, val) per epoch, side by side.

    The training loss is the objective optimised, so with label smoothing it
    sits above the validation loss (plain cross-entropy); the legend says so.
    """
    from matplotlib.figure import Figure  # no pyplot: renders with Agg, no global backend change

    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4), dpi=100)
    loss_ax, acc_ax = fig.subplots(1, 2)
    train_label = f"train (label smoothing {label_smoothing:g})" if label_smoothing else "train"
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label=train_label)
    loss_ax.plot(epochs, [r["val_loss"] for r in history], "s-", label="val")
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.plot(epochs, [100 * r["train_top1"] for r in history], "o-", label="train")
    acc_ax.plot(epochs, [100 * r["val_top1"] for r in history], "s-", label="val top-1")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
        if len(epochs) < 20:
            ax.set_xticks(epochs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write(Path(path), buffer.getvalue())
