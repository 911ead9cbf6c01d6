"""The compiled torch module: fx code generation, training, aux outputs, weights loading."""

from __future__ import annotations

import pytest
import torch
import torch.fx

import archdsl
from archdsl.errors import WeightsError
from archdsl.backends.torch_fx import NetworkOutputs, StochasticDepth
from conftest import liven, max_abs_diff

SMALL = """
arch small
input 3 x 32 x 32
param num_classes = 10
block unit(c, stride = 1):
    add:
        branch:
            conv1: conv(c, 3, stride, padding = 1, bias = false);  bn1: batchnorm;  relu
            conv2: conv(c, 3, padding = 1, bias = false);  bn2: batchnorm
        shortcut when stride != 1 or in.channels != c:
            conv(c, 1, stride, bias = false);  batchnorm
    relu
network:
    stem: conv(16, 3, padding = 1) -> batchnorm -> relu
    stages: for i, c in enumerate([16, 32]):
        unit(c, stride = 1 if i == 0 else 2)
    aux side:
        adaptive_avgpool(1);  flatten;  fc: linear(num_classes)
    mul:
        identity
        branch:
            adaptive_avgpool(1);  conv(32, 1);  sigmoid
    head: adaptive_avgpool(1) -> flatten -> dropout(0.1)
    fc: linear(num_classes)
"""


@pytest.fixture
def small(write_spec):
    return archdsl.load(write_spec(SMALL))


def test_module_names_follow_the_spec(small):
    model = small.to_torch()
    keys = set(model.state_dict())
    assert {"stem.0.weight", "stem.1.running_mean", "stages.0.conv1.weight", "stages.1.shortcut.0.weight",
            "stages.1.shortcut.1.num_batches_tracked", "side.fc.weight", "fc.bias"} <= keys
    assert "stages.0.shortcut.0.weight" not in keys  # no projection where shapes agree
    assert sum(p.numel() for p in model.parameters()) == small.parameter_count()


def test_forward_is_generated_code(small):
    model = small.to_torch()
    assert isinstance(model, torch.fx.GraphModule)
    assert "def forward" in model.code and "torch.cat" not in model.code


def test_symbolic_trace_matches_eager(small):
    model = small.to_torch().eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 32, 32)
    assert max_abs_diff(traced(x), model(x)) == 0


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_symbolic_trace_of_bundled_networks(name):
    model = archdsl.build(name).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_abs_diff(traced(x), model(x)) == 0


def test_training_step_reduces_loss(small):
    model = small.to_torch().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    losses = []
    for _ in range(5):
        out = model(x)
        assert isinstance(out, NetworkOutputs) and set(out.aux) == {"side"}
        loss = torch.nn.functional.cross_entropy(out.logits, y) + 0.3 * torch.nn.functional.cross_entropy(
            out.aux["side"], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for p in model.parameters())


def test_aux_outputs_only_in_training(small):
    model = small.to_torch()
    x = torch.randn(2, 3, 32, 32)
    assert isinstance(model.train()(x), NetworkOutputs)
    out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)


def test_googlenet_aux_outputs_match_torchvision():
    import torchvision
    oracle = liven(torchvision.models.googlenet(init_weights=True, dropout=0.0, dropout_aux=0.0))
    model = archdsl.build("googlenet", weights=oracle.state_dict(), dropout=0.0, dropout_aux=0.0)
    x = torch.randn(2, 3, 64, 64)
    expected = oracle.train()(x)
    out = model.train()(x)
    assert max_abs_diff(out.logits, expected.logits) <= 1e-5
    assert max_abs_diff(out.aux["aux1"], expected.aux_logits1) <= 1e-5
    assert max_abs_diff(out.aux["aux2"], expected.aux_logits2) <= 1e-5


def test_googlenet_transform_input_matches_torchvision():
    import torchvision
    oracle = liven(torchvision.models.googlenet(init_weights=True, transform_input=True)).eval()
    model = archdsl.build("googlenet", weights=oracle.state_dict(), transform_input=True).eval()
    plain = archdsl.build("googlenet", weights=oracle.state_dict()).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_abs_diff(model(x), oracle(x)) <= 1e-5
        assert max_abs_diff(plain(x), oracle(x)) > 1e-3  # the parameter really changes the network


def test_stochastic_depth_follows_torchvision_semantics():
    from torchvision.ops import StochasticDepth as Reference
    x = torch.randn(64, 4, 2, 2)
    for mode in ("row", "batch"):
        torch.manual_seed(1)
        expected = Reference(0.3, mode).train()(x)
        torch.manual_seed(1)
        assert torch.equal(StochasticDepth(0.3, mode).train()(x), expected)
    assert torch.equal(StochasticDepth(0.3).eval()(x), x)


def test_channels_last_and_state_dict_round_trip(small):
    model = small.to_torch().eval()
    other = archdsl.build(small, weights=model.state_dict()).eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(other(x), model(x))
    cl = model.to(memory_format=torch.channels_last)
    assert max_abs_diff(cl(x.contiguous(memory_format=torch.channels_last)), other(x)) <= 1e-5


def test_weights_from_files(tmp_path, small):
    from safetensors.torch import save_file
    model = small.to_torch()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp_path / "w.safetensors")
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "w.pth")
    x = torch.randn(1, 3, 32, 32)
    for name in ("w.safetensors", "w.pth"):
        loaded = archdsl.build(small, weights=tmp_path / name).eval()
        assert torch.equal(loaded(x), model.eval()(x))


def test_weights_that_do_not_fit_are_refused(tmp_path, small):
    state = small.to_torch().state_dict()
    state.pop("fc.weight")
    with pytest.raises(WeightsError, match=r"1 missing \(e.g. fc.weight\)"):
        archdsl.build(small, weights=state)
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights"):
        archdsl.build(small, weights=tmp_path / "bad.pth")


def test_pickled_code_is_never_run(tmp_path, small):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"fc.weight": Evil()}))
    with pytest.raises(WeightsError):
        archdsl.build(small, weights=tmp_path / "evil.pth")


def test_export_and_jit_trace(small):
    model = small.to_torch().eval()
    x = torch.randn(1, 3, 32, 32)
    traced = torch.jit.trace(model, x)
    assert max_abs_diff(traced(x), model(x)) <= 1e-6
    exported = torch.export.export(model, (x,))
    assert max_abs_diff(exported.module()(x), model(x)) <= 1e-6
