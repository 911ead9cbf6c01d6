"""Inference speed: archdsl's eval-only module (and torch.compile) against torchvision eager.

For each model, in one process and with the same weights (torchvision's
random init with "livened" BatchNorm statistics, so folding has work to do),
it times, alternating every iteration so drift hits all alike:

    tv            torchvision eager (the baseline: ratio 1)
    archdsl       archdsl.build(name, weights=...)                       eager
    inference     archdsl.build(..., optimize="inference")               eval-only, oneDNN
    tv+compile    torch.compile(torchvision, options={"freezing": True}) inductor
    inf+compile   archdsl.build(..., optimize="inference", compile=True)
    aot           archdsl.load_package(archdsl.compile_package(...))     AOTInductor (--aot)

and prints the median time of each and the median of the paired per-iteration
ratios against torchvision eager, the set-up time of each (build, or build +
first compiled call; for aot, loading the package, its compilation
printed on its own line), and the largest output difference from torchvision eager
relative to the output's scale (must be ≤ 1e-4).

    python benchmarks/inference.py                                  # the five models, batch 8
    python benchmarks/inference.py --models resnet50 --iters 5 --no-compile
    python benchmarks/inference.py --models resnet50 --aot          # + the ahead-of-time package
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torchvision

import archdsl

MODELS = ["resnet50", "mobilenet_v2", "efficientnet_b0", "googlenet", "densenet121", "convnext_tiny"]


@torch.no_grad()
def liven(model: torch.nn.Module, side: int, seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm affines and running statistics measured on a random batch."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.weight.copy_(torch.rand(norm.num_features, generator=g) + 0.5)
        norm.bias.copy_(torch.randn(norm.num_features, generator=g) * 0.1)
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    model(torch.randn(4, 3, side, side, generator=g))
    return model.eval()


def _timed(make):
    start = time.perf_counter()
    value = make()
    return value, time.perf_counter() - start


def candidates(name: str, args) -> tuple[dict, dict]:
    """The models to time, and the set-up seconds of each."""
    options = {"aux_logits": False} if name in ("googlenet", "inception_v3") else {}
    tv = liven(torchvision.models.get_model(name, **options), args.size)  # statistics at the timed size
    weights = tv.state_dict()
    models, setup = {"tv": tv}, {"tv": 0.0}
    models["archdsl"], setup["archdsl"] = _timed(lambda: archdsl.build(name, weights=weights, **options).eval())
    models["inference"], setup["inference"] = _timed(
        lambda: archdsl.build(name, weights=weights, optimize="inference", **options))
    if args.compile:
        models["tv+compile"], setup["tv+compile"] = _timed(
            lambda: torch.compile(tv, options={"freezing": True}))
        models["inf+compile"], setup["inf+compile"] = _timed(
            lambda: archdsl.build(name, weights=weights, optimize="inference", compile=True, **options))
    if args.aot:
        package = Path(tempfile.mkdtemp()) / f"{name}.pt2"
        _, seconds = _timed(lambda: archdsl.compile_package(name, package, weights=weights, batch=args.batch,
                                                            **options))
        print(f"{name}: AOTInductor package compiled in {seconds:.1f} s", flush=True)
        models["aot"], setup["aot"] = _timed(lambda: archdsl.load_package(package))
    return models, setup


@torch.no_grad()
def bench(name: str, args) -> dict:
    models, setup = candidates(name, args)
    x = torch.randn(args.batch, 3, args.size, args.size)
    expected = models["tv"](x)
    scale = expected.abs().max().item()
    errors = {}
    for key, model in models.items():
        out, first = _timed(lambda: model(x))  # the first call compiles the compiled ones
        if "compile" in key:
            setup[key] += first
        errors[key] = (out - expected).abs().max().item() / scale
    for _ in range(args.warmup):
        for model in models.values():
            model(x)
    times = {k: [] for k in models}
    keys = list(models)
    for i in range(args.iters):
        for key in keys[i % len(keys):] + keys[:i % len(keys)]:  # rotate who goes first
            _, seconds = _timed(lambda: models[key](x))
            times[key].append(seconds)
    return {key: {"ms": statistics.median(times[key]) * 1e3,
                  "ratio": statistics.median(a / b for a, b in zip(times[key], times["tv"])),
                  "setup": setup[key], "error": errors[key]} for key in models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the torch.compile columns (minutes of compilation on a small CPU)")
    parser.add_argument("--aot", action="store_true",
                        help="also compile and time the ahead-of-time package (a C++ compile per model)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"cpu batch={args.batch} size={args.size} iters={args.iters} warmup={args.warmup} "
          f"threads={torch.get_num_threads()} torch={torch.__version__} torchvision={torchvision.__version__}")
    print("ratio: median of paired per-iteration times / torchvision eager; "
          "error: max |out - torchvision eager| / max |torchvision eager|")
    print(f"{'model':<16} {'variant':<12} {'ms':>9} {'ratio':>7} {'setup s':>8} {'error':>9}")
    failed = []
    for name in args.models:
        for key, r in bench(name, args).items():
            ok = r["error"] <= 1e-4
            failed += [] if ok else [f"{name} {key}"]
            print(f"{name:<16} {key:<12} {r['ms']:>9.1f} {r['ratio']:>7.3f} {r['setup']:>8.2f} "
                  f"{r['error']:>9.1e}{'' if ok else '  > 1e-4'}", flush=True)
    if failed:
        raise SystemExit(f"outputs differ by more than 1e-4: {', '.join(failed)}")


if __name__ == "__main__":
    main()
