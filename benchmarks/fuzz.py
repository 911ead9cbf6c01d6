"""Fuzz the compiler with hostile and broken specs: nothing may crash, hang or blow up.

Cases are bundled specs with random mutations (lines deleted, duplicated or
swapped, numbers replaced by extreme values, names by reserved words, stray
characters and bytes, truncation) and random specs shaped by the grammar
(parameters, recursive functions, blocks, repeats, loops, joins, deep
expressions). Each case runs in its own child process under a time limit and
a memory limit and goes through load (parse, imports, elaboration), the
`check` steps and compile on the meta device (the size check first, as
`archdsl compile` does). The outcome of a case is one of

- ``ok`` / ``error``: compiled, or refused with an archdsl error (both fine);
- ``crash``: any other exception (a bug);
- ``hang``: still running at the time limit;
- ``blowup``: a ``MemoryError`` or killed past the memory limit.

Run ``python benchmarks/fuzz.py --cases 10000`` (add ``--seed``); it prints a
summary and exits 1 if any case crashed, hung or blew up, writing those cases
to ``--out``. ``tests/test_fuzz.py`` runs a bounded number of cases.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import resource
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
if str(ROOT) not in sys.path:  # run as a script: import this checkout's archdsl
    sys.path.insert(0, str(ROOT))

EXTREME_NUMBERS = ["0", "-1", "1", "2", "7", "10**9", "2**63", "2**64 - 1", "10**400", "1e308", "1e-308",
                   "0.5", "-0.0", "3.7", "99999999999999999999", "2**1023", "(10**100)**10", "1/3"]
STRAY = ["(", ")", "[", "]", ":", ",", "=", "\t", "    ", "\n", "\\\n", "\x00", "\u2028", "\ufeff",
         "\x0c", "{", "}", "#", "\"", "'", "->", ";", "**", "..", "é", "\U0001f600", "\r"]
RESERVED = ["class", "None", "elif", "lambda", "self", "eval", "forward", "training", "to",
            "_modules", "__class__", "graph", "code", "in", "repeat", "for", "network", "block",
            "input", "branch", "seq", "add", "concat", "aux", "let", "fn", "true", "none"]
OPS = ["conv(8, 3, padding = 1)", "conv(c, 1)", "batchnorm", "relu", "maxpool(2)", "avgpool(3, 1, 1)",
       "adaptive_avgpool(1)", "flatten", "linear(10)", "dropout(0.5)", "identity", "silu",
       "conv(4, 3, stride = 2, groups = 2)", "channel_shuffle(2)", "sigmoid", "adaptive_maxpool(1)"]


# ---- generating cases --------------------------------------------------------------------------

def mutate(text: str, rng: random.Random) -> str:
    """``text`` with one to three random mutations."""
    for _ in range(rng.randint(1, 3)):
        lines = text.split("\n")
        kind = rng.randrange(9)
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[j])
        elif kind == 2:
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == 3:
            lines[i] = _replace_token(lines[i], r"\d+(\.\d*)?", rng.choice(EXTREME_NUMBERS), rng)
        elif kind == 4:
            lines[i] = _replace_token(lines[i], r"[A-Za-z_]\w*", rng.choice(RESERVED), rng)
        elif kind == 5:
            pos = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:pos] + rng.choice(STRAY) + lines[i][pos:]
        elif kind == 6:
            lines[i] = " " * rng.choice([1, 2, 3, 5, 8]) + lines[i]
        elif kind == 7:
            lines = lines[:i]
        else:
            lines.insert(i, " " * (len(lines[i]) - len(lines[i].lstrip())) + rng.choice(OPS))
        text = "\n".join(lines)
    return text


def _replace_token(line: str, pattern: str, new: str, rng: random.Random) -> str:
    import re

    spots = list(re.finditer(pattern, line))
    if not spots:
        return line
    m = rng.choice(spots)
    return line[:m.start()] + new + line[m.end():]


def random_expr(rng: random.Random, depth: int, names: list) -> str:
    """A random expression over ``names``, numbers, lists and builtins."""
    if depth <= 0 or rng.random() < 0.25:
        return rng.choice(names + EXTREME_NUMBERS[:8] + ['"x"', "true", "none", "[1, 2, 3]", "in.channels"])
    form = rng.randrange(8)
    sub = lambda: random_expr(rng, depth - 1, names)  # noqa: E731
    if form == 0:
        return f"({sub()} {rng.choice(['+', '-', '*', '/', '//', '%', '**'])} {sub()})"
    if form == 1:
        return f"{rng.choice(['int', 'len', 'sum', 'max', 'range', 'str', 'list', 'sorted', 'abs'])}({sub()})"
    if form == 2:
        return f"[{', '.join(sub() for _ in range(rng.randint(0, 3)))}]"
    if form == 3:
        return f"({sub()} if {sub()} else {sub()})"
    if form == 4:
        return f"{sub()}[{sub()}]"
    if form == 5:
        return f"{sub()}[{sub()}:{sub()}]"
    if form == 6:
        return f"({sub()} {rng.choice(['<', '==', 'in', 'and', 'or'])} {sub()})"
    return f"f({sub()})"


def random_spec(rng: random.Random) -> str:
    """A random spec following the grammar's shape (often meaningless, sometimes hostile)."""
    names = ["a", "b", "c"]
    lines = ["arch fuzz", f"input {rng.choice(['3', '1', 'a'])} x {rng.choice(['8', '16', '32', 'b'])} x 16"]
    for name in names:
        lines.append(f"param {name} = {random_expr(rng, 3, ['1', '2', '4'])}")
    recursive = rng.random() < 0.5
    lines.append(f"fn f(n) = {random_expr(rng, 3, ['n'])}" if not recursive else
                 f"fn f(n) = n if n < {rng.randint(-2, 3)} else f(n - 1) + f(n - {rng.randint(0, 2)})")
    if rng.random() < 0.3:
        lines.append(f"import \"{rng.choice(['layers.arch', '../x.arch', '/etc/hosts', 'nope.arch'])}\"")
    lines.append("block unit(c):")
    lines += [f"    {rng.choice(OPS)}" for _ in range(rng.randint(1, 3))]
    lines.append("network:")
    lines += _random_items(rng, 1, 3, names)
    return "\n".join(lines) + "\n"


def _random_items(rng: random.Random, indent: int, depth: int, names: list) -> list:
    pad = "    " * indent
    out = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8) if depth > 0 else 0
        if kind <= 2:
            label = f"{rng.choice(RESERVED + ['x', 'y', 'z'])}: " if rng.random() < 0.2 else ""
            out.append(pad + label + rng.choice(OPS + ["unit(c)", "unit(a)"]))
        elif kind == 3:
            out.append(f"{pad}repeat {random_expr(rng, 2, names)}:")
            out += _random_items(rng, indent + 1, depth - 1, names)
        elif kind == 4:
            out.append(f"{pad}for i in {random_expr(rng, 2, names + ['range(3)'])}:")
            out += _random_items(rng, indent + 1, depth - 1, names + ["i"])
        elif kind == 5:
            out.append(f"{pad}{rng.choice(['add', 'concat', 'mul'])}:")
            out += _random_items(rng, indent + 1, depth - 1, names)
        elif kind == 6:
            out.append(f"{pad}if {random_expr(rng, 2, names)}:")
            out += _random_items(rng, indent + 1, depth - 1, names)
        else:
            out.append(f"{pad}let {rng.choice(names)} = {random_expr(rng, 4, names + ['f(3)'])}")
    return out


def make_case(seed: int) -> str:
    """Case number ``seed``: a mutated bundled spec (two in three) or a random one."""
    rng = random.Random(seed)
    if rng.random() < 2 / 3:
        spec = rng.choice(sorted(SPECS.glob("*.arch")))
        return mutate(spec.read_text(), rng)
    return random_spec(rng)


# ---- running cases in child processes -----------------------------------------------------------

def _limit_memory(extra_bytes: int) -> None:
    """Let this process grow by at most ``extra_bytes`` of address space."""
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + extra_bytes, resource.RLIM_INFINITY))


def _peak_growth(start_kb: int) -> int:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return max(0, peak - start_kb) * 1024


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def compile_text(text: str) -> str:
    """Load, check and compile ``text`` on the meta device; returns a one-line summary."""
    import torch

    import archdsl
    from archdsl.api import check_allocatable

    arch = archdsl.loads(text, path="fuzz.arch")
    check_allocatable(arch)
    with torch.device("meta"):
        arch.to_torch()
    return f"{arch.name}: {arch.parameter_count():,} parameters"


def cli(*runs: list) -> list:
    """Run ``archdsl ARGV`` for each ARGV in ``runs``, in this process; returns one
    ``(exit status, CPU seconds, first line of stderr)`` per run."""
    import contextlib
    import io

    from archdsl.cli.main import main as archdsl_main

    results = []
    for argv in runs:
        out, err = io.StringIO(), io.StringIO()
        t0 = time.process_time()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = archdsl_main(argv)
        results.append((rc, time.process_time() - t0, err.getvalue().partition("\n")[0]))
    return results


def _child(conn, func, args, memory: int) -> None:
    start = _rss_kb()
    try:
        _limit_memory(memory)
    except (OSError, ValueError, StopIteration):
        pass
    t0 = time.process_time()
    try:
        from archdsl.errors import ArchError
        try:
            result = ("ok", func(*args))
        except ArchError as err:
            result = ("error", f"{type(err).__name__}: {err.format()}")
    except MemoryError:
        result = ("blowup", "MemoryError")
    except BaseException:  # noqa: BLE001 - anything else is a bug to report
        result = ("crash", traceback.format_exc())
    conn.send((*result, time.process_time() - t0, _peak_growth(start)))
    conn.close()


_CONTEXT = None


def context():
    """A forkserver whose server process has imported archdsl and torch (and run nothing)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = mp.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["benchmarks.fuzz_preload", "benchmarks.fuzz"])
    return _CONTEXT


def isolated(func, *args, timeout: float = 20.0, memory: int = 1 << 30) -> dict:
    """Run ``func(*args)`` in a child process limited to ``timeout`` seconds and ``memory`` bytes of
    growth; returns ``{"status", "detail", "seconds", "peak_bytes"}`` (``seconds``: the CPU time
    ``func`` took, which on a shared machine is steadier than the wall time)."""
    ctx = context()
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, func, args, memory), daemon=True)
    t0 = time.perf_counter()
    proc.start()
    send.close()
    if receive.poll(timeout):
        try:
            status, detail, seconds, peak = receive.recv()
        except EOFError:
            status, detail, seconds, peak = "blowup", "child died", time.perf_counter() - t0, 0
    else:
        status, detail, seconds, peak = "hang", f"still running after {timeout} s", timeout, 0
    proc.kill() if status == "hang" else None
    proc.join(5)
    if status != "hang" and proc.exitcode not in (0, None):
        status, detail = "blowup", f"child exited with {proc.exitcode}: {detail}"
    receive.close()
    return {"status": status, "detail": detail, "seconds": seconds, "peak_bytes": peak}


def fuzz(cases: int, seed: int = 0, timeout: float = 20.0, memory: int = 1 << 30,
         budget_s: float | None = None, progress=None) -> dict:
    """Run up to ``cases`` cases (stopping after ``budget_s`` seconds); returns the summary."""
    counts = {"ok": 0, "error": 0, "crash": 0, "hang": 0, "blowup": 0}
    bad, slowest_error, peak = [], (0.0, None), 0
    t0 = time.perf_counter()
    run = 0
    for number in range(seed, seed + cases):
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            break
        text = make_case(number)
        result = isolated(compile_text, text, timeout=timeout, memory=memory)
        run += 1
        counts[result["status"]] += 1
        peak = max(peak, result["peak_bytes"])
        if result["status"] == "error" and result["seconds"] > slowest_error[0]:
            slowest_error = (result["seconds"], number)
        if result["status"] in ("crash", "hang", "blowup"):
            bad.append({"case": number, **result, "text": text})
        if progress and run % 100 == 0:
            progress(run, counts, time.perf_counter() - t0)
    return {"cases": run, "seconds": round(time.perf_counter() - t0, 1), "counts": counts,
            "slowest_error_s": round(slowest_error[0], 3), "slowest_error_case": slowest_error[1],
            "peak_growth_mb": round(peak / 2**20, 1), "failures": bad}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0, help="first case number")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case before a hang")
    parser.add_argument("--memory-mb", type=int, default=1024, help="memory growth per case")
    parser.add_argument("--out", default="fuzz-failures.json", help="where failing cases are written")
    args = parser.parse_args(argv)

    def progress(run, counts, seconds):
        print(f"{run:>6} cases  {seconds:7.0f} s  {counts}", file=sys.stderr, flush=True)

    summary = fuzz(args.cases, args.seed, args.timeout, args.memory_mb << 20, progress=progress)
    failures = summary.pop("failures")
    print(json.dumps(summary, indent=2))
    if failures:
        Path(args.out).write_text(json.dumps(failures, indent=2))
        print(f"{len(failures)} failing cases written to {args.out}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    from benchmarks import fuzz as _module  # children find the functions by this module's name

    sys.exit(_module.main())
