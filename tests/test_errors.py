"""Every kind of spec mistake is reported at its file, line and column, with what was expected."""

from __future__ import annotations

import subprocess
import sys

import pytest

import archdsl
from archdsl.cli import main
from archdsl.errors import ShapeError, SpecError, SpecNotFoundError, SpecSyntaxError

HEADER = "arch t\ninput 3 x 32 x 32\n"

# (case, spec body after the header, error class, line, column, words the message contains)
CASES = [
    ("syntax", "network:\n    conv(8, 3 padding = 1)\n", SpecSyntaxError, 4, 15, ["unexpected name 'padding'"]),
    ("unclosed", "network:\n    conv(8, 3\n", SpecSyntaxError, 4, 14, ["unexpected end of file"]),
    ("indentation", "network:\n    conv(8, 3)\n      relu\n", SpecSyntaxError, 5, 7, ["unexpected indentation"]),
    ("unknown op", "network:\n    conv(8, 3)\n    rleu\n", SpecError, 5, 5, ["unknown op or block 'rleu'"]),
    ("unknown argument", "network:\n    conv(8, 3, strid = 2)\n", SpecError, 4, 16, ["no argument 'strid'"]),
    ("wrong type", "network:\n    conv(8, 3, bias = \"no\")\n", SpecError, 4, 23, ["bias must be true or false"]),
    ("undefined name", "param width = 2\nnetwork:\n    conv(8 * widht, 3)\n", SpecError, 5, 14,
     ["undefined name 'widht'"]),
    ("wrong arity", "block b(c, k):\n    conv(c, k)\nnetwork:\n    b(8, 3, 1)\n", SpecError, 6, 5,
     ["takes 2 positional arguments but 3 were given"]),
    ("missing argument", "block b(c, k):\n    conv(c, k)\nnetwork:\n    b(8)\n", SpecError, 6, 5,
     ["missing the argument 'k'"]),
    ("add mismatch", "network:\n    conv(16, 3, padding = 1)\n    add:\n        conv(32, 3, padding = 1)\n"
     "        identity\n", ShapeError, 5, 5, ["cannot add tensors of shape 32x32x32 and 16x32x32"]),
    ("concat mismatch", "network:\n    concat:\n        conv(8, 3, padding = 1)\n"
     "        conv(8, 3, stride = 2, padding = 1)\n", ShapeError, 4, 5, ["cannot concatenate", "8x16x16"]),
    ("kernel too large", "network:\n    conv(8, 3, stride = 4)\n    conv(8, 3, stride = 4)\n    conv(8, 5)\n",
     ShapeError, 6, 5, ["kernel 5", "larger than its padded input 2"]),
    ("zero channels", "param width = 0.1\nnetwork:\n    conv(int(8 * width), 3)\n", SpecError, 5, 10,
     ["out must be a positive integer, got 0"]),
    ("negative channels", "network:\n    conv(-8, 3)\n", SpecError, 4, 10, ["out must be a positive integer, got -8"]),
    ("division by zero", "param groups = 0\nnetwork:\n    conv(64 // groups, 3)\n", SpecError, 5, 10,
     ["division by zero"]),
    ("repeat count", "param depth = 1.3\nnetwork:\n    repeat 2 * depth:\n        relu\n", SpecError, 5, 12,
     ["repeat count must be a non-negative integer, got 2.6"]),
    ("negative repeat", "network:\n    repeat -1:\n        relu\n", SpecError, 4, 12,
     ["repeat count must be a non-negative integer, got -1"]),
    ("missing import", "import \"nowhere/common.arch\"\nnetwork:\n    relu\n", SpecError, 3, 8,
     ["cannot import 'nowhere/common.arch'"]),
    ("recursion", "block a(c):\n    b(c)\nblock b(c):\n    a(c)\nnetwork:\n    a(8)\n", SpecError, 6, 5,
     ["block 'a' calls itself (a → b → a)"]),
    ("linear on a map", "network:\n    linear(10)\n", ShapeError, 4, 5, ["linear needs a flat vector"]),
    ("bad groups", "network:\n    conv(8, 3, groups = 2)\n", ShapeError, 4, 5, ["groups=2 must divide"]),
    ("duplicate name", "network:\n    c: conv(8, 3)\n    c: conv(8, 3)\n", SpecError, 5, 5, ["'c' is already used"]),
    ("not callable", "network:\n    conv(len(3), 3)\n", SpecError, 4, 10, ["len()"]),
    ("index out of range", "network:\n    conv([1, 2][5], 3)\n", SpecError, 4, 17, ["index 5 is out of range"]),
]


@pytest.mark.parametrize("case, body, cls, line, column, words", CASES, ids=[c[0] for c in CASES])
def test_error_is_located_and_explained(write_spec, case, body, cls, line, column, words):
    path = write_spec(HEADER + body)
    with pytest.raises(cls) as info:
        archdsl.load(path)
    err = info.value
    assert (err.line, err.column) == (line, column), err.format()
    for word in words:
        assert word in err.message, err.format()
    text = err.format()
    assert text.startswith(f"{path}:{line}:{column}: ")
    source_line = (HEADER + body).splitlines()[line - 1]
    assert source_line.expandtabs(1) in text
    caret_line = text.splitlines()[2]
    assert caret_line.index("^") - caret_line.index("|") - 2 == column - 1


def test_expected_is_reported(write_spec):
    path = write_spec(HEADER + "network:\n    conv(8, 3, strid = 2)\n")
    with pytest.raises(SpecError) as info:
        archdsl.load(path)
    assert "expected: conv(out, kernel" in info.value.format()


def test_shape_error_names_each_branch(write_spec):
    path = write_spec(HEADER + "network:\n    conv(16, 3, padding = 1)\n    add:\n"
                      "        conv(32, 3, padding = 1)\n        identity\n")
    with pytest.raises(ShapeError) as info:
        archdsl.load(path)
    text = info.value.format()
    assert "branch 1 (line 6) gives 32x32x32" in text
    assert "branch 2 (line 7) passes its input through: 16x32x32" in text


def test_unknown_parameter_names_the_declared_ones():
    with pytest.raises(SpecError) as info:
        archdsl.load("resnet50", widht=2.0)
    assert "no parameter 'widht'" in info.value.message
    assert "width" in info.value.format()


def test_unknown_variant_and_model():
    with pytest.raises(SpecError, match="no variant 'resnet51'"):
        archdsl.load("specs/resnet.arch", variant="resnet51")
    with pytest.raises(SpecNotFoundError, match="resnet50"):
        archdsl.load("resnet5O")


def test_cli_exits_1_without_traceback(write_spec, capsys):
    path = write_spec(HEADER + "network:\n    rleu\n")
    assert main(["compile", path]) == 1
    err = capsys.readouterr().err
    assert f"{path}:4:5: error: unknown op or block 'rleu'" in err
    assert "Traceback" not in err and "hint: did you mean 'relu'" in err


def test_cli_debug_shows_traceback(write_spec):
    path = write_spec(HEADER + "network:\n    rleu\n")
    proc = subprocess.run([sys.executable, "-m", "archdsl", "--debug", "check", path],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr


def test_cli_bad_set_value_is_an_error(capsys):
    assert main(["check", "resnet18", "--set", "layers=[2, 2"]) == 1
    assert "--set layers" in capsys.readouterr().err


def test_cli_usage_error_exits_2():
    with pytest.raises(SystemExit) as info:
        main(["compile"])
    assert info.value.code == 2
