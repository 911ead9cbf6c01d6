"""The files of a run directory besides checkpoints: spec copy, resolved facts, metrics.

    RUN_DIR/spec.arch       the spec text as trained
    RUN_DIR/spec.json       what it resolved to: variant, parameters, shapes, classes, data
    RUN_DIR/config.json     the run configuration
    RUN_DIR/metrics.csv     one row per epoch
    RUN_DIR/metrics.jsonl   the same, one JSON object per line
    RUN_DIR/curves.png      loss and accuracy curves
    RUN_DIR/checkpoints/    epoch-NNNN.safetensors + epoch-NNNN.state.pt, best.safetensors

Metrics files are rewritten whole from the history kept in the checkpoint,
so after a resume they hold exactly the epochs the checkpoint has seen.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .checkpoint import atomic_write

METRIC_FIELDS = ["epoch", "lr", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5",
                 "images_per_s", "epoch_s", "elapsed_s"]


def write_spec_files(run_dir: Path, text: str, facts: dict) -> None:
    """Write ``spec.arch`` (the text) and ``spec.json`` (what it resolved to)."""
    atomic_write(run_dir / "spec.arch", text.encode())
    atomic_write(run_dir / "spec.json", (json.dumps(facts, indent=2) + "\n").encode())


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """Rewrite ``metrics.csv`` and ``metrics.jsonl`` from ``history``."""
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=METRIC_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write(run_dir / "metrics.csv", table.getvalue().encode())
    lines = "".join(json.dumps(row) + "\n" for row in history)
    atomic_write(run_dir / "metrics.jsonl", lines.encode())


def read_json(path: Path) -> dict:
    """A JSON file written by this module or by :meth:`TrainConfig.save`."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: is {Path(path).parent} a run directory?") from None
