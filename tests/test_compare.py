"""Comparing networks: figures from the IR, accuracy from torchvision's metadata, the chart."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

import archdsl
from archdsl.cli import main
from archdsl.compare import compare, draw_chart, format_table, plot, published_top1
from archdsl.errors import ArchError


def _meta(name):
    from torchvision.models import get_model_weights
    return get_model_weights(name).DEFAULT.meta


def test_rows_hold_ir_figures_and_torchvision_accuracy():
    rows = compare(["resnet18", "googlenet"])
    assert [r["name"] for r in rows] == ["resnet18", "googlenet"]
    resnet, googlenet = rows
    assert resnet["params"] == 11_689_512 and resnet["macs"] == archdsl.load("resnet18").macs()
    assert resnet["input_shape"] == [3, 224, 224]
    assert resnet["top1"] == _meta("resnet18")["_metrics"]["ImageNet-1K"]["acc@1"]
    assert resnet["top1_source"].startswith("torchvision ") and resnet["top1_crop"] == 224
    assert resnet["top1_weights"] == "ResNet18_Weights.IMAGENET1K_V1"
    assert googlenet["params"] == _meta("googlenet")["num_params"]  # auxiliary heads left out


def test_a_spec_file_has_no_published_accuracy(write_spec):
    path = write_spec("""
        arch tiny
        input 3 x 32 x 32
        network:
            conv(8, 3);  relu;  adaptive_avgpool(1);  flatten;  linear(10)
    """)
    (row,) = compare([path])
    assert row["name"] == "tiny" and row["top1"] is None and row["params"] == 8 * 27 + 8 + 90
    assert "-" in format_table([row]).splitlines()[2]


def test_unknown_names_degrade_and_the_data_file_needs_no_torchvision(monkeypatch):
    assert published_top1("no_such_network") is None
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision now fails
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    assert published_top1("resnet18")["top1"] == 69.758
    assert compare(["resnet18"])[0]["top1"] == 69.758


def test_published_data_file_equals_torchvision_metadata():
    """published.json is what ``python -m archdsl.published`` would write from this torchvision."""
    pytest.importorskip("torchvision")
    from archdsl.published import _table, generate
    assert generate() == _table()


def test_compare_and_scale_table_import_no_torchvision():
    code = ("import sys; from archdsl.cli import main; main(['compare', 'resnet18', 'efficientnet_b0']); "
            "main(['scale', 'efficientnet', '--table', '0..1']); "
            "bad = [m for m in ('torch', 'torchvision') if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(Path(__file__).resolve().parent.parent))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "77.69" in proc.stdout and "efficientnet_b1" in proc.stdout


def test_table_names_its_sources():
    text = format_table(compare(["alexnet", "resnet18"]))
    lines = text.splitlines()
    assert lines[0].split() == ["name", "params", "GMACs", "input", "top-1", "%"]
    assert lines[2].split()[:3] == ["alexnet", "61,100,840", "0.714"]
    assert "torchvision" in text and "_ops convention" in text and "acc@1" in text


def test_accuracy_measured_at_another_crop_is_marked():
    (row,) = compare(["efficientnet_b2"])
    # B2's paper resolution is 260; torchvision evaluated its weights at a 288 crop.
    assert row["input_shape"][-1] == 260 and row["top1_crop"] == 288
    assert f"(@{row['top1_crop']})" in format_table([row])


def test_plot_writes_a_png_and_reports_what_it_left_out(tmp_path, write_spec):
    spec = write_spec("""
        arch tiny
        input 3 x 32 x 32
        network:
            conv(8, 3);  flatten;  linear(10)
    """)
    rows = compare(["alexnet", "resnet18", "mobilenet_v2" if "mobilenet_v2" in archdsl.list_models()
                    else "resnet50", spec])
    out = tmp_path / "zoo.png"
    assert plot(rows, out) == ["tiny"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ArchError, match="nothing to plot"):
        plot(rows[-1:], tmp_path / "empty.png")


def test_labels_do_not_overlap():
    import matplotlib.pyplot as plt

    names = [n for n in archdsl.list_models()
             if n.startswith(("resnet", "efficientnet_b", "mobilenet", "vgg1"))]
    rows = compare(names)
    fig, boxes = draw_chart(rows)
    plt.close(fig)
    assert len(boxes) == len([r for r in rows if r["top1"] is not None]) >= 20  # classifiers only
    overlapping = [(a, b) for a, b in itertools.combinations(boxes, 2)
                   if a.x0 < b.x1 - 1 and b.x0 < a.x1 - 1 and a.y0 < b.y1 - 1 and b.y0 < a.y1 - 1]
    assert not overlapping


def test_cli_json_and_plot(tmp_path, capsys):
    out = tmp_path / "chart.png"
    assert main(["compare", "resnet18", "alexnet", "--json", "--plot", str(out)]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    assert [r["name"] for r in rows] == ["resnet18", "alexnet"] and out.is_file()
    assert "wrote" in captured.err
