"""Forward and forward+backward time of archdsl-compiled networks vs torchvision's.

Both models get the same weights; runs alternate between the two in one
process so drift (thermal, other load) hits both equally. Prints the median
time per iteration and the median of the paired per-iteration ratios
archdsl / torchvision (≤ 1.03 is the goal).

    python benchmarks/vs_torchvision.py                    # resnet50 and googlenet on CPU
    python benchmarks/vs_torchvision.py --models resnet18 mobilenet_v2 --batch 8 --size 224
    python benchmarks/vs_torchvision.py --models convnext_tiny vit_b_16 --batch 8
    python benchmarks/vs_torchvision.py --device cuda --amp --channels-last
    python benchmarks/vs_torchvision.py --models efficientnet_b0 --self-check   # the noise floor

``--self-check`` times torchvision's model against a copy of itself in the
archdsl column: the spread of those ratios around 1.000 is what the machine's
noise alone does to a paired ratio.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torchvision

import archdsl


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_step(model, x, backward: bool, device: str, amp: bool) -> float:
    start = time.perf_counter()
    with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=amp):
        out = model(x)
        if isinstance(out, tuple):
            out = out[0]
    if backward:
        out.float().sum().backward()
    _sync(device)
    return time.perf_counter() - start


def bench(name: str, args) -> tuple[float, float, float, float]:
    kwargs = {}
    if name in ("googlenet", "inception_v3"):  # inference shape: no auxiliary heads
        kwargs["aux_logits"] = False
        oracle = torchvision.models.get_model(name, init_weights=True, aux_logits=False)
    elif name.startswith("vit"):  # the position embedding fixes the input size
        kwargs["image_size"] = args.size
        oracle = torchvision.models.get_model(name, image_size=args.size)
    else:
        oracle = torchvision.models.get_model(name)
    if args.self_check:  # A/A: the same network twice
        ours = copy.deepcopy(oracle)
    else:
        ours = archdsl.build(name, weights=oracle.state_dict(), **kwargs)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    models = {"archdsl": ours.to(args.device, memory_format=fmt),
              "torchvision": oracle.to(args.device, memory_format=fmt)}
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device).contiguous(memory_format=fmt)
    results = {}
    for backward in (False, True):
        for m in models.values():
            m.train(backward)
        times = {k: [] for k in models}
        ctx = torch.enable_grad() if backward else torch.no_grad()
        with ctx:
            for _ in range(args.warmup):
                for m in models.values():
                    time_step(m, x, backward, args.device, args.amp)
            for i in range(args.iters):
                order = list(models.items()) if i % 2 == 0 else list(models.items())[::-1]
                for key, m in order:
                    if backward:
                        m.zero_grad(set_to_none=True)
                    times[key].append(time_step(m, x, backward, args.device, args.amp))
        results[backward] = {k: statistics.median(v) for k, v in times.items()}
        # each iteration runs both back to back: the median of the paired ratios cancels drift
        results[backward]["ratio"] = statistics.median(
            a / t for a, t in zip(times["archdsl"], times["torchvision"]))
    fwd, fb = results[False], results[True]
    return fwd["archdsl"], fwd["torchvision"], fwd["ratio"], fb["archdsl"], fb["torchvision"], fb["ratio"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet50", "googlenet"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--self-check", action="store_true",
                        help="time torchvision against a copy of itself (the archdsl column): the noise floor")
    args = parser.parse_args()
    print(f"device={args.device} batch={args.batch} size={args.size} iters={args.iters} "
          f"amp={args.amp} channels_last={args.channels_last} torch={torch.__version__}"
          + ("  self-check: the archdsl column is a copy of torchvision's model" if args.self_check else ""))
    print(f"{'model':<16} {'fwd archdsl':>12} {'fwd tv':>10} {'ratio':>7} {'f+b archdsl':>12} {'f+b tv':>10} {'ratio':>7}")
    for name in args.models:
        fa, ft, fr, ba, bt, br = bench(name, args)
        print(f"{name:<16} {fa * 1e3:>10.1f}ms {ft * 1e3:>8.1f}ms {fr:>7.3f} "
              f"{ba * 1e3:>10.1f}ms {bt * 1e3:>8.1f}ms {br:>7.3f}")


if __name__ == "__main__":
    main()
