"""A snappy command line: no torch or networkx for --help/list/check/summary, no elaboration for list."""

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
          "print(code, sorted(m for m in ('torch', 'torchvision', 'networkx') if m in sys.modules))\n")


def _probe(argv: list, prelude: str = "") -> str:
    proc = subprocess.run([sys.executable, "-c", prelude + _PROBE.format(argv=argv)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["check", "resnet50"], ["summary", "efficientnet_b0"],
                                  ["check", "yolov8n"], ["summary", "hrnet_w18", "--depth", "2"]])
def test_inspection_commands_import_no_torch(argv):
    """networkx too: its package import (~0.2 s) loads every algorithm; the IR converts on demand."""
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


def test_shipped_grammar_tables_are_current_and_used():
    """grammar_tables.json is stamped with this grammar and lark, loads, and parses as the built tables do.

    (LALR state numbers differ between builds, so the files are compared by what they parse.)
    """
    from archdsl.frontend import grammar
    text = grammar.GRAMMAR.read_text(encoding="utf-8")
    saved = json.loads(grammar.TABLES.read_text(encoding="utf-8"))
    assert saved["stamp"] == grammar._stamp(text), "grammar_tables.json is stale: run python -m archdsl.frontend.grammar"
    loaded, built = grammar._parser(), grammar._build(text)
    assert loaded.source_path == "<deserialized>"  # lark's mark for loaded tables
    for spec in sorted((ROOT / "specs").glob("*.arch")) + sorted((ROOT / "examples").glob("*.arch")):
        source = spec.read_text(encoding="utf-8")
        assert loaded.parse(source, start="start") == built.parse(source, start="start"), spec.name
    for expr in ["a if b else c ** -2", "[1, 2, x][1:]", "round(x / 8) * 8", "not a and b or c < d"]:
        assert loaded.parse(expr, start="expr") == built.parse(expr, start="expr")


def test_stale_grammar_tables_are_rebuilt_not_trusted(tmp_path, monkeypatch):
    from archdsl.frontend import grammar
    stale = json.loads(grammar.TABLES.read_text(encoding="utf-8"))
    stale["stamp"]["grammar_sha256"] = "0" * 64
    (tmp_path / "t.json").write_text(json.dumps(stale))
    monkeypatch.setattr(grammar, "TABLES", tmp_path / "t.json")
    parser = grammar._parser.__wrapped__()
    assert parser.source_path != "<deserialized>"
    source = (ROOT / "specs" / "resnet.arch").read_text(encoding="utf-8")
    assert parser.parse(source, start="start") == grammar._parser().parse(source, start="start")


def test_a_spec_file_is_parsed_once_per_content(tmp_path):
    from archdsl.frontend.parser import parse_file
    spec = tmp_path / "a.arch"
    spec.write_text("arch a\ninput 3 x 8 x 8\nnetwork:\n    relu\n")
    first = parse_file(spec)
    assert parse_file(spec) is first  # check resolves then elaborates: one parse
    spec.write_text("arch a\ninput 3 x 8 x 8\nnetwork:\n    sigmoid\n")
    assert parse_file(spec) is not first  # keyed by content: an edit is never stale


def _outcome(parser, text: str, start: str = "start"):
    """The tree, or the error's kind, position and expected terminals."""
    import lark
    try:
        return parser.parse(text, start=start)
    except lark.exceptions.UnexpectedInput as e:
        return type(e).__name__, e.line, e.column, sorted(getattr(e, "expected", None) or getattr(e, "allowed", ()))
    except lark.exceptions.LarkError as e:  # the indenter's DedentError
        return type(e).__name__, str(e)


def test_ordered_scanner_lexes_as_lark_does():
    """The per-terminal scanner (archdsl/frontend/lexing.py) equals lark's regex-union scanner:
    same trees for every spec, same error kind, position and expected set for broken ones."""
    import random

    import lark

    from archdsl.frontend import grammar
    text = grammar.GRAMMAR.read_text(encoding="utf-8")
    ours = grammar._parser()
    theirs = lark.Lark(text, postlex=grammar.ArchIndenter(), **grammar._OPTIONS)
    assert type(ours.parser.lexer.lexer).__name__ == "OrderedContextualLexer"
    assert type(theirs.parser.lexer.lexer) is lark.lexer.ContextualLexer
    sources = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "specs").glob("*.arch"))]
    tricky = ["arch a\ninput 3x224x224\nnetwork:\n    conv(64, 3) -> x: relu\n",
              "arch in_x\ninput 3 x 8 x 8\nlet x = 1 if in else 2\nnetwork:\n    relu\n",
              "arch a\ninput 3x8x8\nnetwork:\n    conv(8, 3)  @@\n", "arch a\ninput 3x8x8\nnetwork:\n    \"unterminated\n"]
    rng = random.Random(16)
    broken = []
    for source in sources[:12]:  # deterministic mutations: delete, duplicate or insert one character
        for _ in range(25):
            i = rng.randrange(len(source))
            op = rng.choice(["del", "dup", "ins"])
            ch = rng.choice("x:@(){}[].,-=>\n #\"'1a")
            broken.append(source[:i] + source[i + 1:] if op == "del" else
                          source[:i] + source[i] + source[i:] if op == "dup" else source[:i] + ch + source[i:])
    for source in sources + tricky + broken:
        assert _outcome(ours, source) == _outcome(theirs, source), source
    for expr in ["a if b else c ** -2", "[1, 2, x][1:]", "x not in (1, 2)", "@t.x[0] + in.c", "1.5e3 // .5"]:
        assert _outcome(ours, expr, "expr") == _outcome(theirs, expr, "expr"), expr
