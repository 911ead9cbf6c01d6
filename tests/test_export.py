"""archdsl export: each format is written, read back and equal to eager."""

from __future__ import annotations

import importlib.util

import pytest

from archdsl.cli.main import main


@pytest.mark.parametrize("fmt, suffix", [("torchscript", ".pt"), ("exported-program", ".pt2")])
def test_export_round_trips(tmp_path, capsys, fmt, suffix):
    out = tmp_path / f"net{suffix}"
    assert main(["export", "examples/mnist_cnn.arch", "--format", fmt, "-o", str(out), "--dynamic-batch"]) == 0
    assert out.is_file() and "max abs diff 0.00e+00" in capsys.readouterr().out


def test_onnx_export_is_checked_or_names_its_extra(tmp_path, capsys):
    code = main(["export", "examples/mnist_cnn.arch", "--format", "onnx", "-o", str(tmp_path / "n.onnx")])
    if importlib.util.find_spec("onnx") is None:
        assert code == 1 and "pip install onnx" in capsys.readouterr().err
    else:
        assert code == 0 and "wrote" in capsys.readouterr().out
