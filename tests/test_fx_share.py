"""Identical block instances share generated code; nothing observable changes."""

from __future__ import annotations

import copy
import operator
import pickle
import warnings

import pytest
import torch
from torch import fx, nn

import archdsl
from archdsl.backends import fx_share
from archdsl.backends.fx_share import CodeShare, graph_key
from archdsl.backends.torch_fx import generated_code
from conftest import max_abs_diff


def graph_modules(module: nn.Module) -> dict:
    return {path: m for path, m in module.named_modules() if isinstance(m, fx.GraphModule)}


def build(spec, shared: bool = True, seed: int = 0, monkeypatch=None, **params):
    """``archdsl.build`` on the CPU with a fixed seed; ``shared=False`` turns code sharing off."""
    if not shared:
        monkeypatch.setattr(fx_share, "graph_key", lambda graph: None)
    torch.manual_seed(seed)
    model = archdsl.build(spec, **params).eval()
    if not shared:
        monkeypatch.undo()
    return model


def test_identical_blocks_share_one_forward():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # sharing must never fall back silently in tests
        with torch.device("meta"):
            model = archdsl.build("resnet50")
    a, b, first = model.layer1[1], model.layer3[4], model.layer1[0]
    assert type(a) is not type(b)  # each GraphModule keeps its own class, as torch.fx makes it
    assert type(a).forward is type(b).forward and type(a).forward.__code__ is type(b).forward.__code__
    assert a.code is b.code
    assert type(first).forward is not type(a).forward  # a block with a downsample branch has its own code
    forwards = {type(m).forward for m in graph_modules(model).values()}
    assert len(graph_modules(model)) == 17 and len(forwards) == 3  # the network, blocks with and without downsample


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "efficientnet_b0", "googlenet", "inception_v3",
                                  "mobilenet_v3_large", "hrnet_w18_small", "yolov8n", "convnext_tiny", "unet"])
def test_shared_code_is_what_each_graph_prints(name):
    with torch.device("meta"):
        model = archdsl.build(name)
    modules = graph_modules(model)
    by_forward, by_code = {}, {}
    for path, m in modules.items():
        assert m.code == m.graph.python_code("self").src, path
        by_forward.setdefault(type(m).forward, set()).add(path)
        by_code.setdefault(m.code, set()).add(path)
    assert sorted(map(sorted, by_forward.values())) == sorted(map(sorted, by_code.values()))


def test_features_only_and_parts_share_within_each_part():
    with torch.device("meta"):
        backbone = archdsl.create_model("resnet50", features_only=True)
    modules = graph_modules(backbone)
    for m in modules.values():
        assert m.code == m.graph.python_code("self").src
    assert len({type(m).forward for m in modules.values()}) < len(modules)


def _graph_of(fn, *args) -> fx.Graph:
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(fn, (x, *args)))
    return graph


def _scale(factor):
    def scale(x):
        return x * factor
    return scale


def test_same_printed_code_of_different_functions_is_not_shared():
    # Both call a function named `scale`: the source prints the same, the functions differ.
    share = CodeShare()
    twice = share.graph_module(nn.Module(), _graph_of(_scale(2)), "A")
    thrice = share.graph_module(nn.Module(), _graph_of(_scale(3)), "A")
    assert twice.code == thrice.code
    assert type(twice).forward is not type(thrice).forward
    x = torch.ones(2)
    assert twice(x).tolist() == [2, 2] and thrice(x).tolist() == [3, 3]
    assert share.compiled == 2 and share.shared == 0


@pytest.mark.parametrize("constant", [1, True, 1.0, 0.0, -0.0, (1,), [1], None])
def test_constants_equal_in_python_but_printed_differently_are_not_shared(constant):
    share = CodeShare()
    first = share.graph_module(nn.Module(), _graph_of(operator.add, 1), "A")
    other = share.graph_module(nn.Module(), _graph_of(operator.add, constant), "A")
    assert (type(first).forward is type(other).forward) == (type(constant) is int and constant == 1)
    assert other.code == other.graph.python_code("self").src


def test_a_graph_with_metadata_keeps_its_own_code():
    graph = _graph_of(operator.add, 1)
    assert graph_key(graph) is not None
    next(iter(graph.nodes)).meta["stack_trace"] = "File x.py, line 1"
    assert graph_key(graph) is None


@pytest.mark.parametrize("name", ["resnet18", pytest.param("efficientnet_b0", marks=pytest.mark.slow)])
def test_outputs_and_everything_printed_are_unchanged(name, monkeypatch):
    x = torch.randn(2, 3, 32, 32)
    shared, plain = build(name), build(name, shared=False, monkeypatch=monkeypatch)
    assert len({type(m).forward for m in graph_modules(shared).values()}) < len(graph_modules(shared))
    assert len({type(m).forward for m in graph_modules(plain).values()}) == len(graph_modules(plain))
    assert str(shared) == str(plain) and generated_code(shared) == generated_code(plain)
    state, reference = shared.state_dict(), plain.state_dict()
    assert list(state) == list(reference) and all(torch.equal(state[k], reference[k]) for k in state)
    for path, m in graph_modules(shared).items():
        assert m.code == graph_modules(plain)[path].code
    with torch.no_grad():
        assert max_abs_diff(shared(x), plain(x)) == 0


def test_a_recompiled_block_changes_alone():
    model = build("resnet18")
    sibling, edited = model.layer1[0], model.layer1[1]
    assert type(sibling).forward is type(edited).forward
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        before, edited_before = sibling(x), edited(x)
        output = next(n for n in edited.graph.nodes if n.op == "output")
        with edited.graph.inserting_before(output):
            output.args = (edited.graph.call_function(torch.neg, (output.args[0],)),)
        edited.recompile()  # torch.fx's own recompile: this module alone changes
        assert "torch.neg" in edited.code and "torch.neg" not in sibling.code
        assert type(sibling).forward is not type(edited).forward
        assert max_abs_diff(sibling(x), before) == 0
        assert max_abs_diff(edited(x), -edited_before) == 0


def test_copies_and_pickles_compute_the_same():
    # deepcopy and pickling recompile every GraphModule (torch.fx's own way): the copies no longer share.
    model = build("resnet18")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        assert max_abs_diff(copy.deepcopy(model)(x), expected) == 0
        assert max_abs_diff(pickle.loads(pickle.dumps(model))(x), expected) == 0
        assert max_abs_diff(model(x), expected) == 0


@pytest.mark.slow  # dynamo tracing: ~5 s
def test_torch_compile_traces_shared_blocks():
    model = build("resnet18")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        assert max_abs_diff(compiled(x), expected) <= 1e-6


def test_falls_back_loudly_when_torch_fx_compiles_differently(monkeypatch):
    # A torch whose recompile sets one more attribute than sharing repeats: every module compiles its own.
    recompile = fx.GraphModule.recompile

    def recompile_with_more(self):
        code = recompile(self)
        self.extra_state_of_a_newer_torch = True
        return code

    monkeypatch.setattr(fx.GraphModule, "recompile", recompile_with_more)
    with pytest.warns(RuntimeWarning, match="no longer shared"):
        model = build("resnet18")
    modules = graph_modules(model)
    assert all(m.extra_state_of_a_newer_torch for m in modules.values())
    assert len({type(m).forward for m in modules.values()}) == len(modules)
    monkeypatch.undo()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert max_abs_diff(model(x), build("resnet18")(x)) == 0
