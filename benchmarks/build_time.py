"""Time of building networks on the meta device: ``archdsl.build`` from an elaborated Architecture.

For each network: the best of ``--repeat`` builds (seconds) of the whole module
tree on the meta device (no tensor storage, so the figure is the front end and
code generation alone), the number of ``GraphModule`` scopes and of distinct
generated ``forward`` functions among them, and the growth of torch.fx's
generated-source cache (one entry per ``exec`` of generated code). The deep
synthetic spec is ``repeat 500:`` of a residual block (conv, BatchNorm, ReLU,
conv, BatchNorm, add, ReLU).

Run from the repository root::

    python -m benchmarks.build_time                # the default list
    python -m benchmarks.build_time resnet50 --repeat 3
    python -m benchmarks.build_time --unshared    # also without code sharing, interleaved

``--unshared`` times each build a second way in the same process, with code
sharing turned off (every graph's key unshareable, so each ``GraphModule``
generates and compiles its own code, as before sharing existed); the builds
alternate so load on the machine affects both alike.
"""

from __future__ import annotations

import argparse
import gc
import time

import torch
from torch import fx
from torch.fx import graph_module as fx_graph_module

import archdsl
from archdsl.backends import fx_share

DEFAULT = ["resnet50", "densenet201", "efficientnet_b7", "regnet_y_128gf", "deep_residual_500"]

DEEP_RESIDUAL = """
arch deep_residual
input 16 x 8 x 8

block residual():
    add:
        branch:
            conv1: conv(16, 3, padding = 1, bias = false);  bn1: batchnorm;  relu
            conv2: conv(16, 3, padding = 1, bias = false);  bn2: batchnorm
        identity
    relu

network:
    blocks: repeat {depth}:
        residual()
    pool: adaptive_avgpool(1)
    flatten
    fc: linear(10)
"""


def architecture(name: str):
    """The elaborated Architecture for a bundled name or ``deep_residual_<depth>``."""
    if name.startswith("deep_residual_"):
        depth = int(name.rpartition("_")[2])
        return archdsl.loads(DEEP_RESIDUAL.format(depth=depth), path=f"<{name}>")
    return archdsl.load(name)


def build_once(arch, shared: bool) -> tuple[float, torch.nn.Module, int]:
    """Seconds of one meta-device build, the module, and how many generated sources torch.fx exec'd."""
    cache = getattr(getattr(fx_graph_module, "_loader", None), "eval_cache", {})
    key = fx_share.graph_key
    if not shared:
        fx_share.graph_key = lambda graph: None
    try:
        gc.collect()
        before = len(cache)
        with torch.device("meta"):
            start = time.perf_counter()
            module = archdsl.build(arch)
            seconds = time.perf_counter() - start
    finally:
        fx_share.graph_key = key
    return seconds, module, len(cache) - before


def measure(name: str, repeat: int, unshared: bool) -> dict:
    """Best build time (s) over ``repeat`` meta-device builds, and code-sharing counts of the last one."""
    arch = architecture(name)
    times, plain = [], []
    for _ in range(repeat):
        seconds, module, execs = build_once(arch, shared=True)
        times.append(seconds)
        if unshared:
            plain.append(build_once(arch, shared=False)[0])
    graphs = [m for m in module.modules() if isinstance(m, fx.GraphModule)]
    forwards = {id(type(m).forward) for m in graphs}
    return {"name": name, "best_s": min(times), "unshared_s": min(plain, default=float("nan")),
            "ops": arch.graph.number_of_nodes(), "graph_modules": len(graphs),
            "distinct_forwards": len(forwards), "execs": execs}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=DEFAULT)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--unshared", action="store_true", help="also time builds without code sharing")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}; best of {args.repeat} meta-device builds")
    print(f"{'network':<20} {'IR nodes':>8} {'build s':>8} {'unshared s':>10} {'GraphModules':>12} "
          f"{'forwards':>8} {'execs':>6}")
    for name in args.names:
        r = measure(name, args.repeat, args.unshared)
        print(f"{r['name']:<20} {r['ops']:>8} {r['best_s']:>8.3f} {r['unshared_s']:>10.3f} "
              f"{r['graph_modules']:>12} {r['distinct_forwards']:>8} {r['execs']:>6}")


if __name__ == "__main__":
    main()
