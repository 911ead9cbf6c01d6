"""A snappy command line: no torch for --help/list/check/summary, no elaboration for list."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

# Runs one command in a fresh interpreter, then names the heavy modules it imported.
_PROBE = ("import sys, contextlib, io\n"
          "from archdsl.cli import main\n"
          "with contextlib.redirect_stdout(io.StringIO()):\n"
          "    try:\n"
          "        code = main({argv!r})\n"
          "    except SystemExit as exit_:\n"
          "        code = exit_.code\n"
          "print(code, sorted(m for m in ('torch', 'torchvision') if m in sys.modules))\n")


def _probe(argv: list, prelude: str = "") -> str:
    proc = subprocess.run([sys.executable, "-c", prelude + _PROBE.format(argv=argv)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["check", "resnet50"], ["summary", "efficientnet_b0"]])
def test_inspection_commands_import_no_torch(argv):
    assert _probe(argv) in ("0 []", "None []")


def test_list_elaborates_nothing():
    """With the index current, list runs with elaboration and spec parsing made to fail."""
    prelude = ("import archdsl.frontend.elaborate as e, archdsl.frontend.parser as p\n"
               "def refuse(*a, **k): raise AssertionError('elaborated or parsed')\n"
               "e.elaborate = e.Elaborator = p.parse = p.parse_file = refuse\n")
    assert _probe(["list"], prelude) == "0 []"


def test_zoo_index_equals_live_elaboration():
    """specs/index.json is what ``archdsl list --write-index`` writes from these specs."""
    from archdsl.api import zoo_index
    from archdsl.frontend.index import INDEX, read_index
    assert read_index() is not None, "specs/index.json is stale: run archdsl list --write-index"
    assert json.loads(INDEX.read_text()) == json.loads(json.dumps(zoo_index()))


def test_a_stale_index_is_ignored(tmp_path, monkeypatch):
    from archdsl.frontend import index
    stale = tmp_path / "index.json"
    data = json.loads(index.INDEX.read_text())
    data["digests"]["resnet.arch"] = "0" * 64
    stale.write_text(json.dumps(data))
    monkeypatch.setattr(index, "INDEX", stale)
    assert index.read_index.__wrapped__() is None
