"""Graphs in the language: named tensors, several outputs and inputs, placement labels."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.backends.arch_text import signature, to_arch
from archdsl.errors import ShapeError, SpecError


def load(write_spec, text: str, **params):
    return archdsl.load(write_spec(text), **params)


UNET_LIKE = """
arch tiny_unet
input 3 x 16 x 16
param widths = [4, 8, 16]

block double_conv(c):
    conv(c, 3, padding = 1, bias = false);  batchnorm;  relu

block up(c, @skip):
    up: upsample(2)
    concat(@skip)
    conv: double_conv(c)

network:
    enc0: double_conv(widths[0])
    for i in range(1, len(widths)):
        enc{i}: maxpool(2) -> double_conv(widths[i])
    for i in reversed(range(len(widths) - 1)):
        dec{i}: up(widths[i], @enc{i})
    outc: conv(2, 1)
"""


def test_named_skip_tensors_wire_a_unet(write_spec):
    arch = load(write_spec, UNET_LIKE)
    concat = arch.graph.nodes["dec0.0"]
    assert concat["op"] == "concat" and concat["in_shapes"] == ((8, 16, 16), (4, 16, 16))
    assert archdsl.load(write_spec(UNET_LIKE), widths=[4, 8, 16, 32]).output_shape == (2, 16, 16)
    model = arch.to_torch().eval()
    x = torch.randn(2, 3, 16, 16)
    up = torch.nn.functional.interpolate
    def run(module, value):  # a scope's modules in order (the scopes here are chains)
        children = list(module.children())
        for child in children:
            value = run(child, value)
        return value if children else module(value)

    with torch.no_grad():
        enc0 = run(model.enc0, x)
        enc1 = run(model.enc1, enc0)
        enc2 = run(model.enc2, enc1)
        dec1 = run(model.dec1.conv, torch.cat([up(enc2, scale_factor=2), enc1], 1))
        dec0 = run(model.dec0.conv, torch.cat([up(dec1, scale_factor=2), enc0], 1))
        assert torch.allclose(model(x), model.outc(dec0), atol=1e-6)


def test_dict_outputs_in_declaration_order_in_both_modes(write_spec):
    arch = load(write_spec, """
        arch two
        input 3 x 8 x 8
        network:
            a: conv(4, 3, padding = 1)
            b: conv(6, 1)
            output "second": @b
            output first: @a
            for i in range(2):
                output "p" + str(i): @a
        """)
    assert arch.returns_dict and list(arch.outputs) == ["second", "first", "p0", "p1"]
    assert arch.output_shapes["second"] == (6, 8, 8)
    model = arch.to_torch()
    x = torch.randn(1, 3, 8, 8)
    for mode in (model.train, model.eval):
        mode()
        out = model(x)
        assert list(out) == ["second", "first", "p0", "p1"]
        assert torch.equal(out["first"], model.a(x)) and torch.equal(out["second"], model.b(model.a(x)))
    assert arch.report()["outputs"] == {"second": [6, 8, 8], "first": [4, 8, 8], "p0": [4, 8, 8],
                                        "p1": [4, 8, 8]}


def test_several_inputs_each_with_its_shape(write_spec):
    arch = load(write_spec, """
        arch fusion
        input rgb: 3 x 8 x 8
        input depth: 1 x 8 x 8
        network:
            @depth -> depth_stem: conv(4, 1) as d
            @rgb -> rgb_stem: conv(4, 1)
            add(@d)
        """)
    assert arch.inputs == {"rgb": (3, 8, 8), "depth": (1, 8, 8)}
    model = arch.to_torch()
    rgb, depth = torch.randn(2, 3, 8, 8), torch.randn(2, 1, 8, 8)
    assert torch.allclose(model(rgb, depth), model.rgb_stem(rgb) + model.depth_stem(depth))
    assert "inputs rgb 3x8x8, depth 1x8x8" in str(arch.summary())


def test_op_form_join_reading_one_tensor_twice(write_spec):
    arch = load(write_spec, """
        arch twice
        input 3 x 8 x 8
        network:
            c: conv(4, 1) as x
            add(@x)
            relu
        """)
    model = arch.to_torch()
    x = torch.randn(1, 3, 8, 8)
    assert torch.allclose(model(x), torch.relu(2 * model.c(x)))
    assert not arch.graph.nodes["0"].get("inplace")  # its input is read twice


def test_paths_into_scopes_and_block_outputs(write_spec):
    arch = load(write_spec, """
        arch paths
        input 3 x 8 x 8
        block pair(c):
            first: conv(c, 1)
            second: conv(c, 1) as s
            output extra: @first
        network:
            body:
                stage1: pair(4)
                stage2: pair(4)
            concat(@body.stage1.extra, @body.stage2.s, @stage1)
        """)
    node = arch.graph.nodes["0"]
    srcs = [s for s, _ in sorted(arch.graph.in_edges("0"), key=lambda e: arch.graph.edges[e]["index"])]
    assert node["shape"] == (16, 8, 8)
    assert srcs[:2] == ["body.stage2.second", "body.stage1.first"]


def test_placement_labels_give_checkpoint_keys(write_spec):
    arch = load(write_spec, """
        arch placed
        input 3 x 8 x 8
        network:
            for i in reversed(range(3)):
                inner_blocks.{i}.0: conv(4, 1)
            block1-0: conv(4, 1)
            _: maxpool(1)
            conv(4, 1)
        """)
    keys = set(arch.to_torch().state_dict())
    assert {"inner_blocks.0.0.weight", "inner_blocks.2.0.weight", "block1-0.weight", "0.weight"} <= keys


def test_aux_outputs_join_the_dict_in_training_mode(write_spec):
    arch = load(write_spec, """
        arch auxd
        input 3 x 8 x 8
        network:
            a: conv(4, 1)
            aux side: conv(2, 1)
            output main
        """)
    model = arch.to_torch()
    x = torch.randn(1, 3, 8, 8)
    assert list(model.train()(x)) == ["main", "side"]
    assert list(model.eval()(x)) == ["main"]


def test_graph_form_prints_and_round_trips(write_spec):
    arch = load(write_spec, """
        arch rt
        input a: 3 x 8 x 8
        input b: 3 x 8 x 8
        network:
            stem: conv(4, 3, padding = 1) as s
            @b -> other.0: conv(4, 1)
            concat(@s)
            output "x": @s
            output "0"
        """)
    text = to_arch(arch)
    again = archdsl.loads(text)
    assert signature(again) == signature(arch)
    assert again.outputs == arch.outputs and again.inputs == arch.inputs


# ---- errors: located, with the names in scope --------------------------------------------

@pytest.mark.parametrize("body, message, listed", [
    ("a: conv(4, 1)\n    @b -> relu", "unknown tensor @b", "@a"),
    ("@later -> relu\n    later: conv(4, 1)", "not computed yet", "@input"),
    ("a: conv(4, 1) when false\n    @a -> relu", "was not computed", "@input"),
    ("if false:\n        a: conv(4, 1)\n    @a -> relu", "did not run", "@input"),
    ("c: conv(4, 1) as x\n    maxpool(2)\n    concat(@x)", "cannot concatenate", "@x"),
    ("output o\n    output o", "declared twice", "'o'"),
])
def test_graph_errors_are_located_and_list_names(write_spec, body, message, listed):
    path = write_spec(f"arch e\ninput 3 x 8 x 8\nnetwork:\n    {body}\n")
    with pytest.raises(SpecError) as info:
        archdsl.load(path)
    text = info.value.format()
    assert message in text and listed in text
    assert info.value.span is not None and info.value.span.line >= 4


def test_tensor_parameter_type_is_checked(write_spec):
    path = write_spec("""
        arch p
        input 3 x 8 x 8
        block up(c, @skip):
            concat(@skip)
        network:
            up(4, 3)
        """)
    with pytest.raises(SpecError, match="takes a tensor"):
        archdsl.load(path)


def test_unnamed_label_refuses_an_op_with_weights(write_spec):
    with pytest.raises(SpecError, match="needs a module name"):
        load(write_spec, "arch u\ninput 3 x 8 x 8\nnetwork:\n    _: conv(4, 1)\n")


def test_op_form_join_shape_mismatch_names_each_input(write_spec):
    with pytest.raises(ShapeError) as info:
        load(write_spec, "arch s\ninput 3 x 8 x 8\nnetwork:\n    c: conv(4, 1) as x\n    maxpool(2)\n"
                         "    add(@x)\n")
    text = info.value.format()
    assert "the live tensor: 4x4x4" in text and "@x: 4x8x8" in text


def test_hrnet_fusion_and_yolo_patterns_compile(write_spec):
    """The forms later specs need: HRNet's all-to-all fusion, YOLOv8's C2f split and a list head."""
    arch = load(write_spec, """
        arch patterns
        input 8 x 16 x 16
        block fuse_path(j, i, c):
            if j > i:
                conv(c, 1, bias = false);  batchnorm;  upsample(2 ** (j - i))
            elif j < i:
                for k in range(i - j):
                    conv(c, 3, stride = 2, padding = 1, bias = false);  batchnorm
        block c2f(c2, n):
            let c = c2 // 2
            cv1: conv(2 * c, 1) as y
            _: channel_split(2, 0) as a
            @y -> _: channel_split(2, 1) as b
            for k in range(n):
                m.{k}: conv(c, 3, padding = 1) as b
                identity as z{k}
            concat:
                @a
                @y -> _: channel_split(2, 1)
                for k in range(n):
                    @z{k}
            cv2: conv(c2, 1)
        block detect(@xs):
            for i in range(len(xs)):
                @xs[i] -> cv2.{i}: conv(4, 1) as box{i}
                output "box" + str(i): @box{i}
        network:
            x0: conv(8, 1)
            @x0 -> x1: conv(8, 3, stride = 2, padding = 1)
            for i in range(2):
                add as y{i}:
                    for j in range(2):
                        @x{j} -> fuse_layers.{i}.{j}: fuse_path(j, i, 8)
                relu as f{i}
            @f0 -> model.4: c2f(16, 2) as p3
            head: detect([@p3, @f1])
            output "p3": @head.box0
            output "p4": @head.box1
        """)
    assert arch.output_shapes == {"p3": (4, 16, 16), "p4": (4, 8, 8)}
    keys = set(arch.to_torch().state_dict())
    assert {"fuse_layers.0.1.0.weight", "fuse_layers.1.0.0.weight", "model.4.m.1.weight",
            "model.4.cv2.weight", "head.cv2.1.weight"} <= keys
    out = arch.to_torch()(torch.randn(1, 8, 16, 16))
    assert out["p4"].shape == (1, 4, 8, 8)
