"""archdsl export: each format is written, read back and equal to eager, every output."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch

from archdsl.cli.main import main


@pytest.mark.parametrize("fmt, suffix", [("torchscript", ".pt"), ("exported-program", ".pt2")])
def test_export_round_trips(tmp_path, capsys, fmt, suffix):
    out = tmp_path / f"net{suffix}"
    assert main(["export", "examples/mnist_cnn.arch", "--format", fmt, "-o", str(out), "--dynamic-batch"]) == 0
    assert out.is_file() and "max abs diff 0.00e+00" in capsys.readouterr().out


def test_onnx_export_is_checked_or_names_its_extra(tmp_path, capsys):
    code = main(["export", "examples/mnist_cnn.arch", "--format", "onnx", "-o", str(tmp_path / "n.onnx")])
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
        assert code == 1 and "archdsl[export]" in capsys.readouterr().err
    else:
        assert code == 0 and "checked with onnxruntime" in capsys.readouterr().out


@pytest.mark.parametrize("package", ["onnx", "onnxruntime"])
def test_a_missing_onnx_package_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    code = main(["export", "examples/mnist_cnn.arch", "--format", "onnx", "-o", str(tmp_path / "n.onnx")])
    err = capsys.readouterr().err
    assert code == 1 and f"pip install {package}" in err and "archdsl[export]" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_python_export_with_weights_runs_as_a_script(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    torch.save(__import__("archdsl").build("examples/mnist_cnn.arch").state_dict(), weights)
    out = tmp_path / "mnist_net"
    assert main(["export", "examples/mnist_cnn.arch", "--format", "python", "-o", str(out),
                 "--weights", str(weights)]) == 0
    said = capsys.readouterr().out
    assert "mnist_net.py and its weights" in said and "max abs diff 0.00e+00" in said
    script, state = tmp_path / "mnist_net.py", tmp_path / "mnist_net.pt"
    assert set(torch.load(state, weights_only=True)) == set(torch.load(weights, weights_only=True))
    run = subprocess.run([sys.executable, "-I", str(script), str(state)], capture_output=True, text=True, check=False,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["output", "(1,", "10)"]


def test_python_export_file_name_must_be_a_module_name(tmp_path, capsys):
    assert main(["export", "examples/mnist_cnn.arch", "--format", "python", "-o", str(tmp_path / "my-net.py")]) == 1
    assert "module name" in capsys.readouterr().err


def test_export_help_lists_the_four_formats(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    for fmt in ("torchscript", "exported-program", "onnx", "python"):
        assert f"\n  {fmt} " in text
    assert "OUT.py" in text and "weights_only=True" in text and "archdsl[export]" in text


def test_optimized_export_equals_the_eager_network(tmp_path, capsys):
    """--optimize inference exports the folded graph: no BatchNorm left, outputs as eager's."""
    import archdsl
    out = tmp_path / "net.pt"
    weights = tmp_path / "w.pth"
    torch.save(archdsl.build("examples/small_resnet.arch").state_dict(), weights)
    assert main(["export", "examples/small_resnet.arch", "--format", "torchscript", "--optimize", "inference",
                 "--weights", str(weights), "-o", str(out)]) == 0
    scripted = torch.jit.load(str(out))
    assert not any("BatchNorm" in m.original_name for m in scripted.modules())
    eager = archdsl.build("examples/small_resnet.arch", weights=str(weights)).eval()
    x = torch.randn(2, *archdsl.load("examples/small_resnet.arch").input_shape)
    with torch.no_grad():
        assert (scripted(x) - eager(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("argv, words", [
    (["--format", "python", "--optimize", "inference", "-o", "n.py"], "keeps the network as written"),
    (["--format", "aoti", "-o", "n.zip"], ".pt2 file"),
    (["--format", "exported-program", "--dynamic-batch", "--batch", "1", "-o", "n.pt2"], "batch must be"),
])
def test_export_option_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    from conftest import ROOT
    assert main(["export", str(ROOT / "examples/mnist_cnn.arch"), *argv]) == 1
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").environ.get("ARCHDSL_TEST_AOT"),
                    reason="AOTInductor compiles C++ for minutes; set ARCHDSL_TEST_AOT=1 to run")
def test_aoti_package_from_the_command_line(tmp_path, capsys):
    import archdsl
    out = tmp_path / "mnist.pt2"
    assert main(["export", "examples/mnist_cnn.arch", "--format", "aoti", "--optimize", "inference",
                 "--dynamic-batch", "-o", str(out)]) == 0
    assert "aoti_load_package" in capsys.readouterr().out
    x = torch.randn(3, *archdsl.load("examples/mnist_cnn.arch").input_shape)
    assert archdsl.load_package(out)(x).shape[0] == 3
