"""Language features: expressions, functions, loops, joins, naming, imports."""

from __future__ import annotations

import pytest

import archdsl
from archdsl.errors import Source, SpecError
from archdsl.frontend.expr import Env, Evaluator
from archdsl.frontend.parser import parse_expression


def evaluate(text, **names):
    return Evaluator(Env(values=names), (3, 32, 32))(parse_expression(text, Source("<t>", text)))


@pytest.mark.parametrize("text, value", [
    ("1 + 2 * 3 ** 2", 19), ("7 // 2 + 7 % 2", 4), ("7 / 2", 3.5), ("-(2 - 5)", 3),
    ("[1, 2, 3][-1]", 3), ("(4, 5)[0]", 4), ("[1, 2, 3][1:]", [2, 3]), ("len([0] * 4)", 4),
    ("1 if 2 > 3 else 4", 4), ("3 not in [1, 2] and not false", True), ("1 < 2 < 3", True),
    ("max(3, 9, 4) + min([5, 2])", 11), ("sum(range(5))", 10), ("ceil(2.1) + floor(2.9)", 5),
    ("int(3.9) + round(2.5)", 5), ("list(zip([1, 2], [3, 4]))", [(1, 3), (2, 4)]),
    ("in.channels * in.height", 96), ("in.shape", (3, 32, 32)), ("\"a\" + 'b'", "ab"),
    ("none == none", True),
])
def test_expressions(text, value):
    assert evaluate(text) == value


def test_make_divisible_is_spec_code_and_follows_torchvision():
    import torchvision.models._utils as tv_utils
    for v in [3, 8, 12, 20, 27.5, 36, 100, 101.6, 321.3, 7.9]:
        spec = (f'import "layers.arch"\ninput 3 x 8 x 8\nnetwork:\n'
                f'    conv(make_divisible({v}), 1)\n')
        out = archdsl.loads(spec, path="specs/inline.arch").output_shape[0]
        assert out == tv_utils._make_divisible(v, 8)


def test_blocks_loops_and_naming(write_spec):
    arch = archdsl.load(write_spec("""
        arch t
        input 3 x 32 x 32
        block pair(c):
            first: conv(c, 3, padding = 1)
            relu
            conv(c, 3, padding = 1)
        network:
            stem: conv(8, 3) -> relu
            for i in range(2):
                stage{i}: repeat 2 as j:
                    pair(8 * (i + 1))
            seq:
                relu
                conv(4, 1)
    """))
    names = [d["name"] for _, d in arch.ops()]
    assert names[:2] == ["stem.0", "stem.1"]
    assert "stage0.0.first" in names and "stage0.1.1" in names and "stage1.1.1" in names
    assert names[-2:] == ["0.0", "0.1"]
    assert arch.output_shape == (4, 30, 30)


def test_when_removes_items_without_taking_an_index(write_spec):
    arch = archdsl.load(write_spec("""
        arch t
        input 3 x 8 x 8
        param bn = false
        network:
            conv(8, 3)
            batchnorm when bn
            relu
    """))
    assert [d["name"] for _, d in arch.ops()] == ["0", "1"]


def test_joins(write_spec):
    arch = archdsl.load(write_spec("""
        arch t
        input 4 x 8 x 8
        network:
            concat(split = true):
                identity
                conv(2, 3, padding = 1)
            channel_shuffle(2)
            add when false:
                conv(4, 1)
                identity
            mul:
                identity
                branch:
                    adaptive_avgpool(1);  conv(4, 1);  sigmoid
    """))
    ops = [d["op"] for _, d in arch.ops()]
    assert ops.count("channel_split") == 2 and "concat" in ops and "add" not in ops and "mul" in ops
    assert arch.output_shape == (4, 8, 8)


def test_functions_and_interpolated_calls(write_spec):
    arch = archdsl.load(write_spec("""
        arch t
        input 3 x 8 x 8
        param act = "hardswish"
        fn double(x) = 2 * x
        fn clamp(x, lo = 1):
            let y = max(lo, x)
            return y
        network:
            conv(double(clamp(0, lo = 4)), 1)
            {act}
            act
    """))
    assert [d["op"] for _, d in arch.ops()] == ["conv", "hardswish", "hardswish"]
    assert arch.output_shape == (8, 8, 8)


def test_import_cycle_is_an_error(write_spec):
    write_spec('import "b.arch"\nfn f(x) = x\n', name="a.arch")
    write_spec('import "a.arch"\nfn g(x) = x\n', name="b.arch")
    path = write_spec('import "a.arch"\ninput 3 x 8 x 8\nnetwork:\n    relu\n')
    with pytest.raises(SpecError, match="import cycle"):
        archdsl.load(path)


def test_ir_records_spans_shapes_and_scopes():
    arch = archdsl.load("resnet18")
    node = arch.graph.nodes["layer2.0.downsample.0"]
    assert node["op"] == "conv" and node["shape"] == (128, 28, 28) and node["in_shapes"] == ((64, 56, 56),)
    assert node["span"].line > 0 and node["attrs"]["stride"] == (2, 2)
    assert arch.graph.graph["scopes"]["layer2.0"]["block"] == "basic"


def test_error_builtin_lets_a_spec_reject_a_value():
    with pytest.raises(SpecError) as info:
        archdsl.load("mobilenet_v3_large", config="tiny")
    assert 'config must be "large" or "small"' in info.value.message and info.value.line > 0


def test_seq_and_branch_labels_are_structure_on_the_same_line_too():
    arch = archdsl.loads(
        "input 3 x 8 x 8\nnetwork:\n    conv(4, 3)\n    seq: repeat 2:\n        conv(4, 1)\n"
        "    seq: repeat 2: relu\n    seq: conv(4, 1) -> relu\n    branch: conv(4, 1) -> relu\n"
        "    seq:\n        conv(4, 1)\n")
    names = [d["name"] for _, d in arch.ops()]
    assert names == ["0", "1.0", "1.1", "2.0", "2.1", "3.0", "3.1", "4", "5", "6.0"]


def test_in_inside_a_branch_is_that_branchs_current_input():
    arch = archdsl.loads(
        "input 3 x 8 x 8\nnetwork:\n    conv(8, 1)\n    add:\n        branch:\n"
        "            conv(in.channels * 2, 1)\n            conv(in.channels // 2, 1)\n        identity\n")
    assert [d["shape"][0] for _, d in arch.ops() if d["op"] == "conv"] == [8, 16, 8]
