"""The resolution ops against torch: values, shapes, parameters, buffers and MACs."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import archdsl
from archdsl.errors import ShapeError, SpecError


def build(write_spec, body: str, side: int = 8, channels: int = 8):
    arch = archdsl.load(write_spec(f"arch op\ninput {channels} x {side} x {side}\nnetwork:\n    {body}\n"))
    return arch, arch.to_torch().eval()


def torch_macs(fn, *args) -> int:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("spec, reference", [
    ("upsample(2)", lambda x: F.interpolate(x, scale_factor=2, mode="nearest")),
    ("upsample((2, 3))", lambda x: F.interpolate(x, scale_factor=(2, 3), mode="nearest")),
    ('upsample(2, mode = "bilinear", align_corners = true)',
     lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)),
    ('resize((5, 11), mode = "bilinear", align_corners = false)',
     lambda x: F.interpolate(x, size=(5, 11), mode="bilinear", align_corners=False)),
    ("pixel_shuffle(2)", lambda x: F.pixel_shuffle(x, 2)),
    ("pixel_unshuffle(2)", lambda x: F.pixel_unshuffle(x, 2)),
])
def test_parameterless_resolution_ops_match_torch(write_spec, spec, reference):
    arch, model = build(write_spec, spec)
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        expected = reference(x)
        assert torch.equal(model(x), expected)
    assert arch.output_shape == tuple(expected.shape[1:])
    assert arch.parameter_count() == 0 and arch.macs() == 0 == torch_macs(reference, x)


def test_resize_like_a_named_tensor_reads_its_size_at_run_time(write_spec):
    arch, model = build(write_spec, 's: conv(4, 1)\n    maxpool(2)\n    resize(like = @s, mode = "bilinear")', 9)
    assert arch.output_shape == (4, 9, 9)
    x = torch.randn(1, 8, 13, 13)  # another input size: the size follows @s
    with torch.no_grad():
        expected = F.interpolate(F.max_pool2d(model.s(x), 2), size=(13, 13), mode="bilinear")
        assert torch.equal(model(x), expected)


@pytest.mark.parametrize("args", [
    dict(kernel=2, stride=2), dict(kernel=3, stride=2, padding=1, output_padding=1),
    dict(kernel=3, stride=1, padding=1, groups=4, bias=False), dict(kernel=3, stride=2, dilation=2),
])
def test_conv_transpose_matches_torch(write_spec, args):
    text = ", ".join(f"{k} = {str(v).lower()}" for k, v in args.items())
    arch, model = build(write_spec, f"up: conv_transpose(16, {text})")
    options = {"bias": True, **args}
    reference = torch.nn.ConvTranspose2d(8, 16, options.pop("kernel"), **options)
    reference.load_state_dict(model.up.state_dict())
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        expected = reference(x)
        assert torch.allclose(model(x), expected, atol=1e-6)
    assert arch.output_shape == tuple(expected.shape[1:])
    assert arch.parameter_count() == sum(p.numel() for p in reference.parameters())
    assert arch.macs() == torch_macs(reference, x[:1])


def test_frozen_batchnorm_matches_torchvision(write_spec):
    from torchvision.ops import FrozenBatchNorm2d
    arch, model = build(write_spec, "bn: frozen_batchnorm")
    reference = FrozenBatchNorm2d(8)
    g = torch.Generator().manual_seed(1)
    for name in ("weight", "bias", "running_mean"):
        getattr(reference, name).copy_(torch.randn(8, generator=g))
    reference.running_var.copy_(torch.rand(8, generator=g) + 0.5)
    model.load_state_dict(reference.state_dict(prefix="bn."))
    x = torch.randn(2, 8, 8, 8)
    assert torch.allclose(model(x), reference(x), atol=1e-6)
    assert arch.parameter_count() == 0 and arch.buffer_count() == 32
    assert set(model.state_dict()) == {f"bn.{k}" for k in reference.state_dict()}
    # a trained BatchNorm's state dict loads too (its counter is dropped, as torchvision does)
    trained = torch.nn.BatchNorm2d(8).state_dict()
    model.load_state_dict({f"bn.{k}": v for k, v in trained.items()})


@pytest.mark.parametrize("body, message", [
    ("upsample(2, align_corners = true)", "align_corners applies only"),
    ("resize()", "exactly one of size"),
    ("resize(like = 3)", "like must be a tensor"),
    ("pixel_shuffle(3)", "divisible by 9"),
    ("conv_transpose(4, 3, stride = 2, output_padding = 2)", "output_padding 2 must be smaller"),
])
def test_resolution_op_errors_are_located(write_spec, body, message):
    with pytest.raises((ShapeError, SpecError), match=message) as info:
        build(write_spec, body)
    assert info.value.span is not None and info.value.span.line == 4
