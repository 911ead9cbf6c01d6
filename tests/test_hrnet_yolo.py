"""HRNet (timm) and YOLOv8 (Ultralytics): parameter counts, state-dict keys and every output equal
the oracles, with the oracles' weights loaded by name.

Ultralytics is AGPL: a test-only oracle, installed by .ci/run; its tests skip when it is absent.
"""

from __future__ import annotations

import re

import pytest
import torch

import archdsl
from archdsl.backends.dot import to_dot
from archdsl.cli import main
from conftest import liven, max_abs_diff

HRNETS = ["hrnet_w18_small", "hrnet_w18_small_v2", "hrnet_w18", "hrnet_w30", "hrnet_w32", "hrnet_w40",
          "hrnet_w44", "hrnet_w48", "hrnet_w64"]
YOLOS = ["yolov8n", "yolov8s", "yolov8m", "yolov8l", "yolov8x"]
YOLO_CLS = [f"{name}_cls" for name in YOLOS]
SIDE = 64  # stride 32 leaves 2x2 maps on the coarsest branch / level
DFL = "model.22.dfl.conv.weight"  # Detect's fixed DFL decoder (inference only; not in the spec)


def _tiered(names, fast):
    return [pytest.param(n, marks=() if n in fast else pytest.mark.slow) for n in names]


def _hrnet(name, **options):
    import timm
    return timm.create_model(name, pretrained=False, **options)


def _yolo(name):
    tasks = pytest.importorskip("ultralytics.nn.tasks")
    if name.endswith("_cls"):
        return tasks.ClassificationModel(name.replace("_cls", "-cls") + ".yaml", verbose=False)
    return tasks.DetectionModel(name + ".yaml", verbose=False)


def _assert_close(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert got.shape == expected.shape, what
    assert max_abs_diff(expected[0], expected[1]) > 1e-5, f"{what}: the oracle must depend on its input"
    assert max_abs_diff(got, expected) <= 1e-5, what


def test_every_name_is_bundled():
    assert set(HRNETS + YOLOS + YOLO_CLS) <= set(archdsl.list_models())


# ---- HRNet ------------------------------------------------------------------------------------

@pytest.mark.parametrize("features_only", [False, pytest.param(True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", HRNETS)
def test_hrnet_parameter_count_equals_timm(name, features_only):
    with torch.device("meta"):
        oracle = _hrnet(name, features_only=features_only)
    expected = sum(p.numel() for p in oracle.parameters())
    assert archdsl.load(name, features_only=features_only).parameter_count() == expected


@pytest.mark.parametrize("features_only", [False, True])
@pytest.mark.parametrize("name", _tiered(HRNETS, {"hrnet_w18_small"}))
def test_hrnet_outputs_equal_timm_with_its_weights(name, features_only):
    oracle = liven(_hrnet(name, features_only=features_only), SIDE).eval()
    model = archdsl.build(name, weights=oracle.state_dict(), resolution=SIDE,
                          features_only=features_only).eval()
    assert set(model.state_dict()) == set(oracle.state_dict())
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        expected, got = oracle(x), model(x)
    if not features_only:
        _assert_close(got, expected, name)
        return
    # timm's list: the stem (stride 2) and the four widened branches (strides 4-32)
    assert list(got) == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert [t.shape[1] for t in got.values()] == oracle.feature_info.channels()
    assert len(expected) == len(got)
    for (key, tensor), reference in zip(got.items(), expected):
        _assert_close(tensor, reference, f"{name} {key}")


def test_hrnet_features_keep_the_branches_resolutions():
    arch = archdsl.load("hrnet_w18", features_only=True)
    shapes = {key: arch.graph.nodes[node]["shape"] for key, node in arch.outputs.items()}
    assert shapes == {"stem": (64, 112, 112), "stage1": (128, 56, 56), "stage2": (256, 28, 28),
                      "stage3": (512, 14, 14), "stage4": (1024, 7, 7)}


# ---- YOLOv8 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", _tiered(YOLOS + YOLO_CLS, {"yolov8n", "yolov8s", "yolov8n_cls", "yolov8s_cls"}))
def test_yolo_parameters_and_keys_equal_ultralytics(name):
    oracle = _yolo(name)
    expected = dict(oracle.state_dict())
    if not name.endswith("_cls"):
        # the DFL conv's 16 fixed weights (an arange; requires_grad False) only decode boxes at inference
        assert oracle.state_dict()[DFL].numel() == 16 and not oracle.get_parameter(DFL).requires_grad
        del expected[DFL]
    arch = archdsl.load(name)
    assert arch.parameter_count() == sum(v.numel() for k, v in expected.items()
                                         if k in dict(oracle.named_parameters()))
    assert set(arch.to_torch().state_dict()) == set(expected)


@pytest.mark.parametrize("name", _tiered(YOLOS, {"yolov8n"}))
def test_yolo_detect_outputs_equal_ultralytics_with_its_weights(name):
    oracle = liven(_yolo(name), SIDE).eval()
    weights = {k: v for k, v in oracle.state_dict().items() if k != DFL}
    model = archdsl.build(name, weights=weights, resolution=SIDE).eval()
    oracle.model[-1].training = True  # Detect's raw training-mode predictions; the rest in eval mode
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        expected, got = oracle(x), model(x)
    assert list(got) == ["p3", "p4", "p5"]
    assert [t.shape[-1] for t in got.values()] == [SIDE // 8, SIDE // 16, SIDE // 32]
    if isinstance(expected, (list, tuple)):  # Ultralytics before 8.4: the per-level maps themselves
        for (key, tensor), reference in zip(got.items(), expected, strict=True):
            _assert_close(tensor, reference, f"{name} {key}")
        return
    # Ultralytics 8.4 concatenates the levels' flattened maps: boxes (4 * reg_max bins), then scores
    boxes = torch.cat([t[:, :64].flatten(2) for t in got.values()], dim=-1)
    scores = torch.cat([t[:, 64:].flatten(2) for t in got.values()], dim=-1)
    _assert_close(boxes, expected["boxes"], f"{name} boxes")
    _assert_close(scores, expected["scores"], f"{name} scores")
    for level, (tensor, feature) in enumerate(zip(got.values(), expected["feats"])):
        assert tensor.shape[-2:] == feature.shape[-2:], level


@pytest.mark.parametrize("name", _tiered(YOLO_CLS, {"yolov8n_cls"}))
def test_yolo_classify_outputs_equal_ultralytics_with_its_weights(name):
    oracle = liven(_yolo(name), SIDE).eval()
    model = archdsl.build(name, weights=oracle.state_dict(), resolution=SIDE).eval()
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        _, logits = oracle(x)  # eval mode: (probabilities, logits)
        got = model(x)
    _assert_close(got, logits, name)


@pytest.mark.parametrize("name", ["yolov8n", "hrnet_w18"])
def test_specs_wire_by_name_not_index(name):
    text = archdsl.spec_path(name).read_text()
    assert not re.search(r"@(?:[\w-]*\.)*\d+(?!\w)", text), "a numeric tensor reference"


def test_yolo_takes_ultralytics_indices():
    arch = archdsl.load("yolov8n")
    # Ultralytics' indices come out of the order: upsample and concat take one, like nn.Upsample/Concat
    assert arch.graph.nodes["model.10"]["op"] == "upsample"
    assert arch.graph.nodes["model.11"]["op"] == "concat"
    assert [arch.graph.nodes[n]["op"] for n in ("model.17", "model.20")] == ["concat", "concat"]


def _box(dot: str, scope: str) -> str:
    return re.search(rf'(\w+) \[label="[^"]*", tooltip="{re.escape(scope)}"', dot).group(1)


def test_yolov8n_diagram_shows_every_output_and_the_skip_edges():
    dot = to_dot(archdsl.load("yolov8n"), depth=2)
    for key, side in (("p3", 80), ("p4", 40), ("p5", 20)):
        assert f'label="{key} 144×{side}×{side}"' in dot
    edges = set(re.findall(r"^\s*(\w+) -> (\w+)", dot, flags=re.M))
    # the neck's concats read backbone and neck tensors by name: P4, P3, then N4 and P5
    for source, target in (("6", "11"), ("4", "14"), ("12", "17"), ("9", "20"),
                           ("15", "22"), ("18", "22"), ("21", "22")):
        assert (_box(dot, f"model.{source}"), _box(dot, f"model.{target}")) in edges, (source, target)


def test_yolov8n_summary_lists_every_output(capsys):
    assert main(["summary", "yolov8n", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "outputs 'p3' 144x80x80, 'p4' 144x40x40, 'p5' 144x20x20" in out
    assert "3,157,184" in out


def test_block_results_read_through_the_call_binding(write_spec):
    arch = archdsl.load(write_spec("""
        arch two_heads
        input 3 x 8 x 8
        block heads(@x):
            a: conv(4, 1)
            output first
            @x -> b: conv(5, 1)
            output second
        network:
            conv(6, 3, padding = 1) as stem
            heads(@stem) as h
            output "first": @h.first
            output "second": @h.second
    """))
    shapes = {key: arch.graph.nodes[node]["shape"] for key, node in arch.outputs.items()}
    assert shapes == {"first": (4, 8, 8), "second": (5, 8, 8)}
