"""Diagrams: DOT structure (no Graphviz needed) and valid SVG output (where `dot` exists)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

import archdsl
from archdsl.cli import main
from archdsl.backends.dot import RenderError, find_dot, render, repr_svg, run_dot, to_dot

needs_dot = pytest.mark.skipif(find_dot() is None, reason="Graphviz's dot is not installed")


def _bundled(name):
    return archdsl.load(name)


def _clusters(dot: str) -> list[str]:
    """The label of every cluster, in order."""
    return re.findall(r'subgraph cluster_\d+ \{\n\s*graph \[label="([^"]*)"', dot)


def _node_labels(dot: str) -> list[str]:
    return re.findall(r'^\s*[nb]\d+ \[label="([^"]*)"', dot, flags=re.M)


def _edges(dot: str) -> list[tuple]:
    return re.findall(r"^\s*(\w+) -> (\w+)", dot, flags=re.M)


def test_googlenet_full_depth_has_a_cluster_per_block():
    dot = to_dot(archdsl.load("googlenet"))
    clusters = _clusters(dot)
    assert "inception3a: inception" in clusters and "aux1: inception_aux" in clusters
    assert "branch2: 2 × conv_bn" in clusters  # the labelled chain of two conv_bn blocks
    labels = _node_labels(dot)
    assert "conv 7×7/2, 64" in labels and "maxpool 3×3/2" in labels and "linear 1000" in labels
    assert labels.count("concat") == 9
    assert 'label=" 64×112×112"' in dot and "input 3×224×224" in dot and "output 1000" in dot
    # the four branches of each inception start on one rank, in spec order (left to right)
    assert len(re.findall(r"\{rank=same; \w+; \w+; \w+; \w+", dot)) >= 9
    assert 'ordering="out"' in dot


def test_googlenet_depth_one_draws_blocks_as_boxes():
    dot = to_dot(archdsl.load("googlenet"), depth=1)
    assert _clusters(dot) == []
    labels = _node_labels(dot)
    assert "inception3a\\ninception\\n155.9 k params" in labels
    assert "conv1\\nconv_bn\\n9.5 k params" in labels
    assert "aux2\\ninception_aux\\n3.19 M params" in labels
    assert not any(label.startswith("conv 3×3") for label in labels)  # hidden inside boxes
    edges = _edges(dot)
    assert len(edges) == len(set(edges)) and all(a != b for a, b in edges)


def test_depth_two_keeps_stages_as_clusters():
    dot = to_dot(archdsl.load("resnet50"), depth=2)
    assert _clusters(dot) == ["layer1: 3 × bottleneck", "layer2: 4 × bottleneck",
                              "layer3: 6 × bottleneck", "layer4: 3 × bottleneck"]
    assert sum(label.startswith("0\\nbottleneck") for label in _node_labels(dot)) == 4


def test_resnet50_collapsed_repeats():
    arch = archdsl.load("resnet50")
    full, collapsed = to_dot(arch), to_dot(arch, collapse_repeats=True)
    clusters = _clusters(collapsed)
    for text in ("1–2: bottleneck × 2", "1–3: bottleneck × 3", "1–5: bottleneck × 5"):
        assert text in clusters
    assert "0: bottleneck" in clusters and "3: bottleneck" not in clusters
    convs = lambda dot: sum(label.startswith("conv ") for label in _node_labels(dot))  # noqa: E731
    assert convs(full) == 53 and convs(collapsed) == 1 + 4 * (4 + 3)
    # the run is drawn once: its output feeds the next stage, no edge loops back into it
    edges = _edges(collapsed)
    assert all(a != b for a, b in edges) and len(edges) == len(set(edges))


def test_collapsed_boxes_say_params_each():
    dot = to_dot(archdsl.load("resnet50"), depth=2, collapse_repeats=True)
    assert "1–5\\nbottleneck × 5\\n1.12 M params each" in _node_labels(dot)


def test_shufflenet_branches_and_repeats():
    dot = to_dot(_bundled("shufflenet_v2_x1_0"), collapse_repeats=True)
    clusters = _clusters(dot)
    assert {"branch1", "branch2"} <= set(clusters)
    assert "1–7: unit × 7" in clusters and "1–3: unit × 3" in clusters
    labels = _node_labels(dot)
    assert "channel shuffle 2" in labels and "split 1/2" in labels and "conv 3×3/2, 24, g24" in labels


def test_densenet_blocks_at_depth():
    dot = to_dot(_bundled("densenet121"), depth=3)
    clusters = _clusters(dot)
    assert any(c.startswith("denseblock1: 6 × ") for c in clusters)
    assert any(c.startswith("denseblock4: 16 × ") for c in clusters)
    assert "transition1: transition" in clusters or any(c.startswith("transition1") for c in clusters)


def test_varying_stochastic_depth_still_collapses():
    dot = to_dot(_bundled("efficientnet_b0"), collapse_repeats=True)
    assert any("×" in c and "mbconv" in c for c in _clusters(dot))
    assert any(label.startswith("stochastic depth") and "…" in label for label in _node_labels(dot))


def test_direction_and_bad_arguments():
    arch = archdsl.load("resnet18")
    assert 'rankdir="LR"' in to_dot(arch, direction="LR")
    with pytest.raises(RenderError, match="direction"):
        to_dot(arch, direction="BT")
    with pytest.raises(RenderError, match="depth"):
        to_dot(arch, depth=0)
    with pytest.raises(RenderError, match=r"\.svg"):
        render(arch, "net.jpeg")


def test_dot_source_file_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr("archdsl.backends.dot.find_dot", lambda: None)
    path = render(archdsl.load("resnet18"), tmp_path / "net.dot")
    assert path.read_text().startswith('digraph "resnet18"')


def test_missing_dot_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("archdsl.backends.dot.find_dot", lambda: None)
    with pytest.raises(RenderError, match="apt-get install graphviz"):
        run_dot("digraph {}", "svg")
    assert repr_svg(archdsl.load("resnet18")) is None
    assert main(["render", "resnet18", "-o", str(tmp_path / "x.svg")]) == 1
    err = capsys.readouterr().err
    assert "apt-get install graphviz" in err and "graphviz-pure" in err and "Traceback" not in err


@needs_dot
@pytest.mark.parametrize("name, options", [
    ("googlenet", {"depth": 1}), ("googlenet", {}), ("resnet50", {"collapse_repeats": True}),
    ("shufflenet_v2_x1_0", {"collapse_repeats": True}), ("densenet121", {"depth": 2}),
])
def test_rendered_svg_is_valid(name, options, tmp_path):
    arch = _bundled(name)
    path = render(arch, tmp_path / f"{name}.svg", **options)
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "input 3×224×224" in texts and "output 1000" in texts


@needs_dot
def test_png_and_repr_svg(tmp_path, capsys):
    assert main(["render", "resnet18", "--depth", "1", "-o", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out
    svg = repr_svg(archdsl.load("resnet18"))
    assert svg.lstrip().startswith("<?xml") and "</svg>" in svg
