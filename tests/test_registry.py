"""The op registry, argument binding, window rules, lowerings and verify() — unit by unit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from archdsl.ir.graph import IRError, verify
from archdsl.ir.ops import REGISTRY, ArgProblem, Category, OpDef, ShapeProblem, Traits, register, window_out

ROOT = Path(__file__).resolve().parent.parent


def test_every_node_emitting_op_has_exactly_one_lowering():
    from archdsl.backends.lowerings import LOWERINGS
    emitting = {name for name, op in REGISTRY.items() if op.traits.emits_node}
    assert set(LOWERINGS) == emitting
    for name, lowering in LOWERINGS.items():
        assert (lowering.module is None) != (lowering.function is None), name


def test_every_op_and_argument_is_documented():
    for op in REGISTRY.values():
        assert op.doc.strip().endswith("."), op.name
        assert isinstance(op.category, Category)
        for arg in op.args:
            assert arg.doc.strip(), f"{op.name}.{arg.name}"


def test_docs_op_table_is_generated_from_the_registry():
    from archdsl.cli.ops import markdown
    assert (ROOT / "docs" / "ops.md").read_text() == markdown(list(REGISTRY.values())), \
        "docs/ops.md is stale: run `archdsl ops --markdown > docs/ops.md`"


def test_registering_a_name_twice_is_an_error():
    with pytest.raises(ValueError, match="registered twice"):
        register(OpDef("relu", "Again.", (), lambda a, ins: ins[0], Traits(Category.ACTIVATION)))


class TestBinding:
    conv = REGISTRY["conv"]

    def test_positional_keyword_and_defaults(self):
        attrs = self.conv.bind([64, 3], {"stride": 2})
        assert attrs["out"] == 64 and attrs["kernel"] == (3, 3) and attrs["stride"] == (2, 2)
        assert attrs["padding"] == (0, 0) and attrs["groups"] == 1 and attrs["bias"] is True

    def test_integral_float_is_an_integer(self):
        assert self.conv.bind([64.0, 1], {})["out"] == 64

    @pytest.mark.parametrize("args, kwargs, arg, words", [
        ([0, 3], {}, "out", "out must be a positive integer, got 0"),
        ([64, 3], {"strde": 2}, "strde", "conv has no argument 'strde'"),
        ([64, 3, 1, 0, 1, 1, True, 9], {}, 7, "takes at most 7 positional arguments"),
        ([64], {}, None, "missing the argument 'kernel'"),
        ([64, 3], {"bias": 1}, "bias", "bias must be true or false, got an integer"),
        ([64, 3], {"padding": "valid"}, "padding", "\"same\""),
        ([64, (3, 3, 3)], {}, "kernel", "a pair of them"),
        ([64, 3, 1], {"stride": 2}, "stride", "got two values for 'stride'"),
    ])
    def test_bad_arguments_name_the_argument(self, args, kwargs, arg, words):
        with pytest.raises(ArgProblem) as info:
            self.conv.bind(args, kwargs)
        assert info.value.arg == arg and words in str(info.value)

    def test_choice_and_probability(self):
        sd = REGISTRY["stochastic_depth"]
        assert sd.bind([0.1], {})["mode"] == "row"
        with pytest.raises(ArgProblem, match="one of 'row', 'batch'"):
            sd.bind([0.1], {"mode": "col"})
        with pytest.raises(ArgProblem, match=r"a number in \[0, 1\)"):
            sd.bind([1.0], {})


@pytest.mark.parametrize("size, k, s, p, ceil, expected", [
    (112, 3, 2, 1, False, 56),     # ResNet's stem pool
    (112, 3, 2, 0, True, 56),      # GoogLeNet's ceil-mode pool
    (14, 3, 2, 0, True, 7),
    (13, 3, 2, 0, True, 6),        # the last window would start in the padding: dropped
    (7, 7, 1, 0, False, 1),
])
def test_pooling_window_rule_matches_pytorch(size, k, s, p, ceil, expected):
    torch = pytest.importorskip("torch")
    assert window_out(size, k, s, p, 1, ceil, "window") == expected
    pooled = torch.nn.MaxPool2d(k, s, p, ceil_mode=ceil)(torch.zeros(1, 1, size, size))
    assert pooled.shape[-1] == expected


def test_window_larger_than_input_is_a_shape_problem():
    with pytest.raises(ShapeProblem, match="larger than its padded input 5"):
        window_out(5, 7, 1, 0, 1, False, "kernel")


def test_ops_are_checked_against_torch_counts():
    torch = pytest.importorskip("torch")
    from archdsl.backends.lowerings import LOWERINGS
    conv = REGISTRY["conv"]
    attrs = conv.bind([32, 3], {"stride": 2, "groups": 4, "bias": False})
    module = LOWERINGS["conv"].module(attrs, (16, 20, 20), False)
    out = module(torch.zeros(1, 16, 20, 20))
    assert tuple(out.shape[1:]) == conv.shape(attrs, ((16, 20, 20),))
    assert sum(p.numel() for p in module.parameters()) == conv.params(attrs, ((16, 20, 20),), None)


class TestVerify:
    def arch(self):
        import archdsl
        return archdsl.loads("arch t\ninput 3 x 8 x 8\nnetwork:\n    conv(4, 3)\n    relu\n")

    def test_a_valid_graph_passes(self):
        verify(self.arch().graph)

    @pytest.mark.parametrize("breakage, words", [
        (lambda g, n: g.nodes[n].pop("shape"), "missing attributes ['shape']"),
        (lambda g, n: g.nodes[n].update(shape=(4, 0, 6)), "bad shape"),
        (lambda g, n: g.nodes[n].update(op="nonsense"), "unknown op 'nonsense'"),
        (lambda g, n: g.nodes[n].update(in_shapes=((9, 9, 9),)), "input shapes disagree"),
        (lambda g, n: g.add_edge(n, "input", index=0), "cycle"),
    ])
    def test_broken_invariants_raise_with_context(self, breakage, words):
        arch = self.arch()
        graph = arch.graph.copy()
        node = next(n for n, d in graph.nodes(data=True) if d["op"] == "conv")
        breakage(graph, node)
        with pytest.raises(IRError, match="invalid IR after test") as info:
            verify(graph, after="test")
        assert words in str(info.value)

    def test_verify_holds_under_python_O(self):
        code = ("import archdsl\nfrom archdsl.ir.graph import verify, IRError\n"
                "a = archdsl.loads('arch t\\ninput 3 x 8 x 8\\nnetwork:\\n    conv(4, 3)\\n')\n"
                "g = a.graph.copy()\nn = [n for n in g if g.nodes[n]['op'] == 'conv'][0]\n"
                "g.nodes[n]['op'] = 'bogus'\n"
                "try:\n    verify(g)\nexcept IRError:\n    print('raised')\n")
        out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, cwd=ROOT)
        assert out.stdout.strip() == "raised", out.stderr


def test_inplace_pass_marks_what_torchvision_does_in_place():
    import archdsl
    arch = archdsl.load("resnet18")
    marked = {d["name"] for _, d in arch.ops() if d.get("inplace")}
    assert "layer1.0.add" in marked and "0" in marked  # residual add and stem relu
    assert "fc" not in marked and not any(d["op"] == "conv" for _, d in arch.ops() if d.get("inplace"))
