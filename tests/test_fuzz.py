"""A bounded fuzzing run (about a minute): hostile and broken specs never crash, hang or blow up.

``benchmarks/fuzz.py`` is the generator and runner; run it for longer with
``python benchmarks/fuzz.py --cases 10000``.
"""

from __future__ import annotations

import sys

from conftest import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import fuzz  # noqa: E402


def test_cases_are_deterministic_and_varied():
    assert fuzz.make_case(7) == fuzz.make_case(7)
    cases = {fuzz.make_case(n) for n in range(40)}
    assert len(cases) >= 35  # two mutations may happen to agree
    assert any(text.startswith("arch fuzz") for text in cases)  # grammar-shaped ones
    assert any("block" in text and not text.startswith("arch fuzz") for text in cases)  # mutated zoo


def test_the_runner_classifies_outcomes():
    assert fuzz.isolated(fuzz.compile_text, "arch t\ninput 3 x 8 x 8\nnetwork:\n    relu\n")["status"] == "ok"
    assert fuzz.isolated(fuzz.compile_text, "network:\n  rleu\n")["status"] == "error"
    assert fuzz.isolated(_crash)["status"] == "crash"
    assert fuzz.isolated(_hang, timeout=2)["status"] == "hang"
    assert fuzz.isolated(_hog, memory=256 << 20)["status"] == "blowup"


def _crash():
    raise KeyError("a bug")


def _hang():
    while True:
        pass


def _hog():
    return len(bytearray(1 << 30))


def test_a_minute_of_fuzzing_finds_no_crash_hang_or_blowup():
    summary = fuzz.fuzz(cases=1000, seed=20_000, timeout=20, budget_s=60)
    assert summary["cases"] >= 10, summary
    assert summary["counts"]["ok"] + summary["counts"]["error"] == summary["cases"], summary["failures"][:3]
