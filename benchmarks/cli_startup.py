"""Wall and CPU time of the inspection commands, one fresh process per run, for every bundled name.

    python -m benchmarks.cli_startup                      # check and summary of every bundled name
    python -m benchmarks.cli_startup --commands check --names 'resnet*' --repeat 5

Each command runs ``--repeat`` times as ``python -m archdsl …`` from this
checkout; the best wall time and the best CPU time (user + system of the
child) are kept. Prints the slowest rows, then the median and the maximum per
command, and the bare interpreter's start-up for scale. ``--help`` and
``list`` are timed once each too. Python's bytecode cache is allowed
(``PYTHONDONTWRITEBYTECODE`` is removed), as on an installed package.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str], repeat: int, env: dict) -> tuple[float, float]:
    """Best (wall, cpu) seconds of ``repeat`` runs of ``argv``; raises if a run fails."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.decode()[-500:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    return best_wall, best_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", nargs="+", default=["check", "summary"], help="default: check summary")
    parser.add_argument("--names", default="*", help="shell-style pattern over bundled names (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; the best is kept (default 3)")
    parser.add_argument("--show", type=int, default=10, help="slowest rows to print (default 10)")
    args = parser.parse_args(argv)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    archdsl = [sys.executable, "-m", "archdsl"]
    names = subprocess.run(archdsl + ["list", "--names"], cwd=ROOT, env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    names = [n for n in names if fnmatch.fnmatchcase(n, args.names)]
    bare = timed([sys.executable, "-c", "pass"], args.repeat, env)
    print(f"python -c pass: wall {bare[0]:.3f} s, cpu {bare[1]:.3f} s")
    for extra in (["--help"], ["list"]):
        wall, cpu = timed(archdsl + extra, args.repeat, env)
        print(f"archdsl {' '.join(extra)}: wall {wall:.3f} s, cpu {cpu:.3f} s")
    rows = []
    for name in names:
        for command in args.commands:
            wall, cpu = timed(archdsl + [command, name], args.repeat, env)
            rows.append((wall, cpu, command, name))
    rows.sort(reverse=True)
    print(f"\n{'command':<9} {'name':<28} {'wall s':>7} {'cpu s':>7}")
    for wall, cpu, command, name in rows[:args.show]:
        print(f"{command:<9} {name:<28} {wall:7.3f} {cpu:7.3f}")
    print()
    for command in args.commands:
        walls = [r[0] for r in rows if r[2] == command]
        cpus = [r[1] for r in rows if r[2] == command]
        print(f"{command}: {len(walls)} names, wall median {statistics.median(walls):.3f} s, max {max(walls):.3f} s; "
              f"cpu median {statistics.median(cpus):.3f} s, max {max(cpus):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
