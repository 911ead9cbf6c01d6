"""The training loop: one :class:`Trainer` per process, from a :class:`TrainConfig`.

Randomness is derived, at the start of every epoch, from (seed, epoch, rank):
the global RNGs (dropout, stochastic depth), the shuffling and the
augmentation. Checkpoints are taken at epoch ends, so a run resumed from one
replays the remaining epochs exactly as the uninterrupted run would have (on
CPU bit for bit; on GPU up to nondeterministic kernels unless
``--deterministic``).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import ArchError
from .checkpoint import (latest_checkpoint, prune, read_checkpoint, remove_stale_temporaries,
                         resolve_checkpoint_path, save_checkpoint, save_weights)
from .config import TrainConfig
from .data import eval_preprocessing, load_dataset
from .distributed import Context, all_sum, barrier, cleanup, setup
from .evaluate import autocast, evaluate, logits_of
from .loaders import derive_seed, make_batches
from .model import (check_classifier, freeze_backbone, head_modules, resolve_spec,
                    transfer_weights)
from .optim import LRSchedule, build_optimizer, param_groups
from .outputs import read_json, write_metrics, write_spec_files
from .progress import Progress, format_duration


def train(cfg: TrainConfig, resume: bool = False, stream=None) -> dict:
    """Train as ``cfg`` says (``resume``: continue the run in ``cfg.out``); returns a summary.

    Works in one process or under ``torchrun`` (one process per device).
    """
    ctx = setup(cfg.device)
    try:
        trainer = Trainer(cfg, ctx, resume, stream)
        summary = trainer.run()
        # drop DistributedDataParallel (and its pending gloo work) and let every rank finish
        # before the process group goes: tearing it down under a peer can abort the process
        del trainer
        barrier(ctx)
        return summary
    finally:
        cleanup(ctx)


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG's state, as tensors and plain containers (loadable with ``weights_only``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                      float(cached)],
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class Trainer:
    """Everything one process needs to train: data, model, optimizer, schedule, outputs."""

    def __init__(self, cfg: TrainConfig, ctx: Context, resume: bool = False, stream=None):
        if cfg.out is None:
            raise ArchError("no run directory: pass --out RUN_DIR")
        self.cfg, self.ctx, self.resume = cfg, ctx, resume
        self.stream = stream or sys.stderr
        self.run_dir = Path(cfg.out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.history: list[dict] = []
        self.best = {"top1": -1.0, "epoch": 0}
        self.start_epoch, self.step = 0, 0

    # ---- messages ---------------------------------------------------------------------------

    def log(self, message: str) -> None:
        if self.ctx.is_main:
            print(message, file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        self.log(f"warning: {message}")

    # ---- setting up -------------------------------------------------------------------------

    def _flags(self) -> None:
        cuda = self.ctx.device.type == "cuda"
        if self.cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif cuda:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.amp = self.cfg.amp or ("bf16" if cuda and torch.cuda.is_bf16_supported() else
                                    "fp16" if cuda else "none")
        if self.amp == "fp16" and not cuda:
            raise ArchError("--amp fp16 needs a CUDA device; on CPU use --amp bf16 or none")
        self.channels_last = self.cfg.channels_last if self.cfg.channels_last is not None else cuda

    def _spec_and_data(self, checkpoint):
        cfg = self.cfg
        if checkpoint is not None:  # resuming: the spec as trained, with the parameters it resolved to
            meta = checkpoint.meta
            facts = read_json(self.run_dir / "spec.json")
            text = (self.run_dir / "spec.arch").read_text()
            resolved = resolve_spec(cfg.spec, meta["variant"], meta["params"], text=text,
                                    path=facts["source"],
                                    input_shape=meta.get("input_shape") or cfg.input)
            dataset = load_dataset(cfg.data, cfg.val_split, resolved.arch.input_shape, cfg.flip)
            if dataset.classes != meta["classes"]:
                raise ArchError(f"the data's classes changed since the checkpoint was written "
                                f"({len(meta['classes'])} then, {len(dataset.classes)} now)")
            check_classifier(resolved, len(dataset.classes))
            return resolved, dataset
        # the input shape fits the data
        probe = resolve_spec(cfg.spec, cfg.variant, cfg.overrides, input_shape=cfg.input)
        dataset = load_dataset(cfg.data, cfg.val_split, probe.arch.input_shape, cfg.flip)
        resolved = resolve_spec(cfg.spec, cfg.variant, cfg.overrides, len(dataset.classes),
                                input_shape=cfg.input)
        return resolved, dataset

    def _checkpoint_to_resume(self):
        if not self.resume:
            if self.ckpt_dir.is_dir() and any(self.ckpt_dir.glob("epoch-*.safetensors")):
                raise ArchError(f"{self.run_dir} already holds a run: continue it with "
                                f"--resume {self.run_dir}, or pass another --out")
            return None, None
        if not (self.run_dir / "config.json").is_file():
            raise ArchError(f"{self.run_dir} is not a run directory (no config.json)")
        return latest_checkpoint(self.ckpt_dir, warn=self.warn)

    def prepare(self) -> None:
        """Build data, model, optimizer and schedule; load the checkpoint when resuming."""
        cfg, ctx = self.cfg, self.ctx
        self._flags()
        checkpoint, state = self._checkpoint_to_resume()
        barrier(ctx)  # every rank has looked at the run directory before rank 0 writes to it
        self.resolved, self.dataset = self._spec_and_data(checkpoint)
        arch = self.resolved.arch
        self.num_classes = len(self.dataset.classes)
        needs_head = cfg.init_from or cfg.freeze or cfg.backbone_lr_scale != 1.0
        self.head = head_modules(self.resolved) if needs_head else []

        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        model = arch.to_torch()
        if checkpoint is not None:
            model.load_state_dict(checkpoint.weights)
        elif cfg.init_from:
            self._init_from(model)
        self.frozen_norms = freeze_backbone(model, self.head) if cfg.freeze else []
        model.to(ctx.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model

        self.train_batches, self.val_batches = make_batches(
            self.dataset, arch.input_shape, cfg.batch_size, seed=cfg.seed, rank=ctx.rank,
            world=ctx.world, device=ctx.device, channels_last=self.channels_last, flip=cfg.flip,
            crop_padding=cfg.crop_padding, workers=cfg.workers)
        if len(self.train_batches) == 0:
            raise ArchError("the training split is empty")

        self._optimisation(model)
        if state is not None:
            self._restore(state, checkpoint)
        net = model
        if ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(model, device_ids=[ctx.device] if ctx.device.type == "cuda"
                                          else None)
        self.net = torch.compile(net) if cfg.compile else net
        if ctx.is_main:
            self._write_run_dir(checkpoint)

    def _optimisation(self, model) -> None:
        """Optimizer, gradient scaler, LR schedule and loss for ``model``."""
        cfg = self.cfg
        groups = param_groups(model, self.head, cfg.decay(), cfg.backbone_lr_scale)
        self.optimizer = build_optimizer(cfg.optimizer, groups, cfg.base_lr(), cfg.momentum, cfg.nesterov)
        self.trainable = [p for g in groups for p in g["params"]]
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" else None
        spe = len(self.train_batches)
        self.schedule = LRSchedule(cfg.schedule, cfg.base_lr(), cfg.epochs * spe,
                                   round(cfg.warmup_epochs * spe), spe, cfg.step_size, cfg.gamma)
        self.criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def _restore(self, state: dict, checkpoint) -> None:
        """Optimizer, scaler, position, history and RNG state of a resumed run."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.step = state["epoch"], state["step"]
        self.history, self.best = list(state["history"]), dict(state["best"])
        set_rng_state(state["rng"])
        self.log(f"resuming {self.run_dir} after epoch {self.start_epoch} "
                 f"({checkpoint.path.name})")

    def _write_run_dir(self, checkpoint) -> None:
        """Create the run directory and record the spec and config (rank 0 only)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        remove_stale_temporaries(self.run_dir)
        remove_stale_temporaries(self.ckpt_dir)
        if checkpoint is None:
            write_spec_files(self.run_dir, self.resolved.text, self._facts())
        self.cfg.save(self.run_dir / "config.json")  # on resume: records a changed --epochs

    def _init_from(self, model) -> None:
        source = read_checkpoint(resolve_checkpoint_path(self.cfg.init_from))
        report = transfer_weights(model, source.weights, self.head)
        total = len(model.state_dict())
        self.log(f"init from {source.path}: loaded {len(report['loaded'])}/{total} tensors")
        for key, why in report["skipped"]:
            self.log(f"  skipped {key}: {why}")
        if report["outside_head"]:
            shown = ", ".join(report["outside_head"][:5])
            self.warn(f"{len(report['outside_head'])} tensors outside the classifier kept their "
                      f"random initial values (e.g. {shown})")

    def _facts(self) -> dict:
        arch, ds, cfg = self.resolved.arch, self.dataset, self.cfg
        return {"spec": cfg.spec, "source": str(Path(self.resolved.path).resolve()),
                "family": arch.family, "name": arch.name, "variant": self.resolved.variant,
                "params": arch.params, "input_shape": list(arch.input_shape),
                "output_shape": list(arch.output_shape), "parameters": arch.parameter_count(),
                "macs": arch.macs(), "dataset": ds.name, "val_split": ds.val_name,
                "classes": ds.classes, "mean": list(ds.mean), "std": list(ds.std),
                "train_images": len(ds.train), "val_images": len(ds.val),
                "head": self.head,
                "resolved": {"device": str(self.ctx.device), "world_size": self.ctx.world,
                             "amp": self.amp, "channels_last": self.channels_last,
                             "lr": cfg.base_lr(), "weight_decay": cfg.decay(),
                             "global_batch_size": cfg.batch_size * self.ctx.world}}

    def _meta(self, val_top1: float) -> dict:
        arch = self.resolved.arch
        return {"spec": self.cfg.spec, "name": arch.name, "variant": self.resolved.variant,
                "params": arch.params, "classes": self.dataset.classes, "dataset": self.dataset.name,
                "val_split": self.cfg.val_split, "input_shape": list(arch.input_shape),
                "preprocess": eval_preprocessing(self.dataset, arch.input_shape),
                "val_top1": val_top1}

    # ---- training ---------------------------------------------------------------------------

    def loss(self, output, labels):
        """Cross-entropy of the main output, plus ``aux_weight`` x each auxiliary output's."""
        if hasattr(output, "aux"):
            loss = self.criterion(output.logits, labels)
            for aux in output.aux.values():
                loss = loss + self.cfg.aux_weight * self.criterion(aux, labels)
            return loss
        return self.criterion(output, labels)

    def train_epoch(self, epoch: int) -> dict:
        """One pass over this rank's shard; returns the loss and accuracy over all ranks."""
        cfg, ctx = self.cfg, self.ctx
        self.net.train()
        for norm in self.frozen_norms:
            norm.eval()
        progress = Progress(len(self.train_batches), f"epoch {epoch + 1}/{cfg.epochs}", self.stream,
                            quiet=cfg.quiet or not ctx.is_main)
        sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss x n, correct, n
        lr = 0.0
        for i, (x, y) in enumerate(self.train_batches.epoch(epoch)):
            lr = self.schedule.apply(self.optimizer, self.step)
            with autocast(ctx.device, self.amp):
                output = self.net(x)
                loss = self.loss(output, y)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                if cfg.clip_grad:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.trainable, cfg.clip_grad)
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                if cfg.clip_grad:
                    torch.nn.utils.clip_grad_norm_(self.trainable, cfg.clip_grad)
                self.optimizer.step()
            self.step += 1
            with torch.no_grad():
                sums[0] += loss.detach().double() * len(y)
                sums[1] += (logits_of(output).argmax(1) == y).sum()
                sums[2] += len(y)
            if progress.due(i + 1):
                total_loss, correct, seen = sums.tolist()
                self._check_finite(total_loss, epoch)
                progress.update(i + 1, int(seen) * ctx.world, total_loss / seen, correct / seen)
        self.progress = progress
        total_loss, correct, seen = all_sum(sums, ctx).tolist()
        self._check_finite(total_loss, epoch)
        return {"lr": lr, "train_loss": total_loss / seen, "train_top1": correct / seen,
                "images": int(seen)}

    @staticmethod
    def _check_finite(value: float, epoch: int) -> None:
        if not math.isfinite(value):
            raise ArchError(f"the loss became {value} in epoch {epoch + 1}: the run diverged; "
                            "lower --lr, add --warmup-epochs or --clip-grad")

    def save(self, epoch_done: int, improved: bool) -> None:
        """Rank 0: best weights, then the epoch checkpoint, metrics and curves."""
        weights = self.model.state_dict()
        meta = self._meta(self.history[-1]["val_top1"])
        if improved:  # before the epoch checkpoint: that one records this best
            save_weights(self.ckpt_dir / "best.safetensors", weights, dict(meta, epoch=epoch_done))
        state = {"epoch": epoch_done, "step": self.step, "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                 "history": self.history, "best": self.best, "rng": rng_state()}
        save_checkpoint(self.ckpt_dir, epoch_done, weights, state, meta)
        prune(self.ckpt_dir, self.cfg.keep)
        write_metrics(self.run_dir, self.history)
        try:
            from .plot import plot_curves

            plot_curves(self.history, self.run_dir / "curves.png",
                        f"{self.resolved.arch.name} on {self.dataset.name}", self.cfg.label_smoothing)
        except ImportError:
            if epoch_done == self.start_epoch + 1:
                self.warn("matplotlib is not installed: no curves.png")

    def run(self) -> dict:
        """Train the remaining epochs; returns a summary of the run."""
        self.prepare()
        cfg, ctx = self.cfg, self.ctx
        if self.start_epoch >= cfg.epochs:
            self.log(f"{self.run_dir} has finished its {self.start_epoch} epochs; "
                     "pass --epochs to train longer")
        elif self.start_epoch == 0:
            arch = self.resolved.arch
            self.log(f"training {arch.name} ({arch.parameter_count():,} parameters) on "
                     f"{self.dataset.name}: {len(self.dataset.train):,} images, {self.num_classes} "
                     f"classes, validating on {self.dataset.val_name}; {ctx.world} x {ctx.device}, "
                     f"amp {self.amp} -> {self.run_dir}")
        for epoch in range(self.start_epoch, cfg.epochs):
            seed_all(derive_seed(cfg.seed, epoch, ctx.rank, "global"))
            start = time.perf_counter()
            stats = self.train_epoch(epoch)
            seconds = time.perf_counter() - start
            val = evaluate(self.model, self.val_batches, self.num_classes, ctx, self.amp)
            elapsed = (self.history[-1]["elapsed_s"] if self.history else 0.0) + seconds
            row = {"epoch": epoch + 1, "lr": stats["lr"], "train_loss": stats["train_loss"],
                   "train_top1": stats["train_top1"], "val_loss": val["loss"], "val_top1": val["top1"],
                   "val_top5": val["top5"], "images_per_s": stats["images"] / seconds,
                   "epoch_s": seconds, "elapsed_s": elapsed}
            self.history.append(row)
            improved = val["top1"] > self.best["top1"]
            if improved:
                self.best = {"top1": val["top1"], "epoch": epoch + 1}
            if ctx.is_main:
                self.save(epoch + 1, improved)
            barrier(ctx)
            self.progress.close(
                f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.4f} acc {row['train_top1']:6.2%}"
                f"  val loss {row['val_loss']:.4f} top-1 {row['val_top1']:6.2%} top-5 {row['val_top5']:6.2%}"
                f"  {row['images_per_s']:,.0f} img/s  {format_duration(seconds)}"
                + ("  *best" if improved else "") if ctx.is_main else None)
        last = self.history[-1] if self.history else {}
        return {"run_dir": str(self.run_dir), "epochs": len(self.history),
                "best_top1": self.best["top1"], "best_epoch": self.best["epoch"],
                "final_top1": last.get("val_top1"), "final_top5": last.get("val_top5"),
                "train_s": last.get("elapsed_s", 0.0)}
