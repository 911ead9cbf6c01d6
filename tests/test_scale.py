"""`archdsl scale`: compound scaling, width/depth/resolution/divisor knobs, the printer round trip."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import archdsl
from archdsl.cli import main
from archdsl.backends.arch_text import signature, to_arch
from archdsl.scale import ScaleError, parse_phi_range, report, scale, spec_text
from conftest import max_abs_diff

PUBLISHED = {  # phi: (width, depth, resolution), EfficientNet paper / torchvision
    0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 300),
    4: (1.4, 1.8, 380), 5: (1.6, 2.2, 456), 6: (1.8, 2.6, 528), 7: (2.0, 3.1, 600),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small forwards run fastest on one thread (and don't fight other jobs for cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _torchvision():
    return pytest.importorskip("torchvision", reason="torchvision is the oracle for these checks")


def _oracle_params(name: str, **kwargs) -> int:
    tv = _torchvision()
    with torch.device("meta"):  # no weights allocated: only shapes
        model = tv.models.get_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())


def _calibrate(model: nn.Module, side: int = 64) -> nn.Module:
    """Random BatchNorm affines, running statistics measured on random inputs, eval mode.

    Fresh EfficientNets in eval mode (running mean 0, variance 1) return nearly
    the same logits for every input, which would let a wrong graph pass an
    output comparison; measured statistics keep every layer's signal alive.
    """
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over the calibration batch
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
        model.train()
        model(torch.randn(8, 3, side, side))
    return model.eval()


def _live(output: torch.Tensor) -> bool:
    return max_abs_diff(output[0], output[1]) > 1e-2


def _run(argv, capsys):
    """Run the CLI; callers assert the exit status they expect."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ---- phi: the published B0…B7 ----------------------------------------------------------

@pytest.mark.parametrize("phi", range(8))
def test_integer_phi_is_the_published_network(phi):
    arch = scale("efficientnet", phi=phi)
    width, depth, side = PUBLISHED[phi]
    assert (arch.params["width"], arch.params["depth"]) == (width, depth)
    assert arch.input_shape == (3, side, side)
    assert arch.parameter_count() == _oracle_params(f"efficientnet_b{phi}")


@pytest.mark.parametrize("phi, side", [(0, 64), (3, 64)])
def test_integer_phi_outputs_equal_torchvision(phi, side):
    tv = _torchvision()
    oracle = _calibrate(tv.models.get_model(f"efficientnet_b{phi}"), side)
    arch = scale("efficientnet", phi=phi, resolution=side)
    model = archdsl.build(arch, weights=oracle.state_dict()).eval()
    assert list(model.state_dict()) == list(oracle.state_dict())
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = oracle(x)
        assert _live(expected), "the oracle's output must depend on its input"
        assert max_abs_diff(model(x), expected) <= 1e-5


def test_cli_phi_3_reports_b3(capsys):
    code, out, _ = _run(["scale", "efficientnet", "--phi", "3", "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["params"] == 12_233_232
    assert result["input_shape"] == [3, 300, 300]
    assert result["matches"] == "efficientnet_b3"
    assert result["coefficients"]["phi"] == 3


# ---- phi off the table: the compound formula ----------------------------------------------

def test_phi_2_5_follows_the_compound_formula_from_b2():
    result = report("efficientnet", phi=2.5)
    c = result["coefficients"]
    # B2 (width 1.1, depth 1.2, 260 px) scaled by half a step of the formula
    assert c["depth"] == pytest.approx(1.2 * 1.2 ** 0.5) and c["width"] == pytest.approx(1.1 * 1.1 ** 0.5)
    assert c["resolution"] == 280 == int(260 * 1.15 ** 0.5 / 8 + 0.5) * 8  # nearest multiple of 8
    assert result["rule"].startswith("compound formula from the published phi = 2")
    arch = result["arch"]
    # stage repeats are ceil(n * depth) over B0's [1, 2, 2, 3, 3, 4, 1]
    blocks = [k for k, v in arch.graph.graph["scopes"].items() if v["block"] == "mbconv"]
    assert len(blocks) == sum(math.ceil(n * c["depth"]) for n in (1, 2, 2, 3, 3, 4, 1))
    assert result["macs_ratio"] == pytest.approx(arch.macs() / scale("efficientnet", phi=0).macs())


def test_phi_2_5_lies_between_b2_and_b3():
    between = scale("efficientnet", phi=2.5).macs()
    assert scale("efficientnet", phi=2).macs() < between < scale("efficientnet", phi=3).macs()


def test_phi_beyond_7_scales_b7():
    arch = scale("efficientnet", phi=8)
    assert arch.params["width"] == pytest.approx(2.0 * 1.1) and arch.params["depth"] == pytest.approx(3.1 * 1.2)
    assert arch.input_shape[1] == int(600 * 1.15 / 8 + 0.5) * 8


def test_explicit_coefficients_use_the_formula_even_for_integer_phi():
    arch = scale("efficientnet", phi=3, alpha=1.2, beta=1.1, gamma=1.15)
    assert arch.params["width"] == 1.1 ** 3 and arch.params["depth"] == 1.2 ** 3
    assert arch.input_shape[1] == int(224 * 1.15 ** 3 / 8 + 0.5) * 8
    custom = scale("efficientnet", phi=1, alpha=1.5, beta=1.0, gamma=1.0)
    assert (custom.params["depth"], custom.params["width"], custom.input_shape[1]) == (1.5, 1.0, 224)


def test_cli_states_coefficients_and_growth(capsys):
    code, out, _ = _run(["scale", "efficientnet", "--phi", "2.5"], capsys)
    assert code == 0
    for text in ("compound formula", "alpha = 1.2", "beta = 1.1", "gamma = 1.15", "280 x 280",
                 "10,994,222", "MACs", "2^phi = 5.66"):
        assert text in out


# ---- width / depth / resolution / divisor on other families --------------------------------

WIDTH_ORACLES = [  # spec, width, torchvision name, its constructor arguments
    ("mnasnet", 0.5, "mnasnet0_5", {}), ("mnasnet", 0.75, "mnasnet0_75", {}),
    ("mnasnet", 1.3, "mnasnet1_3", {}),
    ("mobilenet_v3_large", 0.75, "mobilenet_v3_large", {"width_mult": 0.75}),
    ("mobilenet_v3_small", 0.5, "mobilenet_v3_small", {"width_mult": 0.5}),
    ("mobilenet_v2", 0.75, "mobilenet_v2", {"width_mult": 0.75}),
]


@pytest.mark.parametrize("spec, width, oracle, kwargs", WIDTH_ORACLES)
def test_width_scaling_matches_torchvision(spec, width, oracle, kwargs):
    assert scale(spec, width=width).parameter_count() == _oracle_params(oracle, **kwargs)


def test_resolution_and_depth_knobs():
    assert scale("resnet50", width=0.5).parameter_count() < scale("resnet50").parameter_count()
    small = scale("efficientnet", phi=0, resolution=128)
    assert small.input_shape == (3, 128, 128)
    deep = scale("efficientnet", phi=0, depth=2.0)
    blocks = [k for k, v in deep.graph.graph["scopes"].items() if v["block"] == "mbconv"]
    assert len(blocks) == 2 * 16


def test_divisor_16_rounds_channels_to_16():
    arch = scale("efficientnet", phi=0, divisor=16)
    checked = 0
    for _, d in arch.ops():
        # squeeze-excitation widths are in // 4 by the rules, not rounded
        if d["op"] == "conv" and not d["name"].endswith(".fc1"):
            assert d["attrs"]["out"] % 16 == 0, d["name"]
            checked += 1
    assert checked > 50
    assert any(d["op"] == "conv" and d["attrs"]["out"] % 16 for _, d in scale("efficientnet").ops()
               if not d["name"].endswith(".fc1"))  # with 8, some are not


# ---- errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--phi", "-1"], "phi must be 0 or more"),
    (["--phi", "abc"], "--phi must be a number"),
    (["--phi", "inf"], "--phi must be a finite number"),
    (["--resolution", "0"], "resolution must be a positive integer"),
    (["--set", "nonsense=1"], "no parameter 'nonsense'"),
    (["--table", "3..1"], "runs backwards"),
])
def test_bad_values_are_clear_errors(capsys, argv, message):
    code, _, err = _run(["scale", "efficientnet", *argv], capsys)
    assert code == 1
    assert message in err and "Traceback" not in err


def test_undeclared_parameter_names_the_declared_ones(capsys):
    code, _, err = _run(["scale", "resnet50", "--depth", "2"], capsys)
    assert code == 1
    assert "declares no parameter 'depth'" in err and "width" in err
    with pytest.raises(ScaleError, match="phi"):
        scale("resnet50", phi=1)


# ---- -o: the scaled spec round-trips -------------------------------------------------------

def test_output_spec_compiles_to_the_identical_network(tmp_path):
    arch = scale("efficientnet", phi=2.5, resolution=64)
    path = tmp_path / "scaled.arch"
    path.write_text(spec_text(arch, "phi = 2.5"))
    again = archdsl.load(str(path))
    assert "phi" not in path.read_text().split("network:")[1]  # numbers, not parameters
    assert again.parameter_count() == arch.parameter_count()
    original = _calibrate(archdsl.build(arch))
    copy = archdsl.build(again, weights=original.state_dict()).eval()
    assert list(copy.state_dict()) == list(original.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = original(x)
        assert _live(expected)
        assert max_abs_diff(copy(x), expected) == 0


def test_cli_writes_the_output_spec(tmp_path, capsys):
    out = tmp_path / "b3.arch"
    code, text, _ = _run(["scale", "efficientnet", "--phi", "3", "-o", str(out)], capsys)
    assert code == 0 and str(out) in text
    assert archdsl.load(str(out)).parameter_count() == 12_233_232


@pytest.mark.parametrize("name", ["resnet50", "googlenet", "mobilenet_v2", "efficientnet_b0",
                                  "inception_v3", "shufflenet_v2_x1_0", "densenet121",
                                  "regnet_y_400mf", "convnext_tiny", "vit_b_16"])
def test_printer_round_trips_bundled_networks(name):
    arch = archdsl.load(name)
    again = archdsl.loads(to_arch(arch))
    assert signature(again) == signature(arch)
    assert again.aux_outputs == arch.aux_outputs


def test_printer_folds_repeats_and_keeps_labels():
    text = to_arch(archdsl.load("resnet50"))
    assert "repeat 5:" in text  # layer3's identical bottlenecks
    assert ("conv1: conv(64, 7, stride = 2, padding = 3, bias = false, "
            "init = kaiming_normal(mode = \"fan_out\", nonlinearity = \"relu\"))") in text
    assert "downsample:" in text and "identity" in text


# ---- --table ------------------------------------------------------------------------------

def test_parse_phi_range():
    assert parse_phi_range("0..7") == list(range(8))
    assert parse_phi_range("0..1:0.5") == [0, 0.5, 1]
    assert parse_phi_range("0, 2.5, 8") == [0, 2.5, 8]
    with pytest.raises(ScaleError):
        parse_phi_range("-1..2")


def test_table_sets_torchvision_figures_beside_ours(capsys):
    _torchvision()
    code, out, _ = _run(["scale", "efficientnet", "--table", "0..3", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert [r["coefficients"]["phi"] for r in rows] == [0, 1, 2, 3]
    for row in rows:
        tv = row["torchvision"]
        assert tv["params"] == row["params"]
        # torchvision's GFLOPS are MACs at its weights' crop size (B2: 288, not 260)
        assert tv["gflops"] == pytest.approx(tv["macs_at_crop"] / 1e9, abs=5e-4)
    code, out, _ = _run(["scale", "efficientnet", "--table", "2,2.5"], capsys)
    assert code == 0 and "efficientnet_b2" in out and "2.5" in out
