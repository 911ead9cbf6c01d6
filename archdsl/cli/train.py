"""``archdsl train``: train (or fine-tune, or resume) any spec on a dataset."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path

from ..errors import ArchError
from ._shared import input_arg, positive_int

_S = argparse.SUPPRESS  # options left out stay out of the namespace: we know what was given


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a spec on a dataset (crash-safe checkpoints, resume, fine-tuning)",
        description="Train SPEC on DATA: a folder of class subfolders (with train/ and val/, or split "
                    "by --val-split), or the built-in 'fashion-mnist' or 'digits'. The classifier "
                    "follows the data's class count (the spec parameter num_classes). Writes RUN_DIR "
                    "with the spec, config, metrics (CSV, JSON lines), curves.png and checkpoints "
                    "(safetensors) after every epoch. Runs under torchrun for several GPUs/machines.",
        epilog="examples:  archdsl train examples/small_resnet.arch --data fashion-mnist --epochs 8 "
               "--out runs/fmnist  |  archdsl train --resume runs/fmnist  |  archdsl train resnet18 "
               "--data ./flowers --init-from resnet18.pth --freeze")
    p.add_argument("spec", metavar="SPEC", nargs="?", help="a .arch file or a bundled model name")
    p.add_argument("--variant", default=_S, help="one of the spec's variants")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", default=_S,
                   help="override a spec parameter (a spec expression); repeatable")
    _data_options(p.add_argument_group("data"))
    _optimisation_options(p.add_argument_group("optimisation"))
    _machine_options(p.add_argument_group("machine"))
    _transfer_options(p.add_argument_group("transfer learning"))
    _output_options(p.add_argument_group("output"))
    p.set_defaults(func=run)


def _data_options(d) -> None:
    d.add_argument("--data", default=_S, help="a class-per-subfolder folder, 'fashion-mnist' or 'digits'")
    d.add_argument("--val-split", type=float, default=_S, metavar="F",
                   help="held-out fraction when the data has no val/ folder (default 0.1)")
    d.add_argument("--flip", action=argparse.BooleanOptionalAction, default=_S,
                   help="random horizontal flips (default: on, off for digits)")
    d.add_argument("--crop-padding", type=int, default=_S, metavar="PX",
                   help="random-crop padding for built-in datasets (default 2 for fashion-mnist)")
    d.add_argument("--workers", type=int, default=_S, help="DataLoader workers for folders")
    d.add_argument("--input", type=input_arg, default=_S, metavar="CxHxW",
                   help="train the network at this input (e.g. 1x32x32, or 32 for a square input with "
                        "the spec's channels); the images are resized to it (default: the spec's input)")
    d.add_argument("--img-size", type=positive_int("a positive number of pixels"), default=_S, metavar="N",
                   help="train at N x N pixels, keeping the spec's channels (same as --input N)")


def _optimisation_options(s) -> None:
    s.add_argument("--epochs", type=int, default=_S, help="default 10")
    s.add_argument("--batch-size", type=int, default=_S, help="per process (default 128)")
    s.add_argument("--optimizer", choices=["sgd", "adamw"], default=_S, help="default sgd")
    s.add_argument("--lr", type=float, default=_S,
                   help="peak learning rate (default 0.1 for SGD, 1e-3 for AdamW, per 256 images)")
    s.add_argument("--momentum", type=float, default=_S, help="SGD momentum (default 0.9)")
    s.add_argument("--nesterov", action="store_true", default=_S, help="Nesterov momentum")
    s.add_argument("--weight-decay", type=float, default=_S,
                   help="on weights only, never norms or biases (default 5e-4 SGD, 0.05 AdamW)")
    s.add_argument("--schedule", choices=["cosine", "step", "constant"], default=_S, help="default cosine")
    s.add_argument("--warmup-epochs", type=float, default=_S, help="linear warm-up (default 0)")
    s.add_argument("--step-size", type=int, default=_S, help="epochs per step decay (default 30)")
    s.add_argument("--gamma", type=float, default=_S, help="step decay factor (default 0.1)")
    s.add_argument("--label-smoothing", type=float, default=_S, help="default 0")
    s.add_argument("--clip-grad", type=float, default=_S, metavar="NORM", help="clip the gradient norm")
    s.add_argument("--aux-weight", type=float, default=_S, help="auxiliary outputs' loss weight (0.3)")


def _machine_options(m) -> None:
    m.add_argument("--device", default=_S, help="cpu, cuda, cuda:1… (default: cuda when available)")
    m.add_argument("--amp", choices=["none", "bf16", "fp16"], default=_S,
                   help="mixed precision (default: bf16 on CUDA, none on CPU)")
    m.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=_S,
                   help="channels_last memory format (default: on CUDA)")
    m.add_argument("--compile", action="store_true", default=_S, help="torch.compile the network")
    m.add_argument("--seed", type=int, default=_S, help="default 0")
    m.add_argument("--deterministic", action="store_true", default=_S,
                   help="deterministic kernels only (slower on GPU)")


def _transfer_options(t) -> None:
    t.add_argument("--init-from", default=_S, metavar="CKPT",
                   help="start from an archdsl checkpoint or run, or a torchvision state dict file; "
                        "tensors that do not fit (the classifier) are skipped and reported")
    t.add_argument("--freeze", action="store_true", default=_S, help="train only the classifier head")
    t.add_argument("--backbone-lr-scale", type=float, default=_S, metavar="F",
                   help="the backbone's learning rate relative to the head's (default 1)")


def _output_options(o) -> None:
    o.add_argument("--out", default=_S, metavar="RUN_DIR", help="default runs/NAME-TIMESTAMP")
    o.add_argument("--keep", type=int, default=_S, help="epoch checkpoints kept (default 2)")
    o.add_argument("--resume", metavar="RUN_DIR",
                   help="continue RUN_DIR from its last good checkpoint (may raise --epochs)")
    o.add_argument("--quiet", action="store_true", default=_S, help="one line per epoch, no bar")
    o.add_argument("--json", action="store_true", help="print the summary as JSON")


def build_config(args):
    """The :class:`TrainConfig` the arguments describe (merged with RUN_DIR's when resuming)."""
    from pydantic import ValidationError

    from ..training.config import RESUMABLE, TrainConfig
    from ._shared import parse_overrides

    given = {k: v for k, v in vars(args).items() if k in TrainConfig.model_fields and v is not None}
    if "img_size" in vars(args):
        if "input" in given:
            raise ArchError("give --input or --img-size, not both")
        given["input"] = [args.img_size, args.img_size]
    if "input" in given:
        given["input"] = list(given["input"])
    if "overrides" in given:
        given["overrides"] = parse_overrides(given["overrides"])
    try:
        if args.resume:
            saved = TrainConfig.load(Path(args.resume) / "config.json") \
                if (Path(args.resume) / "config.json").is_file() else None
            if saved is None:
                raise ArchError(f"{args.resume} is not a run directory (no config.json)")
            changed = [k for k, v in given.items()
                       if k not in RESUMABLE and k != "out" and getattr(saved, k) != v]
            if changed:
                flags = ", ".join("--" + k.replace("_", "-") for k in changed)
                raise ArchError(f"{flags} cannot change when resuming (see {args.resume}/config.json); "
                                "only --epochs, --workers, --device and --quiet can")
            update = {k: v for k, v in given.items() if k in RESUMABLE}
            return TrainConfig.model_validate({**saved.model_dump(), **update, "out": args.resume})
        if "spec" not in given or "data" not in given:
            raise ArchError("train needs SPEC and --data DATA (or --resume RUN_DIR)")
        if "out" not in given:
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                raise ArchError("under torchrun, pass --out RUN_DIR (every process must agree on it)")
            name = Path(given["spec"]).stem if given["spec"].endswith(".arch") else given["spec"]
            given["out"] = str(Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}")
        return TrainConfig.model_validate(given)
    except ValidationError as err:
        problems = "; ".join(f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}"
                             if e["loc"] else e["msg"] for e in err.errors())
        raise ArchError(f"invalid options: {problems}") from None


def run(args) -> int:
    cfg = build_config(args)
    from ..training.loop import train

    summary = train(cfg, resume=bool(args.resume))
    if int(os.environ.get("RANK", "0")) == 0:
        _report(summary, args.json)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # After DistributedDataParallel on gloo, torch can abort (SIGABRT, "terminate called without
        # an active exception") in C++ destructors at interpreter exit. Every output is written and
        # fsync'ed by now, so end the process here rather than fail a finished run.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _report(summary: dict, as_json: bool) -> None:
    if as_json:
        from ._shared import print_json
        print_json(summary)
    else:
        run_dir = Path(summary["run_dir"])
        print(f"run        {run_dir}")
        if summary["best_epoch"]:
            print(f"best       val top-1 {summary['best_top1']:.2%} (epoch {summary['best_epoch']})  "
                  f"{run_dir / 'checkpoints' / 'best.safetensors'}")
            print(f"last       val top-1 {summary['final_top1']:.2%} after {summary['epochs']} epochs, "
                  f"{summary['train_s']:.0f} s of training")
        if (run_dir / "curves.png").is_file():  # absent without matplotlib (a warning said so)
            print(f"curves     {run_dir / 'curves.png'}")
