"""Benchmark: train ``examples/small_resnet.arch`` on Fashion-MNIST; report test accuracy and wall time.

    python benchmarks/train_fashion_mnist.py                   # the default recipe, on CPU
    python benchmarks/train_fashion_mnist.py --epochs 4 --threads 1
    python benchmarks/train_fashion_mnist.py --gpu-throughput  # resnet50 training throughput on CUDA

The recipe is the one ``archdsl train`` would run with the same flags; the
wall time covers everything (data loading, training, per-epoch evaluation and
checkpoints). Fashion-MNIST comes from Debian's ``dataset-fashion-mnist``.

``--gpu-throughput`` times training steps (forward, backward, SGD) of
resnet50 at 224 x 224 with bf16 autocast and channels_last: the archdsl
compiled network against torchvision's reference implementation (an oracle
here, never used by archdsl itself). It is skipped without CUDA.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def train_benchmark(args) -> dict:
    import torch

    from archdsl.training import TrainConfig, train
    from archdsl.training.evaluate import evaluate_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = str(ROOT / "examples" / "small_resnet.arch")
    cfg = TrainConfig(spec=spec, variant=args.variant, data="fashion-mnist", epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, nesterov=True,
                      warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing,
                      weight_decay=args.weight_decay, seed=args.seed, out=args.out, quiet=args.quiet)
    start = time.perf_counter()
    summary = train(cfg)
    wall = time.perf_counter() - start
    last = Path(args.out) / "checkpoints" / f"epoch-{summary['epochs']:04d}.safetensors"
    report = evaluate_checkpoint(spec, str(last), "fashion-mnist", batch_size=500)
    result = {
        "spec": "examples/small_resnet.arch", "variant": args.variant, "epochs": summary["epochs"],
        "test_top1": report["top1"], "test_top5": report["top5"],
        "best_epoch_top1": summary["best_top1"], "wall_s": round(wall, 1),
        "train_s": round(summary["train_s"], 1), "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "run_dir": args.out, "plot": str(Path(args.out) / "curves.png"),
        "recipe": {k: getattr(cfg, k) for k in ("batch_size", "optimizer", "nesterov", "schedule",
                                                "warmup_epochs", "label_smoothing")}
        | {"lr": cfg.base_lr(), "weight_decay": cfg.decay()},
    }
    (Path(args.out) / "benchmark.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def gpu_throughput(args) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device"}
    import torchvision

    import archdsl

    torch.backends.cudnn.benchmark = True

    def images_per_second(model) -> float:
        model = model.cuda().to(memory_format=torch.channels_last).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(args.gpu_batch, 3, 224, 224, device="cuda").contiguous(
            memory_format=torch.channels_last)
        y = torch.randint(0, 1000, (args.gpu_batch,), device="cuda")
        for step in range(args.gpu_warmup + args.gpu_steps):
            if step == args.gpu_warmup:
                torch.cuda.synchronize()
                start = time.perf_counter()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        return args.gpu_batch * args.gpu_steps / (time.perf_counter() - start)

    torch.manual_seed(0)
    ours = images_per_second(archdsl.build("resnet50"))
    reference = images_per_second(torchvision.models.resnet50())
    return {"device": torch.cuda.get_device_name(), "batch": args.gpu_batch, "amp": "bf16",
            "channels_last": True, "archdsl_img_s": round(ours), "torchvision_img_s": round(reference),
            "ratio": round(ours / reference, 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="small_resnet")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--warmup-epochs", type=float, default=0.5)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-fashion-mnist"))
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--gpu-throughput", action="store_true",
                   help="instead: time resnet50 training steps, archdsl vs torchvision, on CUDA")
    p.add_argument("--gpu-batch", type=int, default=128)
    p.add_argument("--gpu-warmup", type=int, default=10)
    p.add_argument("--gpu-steps", type=int, default=50)
    args = p.parse_args(argv)
    if args.gpu_throughput:
        print(json.dumps(gpu_throughput(args), indent=2))
        return 0
    if Path(args.out).exists():  # a benchmark starts from scratch, but deletes only a run directory
        if not (Path(args.out) / "config.json").is_file():
            p.error(f"{args.out} exists and is not a run directory")
        import shutil
        shutil.rmtree(args.out)
    print(json.dumps(train_benchmark(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
