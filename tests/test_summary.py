"""The summary: per-layer rows, totals checked against torchvision's published figures."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch

import archdsl
from archdsl.cli import main
from archdsl.errors import SpecError
from archdsl.api import load_with_input
from archdsl.backends.table import summarize
from archdsl.cli._shared import parse_input
from conftest import ROOT
from oracles import ORACLES


def _torchvision_weights(name):
    """torchvision's DEFAULT weights for ``name``, or None where it has none."""
    from torchvision.models import get_model_weights
    try:
        return get_model_weights(name).DEFAULT
    except ValueError:
        return None


@pytest.mark.parametrize("name", archdsl.list_models())
def test_totals_equal_torchvision_ops_and_parameters(name):
    import torchvision

    weights = _torchvision_weights(name)
    if weights is None or "_ops" not in weights.meta:
        pytest.skip(f"torchvision publishes no _ops for {name}")
    crop = weights.transforms().crop_size[0]
    arch = load_with_input(name, input_shape=(3, crop, crop))
    assert arch.input_shape == (3, crop, crop)
    totals = summarize(arch).totals
    assert round(totals["macs"] / 1e9, 3) == weights.meta["_ops"]
    options = {"image_size": crop} if name.startswith("vit") else {}  # ViT's position embedding
    make = ORACLES[name][0] if name in ORACLES else lambda **o: torchvision.models.get_model(name, **o)
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore", FutureWarning)  # googlenet / inception_v3 init notice
        live = make(**options)
    assert totals["params"] == sum(p.numel() for p in live.parameters())


def _peak_rss_kib(code: str) -> int:
    """Peak resident memory (KiB) of a fresh Python running ``code``, measured from a parent."""
    probe = ("import resource, subprocess, sys; "
             f"subprocess.run([sys.executable, '-c', {code!r}], check=True, stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return int(out.stdout.strip())


def test_summary_of_the_largest_network_allocates_no_weights():
    name = "efficientnet_b7" if "efficientnet_b7" in archdsl.list_models() else "resnet152"
    summary = _peak_rss_kib(f"from archdsl.cli import main; main(['summary', {name!r}])")
    bare = _peak_rss_kib("import torch")
    # EfficientNet-B7's float32 weights alone would be 253 MiB.
    assert summary < bare + 100 * 1024, (summary, bare)


def test_rows_per_op_add_up_to_the_totals():
    arch = archdsl.load("resnet18")
    summary = summarize(arch)
    assert len(summary.rows) == summary.totals["ops"] == sum(1 for _ in arch.ops())
    assert sum(r.params for r in summary.rows) == summary.totals["params"] == 11_689_512
    assert sum(r.macs for r in summary.rows) == summary.totals["macs"]
    first = summary.rows[0]
    assert (first.name, first.op, first.shape) == ("conv1", "conv 7×7/2, 64", (64, 112, 112))


def test_depth_groups_ops_into_blocks():
    summary = summarize(archdsl.load("resnet50"), depth=2)
    names = [r.name for r in summary.rows]
    assert names[:5] == ["conv1", "bn1", "0", "maxpool", "layer1.0"]
    assert names.count("layer3.5") == 1 and "layer3.5.conv1" not in names
    row = summary.rows[names.index("layer1.0")]
    assert (row.op, row.shape, row.ops) == ("bottleneck", (256, 56, 56), 12)
    assert sum(r.params for r in summary.rows) == summary.totals["params"]
    stages = summarize(archdsl.load("resnet50"), depth=1)
    assert {r.name: r.op for r in stages.rows}["layer3"] == "6 × bottleneck"


def test_auxiliary_heads_count_in_parameters_not_in_macs():
    summary = summarize(archdsl.load("googlenet"), depth=1)
    rows = {r.name: r for r in summary.rows}
    assert rows["inception3a"].op == "inception" and not rows["inception3a"].aux
    assert rows["aux1"].aux and rows["aux1"].op == "inception_aux"
    assert summary.totals["params"] == 13_004_888
    assert summary.totals["params_without_aux"] == 6_624_904
    assert summary.totals["macs"] == sum(r.macs for r in summary.rows if not r.aux)


def test_memory_totals_of_a_small_network(write_spec):
    path = write_spec("""
        arch tiny
        input 3 x 8 x 8
        network:
            conv(4, 3, padding = 1);  batchnorm;  relu
            flatten
            linear(10)
    """)
    t = summarize(archdsl.load(path)).totals
    assert t["params"] == (4 * 3 * 9 + 4) + 8 + (256 * 10 + 10)
    assert t["buffers"] == 4 + 4 + 1
    assert t["macs"] == 4 * 3 * 9 * 64 + 256 * 10
    assert t["activation_bytes"] == 4 * (256 * 4 + 10)
    assert t["param_bytes"] == 4 * t["params"]


def test_input_sets_resolution_when_the_spec_has_it():
    if "efficientnet_b0" not in archdsl.list_models():
        pytest.skip("efficientnet.arch is not bundled")
    arch = load_with_input("efficientnet_b0", input_shape=(3, 256, 256))
    assert arch.input_shape == (3, 256, 256) and arch.params["resolution"] == 256


def test_input_replaces_a_fixed_input_shape():
    base = archdsl.load("resnet18")
    arch = load_with_input("resnet18", input_shape=(1, 128, 96))
    assert arch.input_shape == (1, 128, 96)
    assert arch.graph.nodes["conv1"]["shape"] == (64, 64, 48)
    assert arch.macs() < base.macs()
    assert load_with_input("resnet18", input_shape=(160, 160)).input_shape == (3, 160, 160)


@pytest.mark.parametrize("text, expected", [("3x224x224", (3, 224, 224)), ("320", (320, 320)),
                                            ("240x320", (240, 320)), ("1×28×28", (1, 28, 28))])
def test_parse_input(text, expected):
    assert parse_input(text) == expected


@pytest.mark.parametrize("text", ["", "3x0x4", "axb", "1x2x3x4"])
def test_parse_input_rejects_nonsense(text):
    with pytest.raises(SpecError, match="--input expects"):
        parse_input(text)


def test_cli_prints_the_table_and_names_the_convention(capsys):
    assert main(["summary", "resnet18", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "_ops convention" in out and "layer1" in out and "2 × basic" in out
    assert "11,689,512 trainable" in out and "(1.814 G)" in out
    assert "activation memory" in out and "parameter memory" in out


def test_cli_json_and_input(capsys):
    assert main(["summary", "resnet18", "--input", "3x112x112", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == [3, 112, 112]
    assert data["totals"]["params"] == 11_689_512
    assert data["rows"][0] == {"name": "conv1", "op": "conv 7×7/2, 64", "shape": [64, 56, 56],
                               "params": 9408, "macs": 9408 * 56 * 56, "ops": 1, "aux": False,
                               "init": {"weight": 'kaiming_normal(mode = "fan_out", nonlinearity = "relu")'}}
    assert "torchvision" in data["convention"]


@pytest.mark.parametrize("argv, message", [
    (["--input", "big"], "--input expects"), (["--depth", "0"], "expected a positive integer"),
])
def test_cli_rejects_bad_options_as_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "resnet18", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_architecture_summary_method():
    arch = archdsl.load("resnet18")
    if not hasattr(arch, "summary"):
        pytest.skip("Architecture.summary is not wired up")
    assert arch.summary(depth=1).totals == summarize(arch).totals
    assert "layer4" in str(arch.summary(depth=1))
