"""The command line: compile, check, list; JSON output; parameters from --set."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from archdsl.cli import main


def run(capsys, *argv, expect: int = 0) -> tuple[int, str]:
    """Run the CLI; its exit status must be ``expect`` (every call checks it)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    assert code == expect, f"exit {code}, expected {expect}; stderr: {captured.err[-500:]}"
    return code, captured.out


def test_compile_googlenet_prints_its_figures(capsys):
    code, out = run(capsys, "compile", "specs/googlenet.arch")
    assert code == 0
    assert "13,004,888" in out and "3 x 224 x 224" in out and "aux1, aux2" in out


def test_compile_json_for_a_bundled_name(capsys):
    code, out = run(capsys, "compile", "resnet50", "--json")
    report = json.loads(out)
    assert code == 0
    assert report["name"] == "resnet50" and report["params"] == 25_557_032
    assert report["input_shape"] == [3, 224, 224] and report["output_shape"] == [1000]


def test_set_overrides_parameters(capsys):
    code, out = run(capsys, "compile", "googlenet", "--set", "aux_logits=false", "--json")
    assert json.loads(out)["params"] == 6_624_904
    code, out = run(capsys, "compile", "resnet18", "--set", "num_classes=10", "--set", "layers=[1, 1, 1, 1]",
                    "--json")
    assert json.loads(out)["output_shape"] == [10]


def test_variant_option(capsys):
    code, out = run(capsys, "compile", "specs/resnet.arch", "--variant", "resnet18", "--json")
    assert json.loads(out)["params"] == 11_689_512


def test_check_builds_nothing(capsys, monkeypatch):
    import archdsl.backends.torch_fx as backend
    monkeypatch.setattr(backend, "compile_module", lambda arch: pytest.fail("check compiled a module"))
    code, out = run(capsys, "check", "resnet152")
    assert code == 0 and "60,192,808" in out


def test_list_shows_names_families_and_params(capsys):
    code, out = run(capsys, "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["resnet50"]["family"] == "resnet" and rows["resnet50"]["params"] == 25_557_032
    assert rows["vgg16_bn"]["params"] == 138_365_992 and rows["googlenet"]["family"] == "googlenet"
    code, out = run(capsys, "list")
    assert "wide_resnet50_2" in out and "68,883,240" in out


def test_emit_stages(capsys):
    code, out = run(capsys, "compile", "examples/mnist_cnn.arch", "--emit", "ir")
    assert "conv1" in out and "1x28x28 -> 32x26x26" in out
    code, out = run(capsys, "compile", "examples/mnist_cnn.arch", "--emit", "code")
    assert "def forward" in out
    code, out = run(capsys, "compile", "examples/mnist_cnn.arch", "--emit", "ast")
    assert "BlockDef" not in out and "Chain" in out
    code, out = run(capsys, "compile", "resnet18", "--emit", "passes")
    assert "pass inplace" in out and "layer1.0.add (add): inplace=True" in out


def test_ops_lists_the_registry(capsys):
    code, out = run(capsys, "ops", "--json")
    ops = {op["name"]: op for op in json.loads(out)}
    assert ops["conv"]["category"] == "conv" and ops["add"]["inputs"] == "any"
    assert [a["name"] for a in ops["conv"]["args"]][:2] == ["out", "kernel"]
    code, out = run(capsys, "ops", "maxpool")
    assert "ceil_mode = false" in out
    code, out = run(capsys, "ops", "relux", expect=1)


def test_unknown_op_points_to_the_op_list(write_spec, capsys):
    path = write_spec("""
        input 3 x 8 x 8
        network:
            relux
    """)
    assert main(["check", path]) == 1
    err = capsys.readouterr().err
    assert ":3:5:" in err and "`archdsl ops` lists them" in err and "did you mean 'relu'" in err


def test_examples_compile(capsys):
    code, out = run(capsys, "compile", "examples/inception_module.arch", "--json")
    assert json.loads(out)["output_shape"] == [256, 28, 28]


def test_missing_spec_is_a_clean_error(capsys):
    assert main(["compile", "no/such.arch"]) == 1
    assert "no such spec file" in capsys.readouterr().err


def test_module_entry_point_and_help():
    proc = subprocess.run([sys.executable, "-m", "archdsl", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "compile" in proc.stdout and "list" in proc.stdout
