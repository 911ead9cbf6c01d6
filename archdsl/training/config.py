"""The run configuration of ``archdsl train``: one validated, JSON-serialisable object.

Every option has a default or an ``auto`` value (``None``) resolved at run time
(e.g. mixed precision on CUDA only), so ``config.json`` records what the user
asked for and ``resolved`` in ``spec.json`` records what the run used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Options that may change when a run is resumed; everything else would make the
# resumed run a different experiment.
RESUMABLE = {"epochs", "workers", "device", "quiet"}


class TrainConfig(BaseModel):
    """What to train, on which data, and how. Field names match the CLI flags."""

    model_config = ConfigDict(extra="forbid")

    # the network
    spec: str = Field(description="a .arch file or a bundled model name")
    variant: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict, description="spec parameters (--set)")
    input: list[int] | None = Field(None, description="the network's input: [C, H, W], or [H, W] keeping "
                                                      "the spec's channels (--input, --img-size); None: "
                                                      "the spec's own")

    # the data
    data: str = Field(description="a class-per-subfolder folder, 'fashion-mnist' or 'digits'")
    val_split: float = Field(0.1, gt=0.0, lt=1.0,
                             description="held-out fraction when the data has no validation split")
    flip: bool | None = None            # random horizontal flips; None: the dataset's default
    crop_padding: int | None = Field(None, ge=0)  # random-crop padding (small images); None: default
    workers: int | None = Field(None, ge=0)        # DataLoader workers; None: auto

    # the schedule
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(128, ge=1, description="per process")
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float | None = Field(None, gt=0.0)          # None: 0.1 (SGD) or 1e-3 (AdamW) per 256 images
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float | None = Field(None, ge=0.0)  # None: 5e-4 (SGD) or 0.05 (AdamW)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0)
    step_size: int = Field(30, ge=1, description="epochs between LR drops (step schedule)")
    gamma: float = Field(0.1, gt=0.0, le=1.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    clip_grad: float | None = Field(None, gt=0.0)
    aux_weight: float = Field(0.3, ge=0.0, description="loss weight of auxiliary outputs")

    # the machine
    device: str | None = None           # None: cuda when available, else cpu
    amp: Literal["none", "bf16", "fp16"] | None = None   # None: bf16 on CUDA, none on CPU
    channels_last: bool | None = None   # None: on CUDA
    compile: bool = False
    seed: int = 0
    deterministic: bool = False

    # transfer learning
    init_from: str | None = None
    freeze: bool = False
    backbone_lr_scale: float = Field(1.0, ge=0.0)

    # outputs
    out: str | None = None
    keep: int = Field(2, ge=1, description="epoch checkpoints kept (besides the best)")
    quiet: bool = False

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.input is not None and (len(self.input) not in (2, 3) or min(self.input) < 1):
            raise ValueError(f"input must be [C, H, W] or [H, W], all positive; got {self.input}")
        if self.freeze and self.init_from is None:
            raise ValueError("--freeze needs --init-from (a frozen random backbone learns nothing)")
        return self

    def base_lr(self) -> float:
        """The peak learning rate: given, or the optimizer's default scaled by batch size / 256."""
        if self.lr is not None:
            return self.lr
        per_256 = 0.1 if self.optimizer == "sgd" else 1e-3
        return per_256 * self.batch_size / 256

    def decay(self) -> float:
        """Weight decay (applied to weights only, never to norms and biases)."""
        if self.weight_decay is not None:
            return self.weight_decay
        return 5e-4 if self.optimizer == "sgd" else 0.05

    def save(self, path: Path) -> None:
        """Write as indented JSON."""
        from .checkpoint import atomic_write

        atomic_write(Path(path), (json.dumps(self.model_dump(), indent=2) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        """Read a ``config.json`` written by :meth:`save`."""
        return cls.model_validate_json(Path(path).read_text())
