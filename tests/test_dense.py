"""The dense-prediction zoo against its oracles: parameters, state-dict keys and every output.

Oracles: torchvision (resnet_fpn_backbone, FCN, DeepLabV3, LR-ASPP), segmentation-models-pytorch
(Unet with a ResNet encoder) and, for the paper U-Net, a reference module written here after
milesial/Pytorch-UNet. Weights are loaded by name (strict), norms are livened first.
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

import archdsl
from conftest import liven, max_abs_diff


def _fpn(backbone):
    def make():
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
        return resnet_fpn_backbone(backbone_name=backbone, weights=None)
    return make


def _segmentation(name, **options):
    def make():
        from torchvision.models import segmentation
        return getattr(segmentation, name)(weights=None, weights_backbone=None, **options)
    return make


def _smp(encoder, **options):
    def make():
        smp = pytest.importorskip("segmentation_models_pytorch")
        return smp.Unet(encoder, encoder_weights=None, **options)
    return make


class _DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.double_conv(x)


class _Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), _DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class _Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = _DoubleConv(cin, cout)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], 1))


class ReferenceUNet(nn.Module):
    """The paper U-Net in milesial/Pytorch-UNet's layout (bilinear=False, padded convs, BatchNorm)."""

    def __init__(self, in_channels=3, num_classes=2, widths=(64, 128, 256, 512, 1024)):
        super().__init__()
        self.inc = _DoubleConv(in_channels, widths[0])
        for i in range(1, len(widths)):
            self.add_module(f"down{i}", _Down(widths[i - 1], widths[i]))
        for k, i in enumerate(reversed(range(len(widths) - 1)), 1):
            self.add_module(f"up{k}", _Up(widths[i + 1], widths[i]))
        self.outc = nn.Module()
        self.outc.conv = nn.Conv2d(widths[0], num_classes, 1)
        self.depth = len(widths) - 1

    def forward(self, x):
        skips = [self.inc(x)]
        for i in range(1, self.depth + 1):
            skips.append(getattr(self, f"down{i}")(skips[-1]))
        x = skips.pop()
        for k in range(1, self.depth + 1):
            x = getattr(self, f"up{k}")(x, skips.pop())
        return self.outc.conv(x)


# bundled name → (oracle constructor, build parameters for the small test, slow)
DENSE = {
    "resnet18_fpn": (_fpn("resnet18"), {}, False),
    "resnet50_fpn": (_fpn("resnet50"), {}, False),
    "resnet101_fpn": (_fpn("resnet101"), {}, True),
    "fcn_resnet50": (_segmentation("fcn_resnet50", aux_loss=True), {}, False),
    "fcn_resnet101": (_segmentation("fcn_resnet101", aux_loss=True), {}, True),
    "deeplabv3_resnet50": (_segmentation("deeplabv3_resnet50", aux_loss=True), {}, False),
    "deeplabv3_resnet101": (_segmentation("deeplabv3_resnet101", aux_loss=True), {}, True),
    "deeplabv3_mobilenet_v3_large": (_segmentation("deeplabv3_mobilenet_v3_large", aux_loss=True), {}, False),
    "lraspp_mobilenet_v3_large": (_segmentation("lraspp_mobilenet_v3_large"), {}, False),
    "unet_resnet34": (_smp("resnet34"), {}, False),
    "unet_resnet50": (_smp("resnet50"), {}, False),
    "unet": (ReferenceUNet, {}, False),
}
SIDE = 32


def _names():
    return [pytest.param(n, marks=pytest.mark.slow) if DENSE[n][2] else n for n in DENSE]


@torch.no_grad()
def liven_frozen(model: nn.Module, side: int) -> nn.Module:
    """Random affine parameters for every FrozenBatchNorm2d, statistics measured on a random batch."""
    from torchvision.ops import FrozenBatchNorm2d
    g = torch.Generator().manual_seed(1)
    hooks = []

    def measure(norm, args):
        x = args[0]
        norm.running_mean.copy_(x.mean((0, 2, 3)))
        norm.running_var.copy_(x.var((0, 2, 3)))

    for norm in model.modules():
        if isinstance(norm, FrozenBatchNorm2d):
            norm.weight.copy_(torch.rand(norm.weight.shape, generator=g) + 0.5)
            norm.bias.copy_(torch.randn(norm.bias.shape, generator=g) * 0.1)
            hooks.append(norm.register_forward_pre_hook(measure))
    model(torch.randn(8, 3, side, side, generator=g))
    for hook in hooks:
        hook.remove()
    return model


def _as_dict(out) -> OrderedDict:
    return OrderedDict(out) if isinstance(out, dict) else OrderedDict(output=out)


def test_every_dense_name_is_bundled():
    assert set(DENSE) <= set(archdsl.list_models())


@pytest.mark.parametrize("name", _names())
def test_dense_parameter_count_equals_oracle(name):
    make, params, _ = DENSE[name]
    with torch.device("meta"):
        oracle = make()
    assert archdsl.load(name, **params).parameter_count() == sum(p.numel() for p in oracle.parameters())


@pytest.mark.parametrize("name", _names())
def test_dense_outputs_equal_oracle_with_its_weights(name):
    make, params, _ = DENSE[name]
    oracle = liven_frozen(liven(make(), SIDE), SIDE).eval()
    arch = archdsl.load(name, input_shape=(3, SIDE, SIDE), **params)
    model = arch.to_torch().eval()
    model.load_state_dict(oracle.state_dict())  # strict: by name, every key on both sides
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        expected, got = _as_dict(oracle(x)), _as_dict(model(x))
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert max_abs_diff(value[0], value[1]) > 1e-5, f"the oracle's {key!r} must depend on its input"
        assert got[key].shape == value.shape and max_abs_diff(got[key], value) <= 1e-5, key
        assert tuple(value.shape[1:]) == arch.output_shapes[key]


def test_smp_unet_depth_is_a_parameter():
    """A shallower encoder: smp keeps the unused stages' weights; the rest load by name and agree."""
    make = _smp("resnet34", encoder_depth=4, decoder_channels=[128, 64, 32, 16])
    oracle = liven(make(), SIDE).eval()
    model = archdsl.build("unet_resnet34", encoder_depth=4, decoder_channels=[128, 64, 32, 16]).eval()
    state = oracle.state_dict()
    assert {k for k in state if k not in model.state_dict()} == {k for k in state if k.startswith("encoder.layer4.")}
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("encoder.layer4.")})
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        assert max_abs_diff(model(x), oracle(x)) <= 1e-5


def test_unet_depth_is_a_parameter():
    widths = [8, 16, 32]
    oracle = liven(ReferenceUNet(widths=widths), 32).eval()
    model = archdsl.build("unet", widths=widths).eval()
    model.load_state_dict(oracle.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert max_abs_diff(model(x), oracle(x)) <= 1e-5


@pytest.mark.slow
def test_full_size_outputs_equal_oracles():
    """FCN and DeepLabV3 at 520x520, the FPN at 800x800, every output."""
    for name, side in (("fcn_resnet50", 520), ("deeplabv3_resnet50", 520), ("resnet50_fpn", 800)):
        make, params, _ = DENSE[name]
        oracle = liven_frozen(liven(make(), 64), 64).eval()
        model = archdsl.load(name, **params).to_torch().eval()
        model.load_state_dict(oracle.state_dict())
        x = torch.randn(1, 3, side, side)
        with torch.no_grad():
            expected, got = _as_dict(oracle(x)), _as_dict(model(x))
        assert list(got) == list(expected)
        for key, value in expected.items():
            assert max_abs_diff(got[key], value) <= 1e-5, (name, key)


def test_no_bundled_spec_reads_a_tensor_by_number():
    from archdsl.api import spec_path
    import re
    for name in DENSE:
        text = spec_path(name).read_text()
        assert not re.search(r"@\d", text), name


def test_summary_json_and_diagram_show_every_output_and_the_skip_edges(capsys):
    from archdsl.backends.dot import to_dot
    from archdsl.cli import main
    arch = archdsl.load("resnet18_fpn")
    assert main(["summary", "resnet18_fpn", "--json"]) == 0
    import json
    report = json.loads(capsys.readouterr().out)
    assert report["outputs"] == {"0": [256, 200, 200], "1": [256, 100, 100], "2": [256, 50, 50],
                                 "3": [256, 25, 25], "pool": [256, 13, 13]}
    assert "outputs '0' 256x200x200, '1' 256x100x100" in str(arch.summary())
    dot = to_dot(arch)
    for key, shape in report["outputs"].items():
        assert f'label="{key} {"×".join(map(str, shape))}"' in dot
    # the lateral (skip) edge from layer1's last block into the finest inner block
    graph = arch.graph
    assert graph.has_edge("body.layer1.1.relu", "fpn.inner_blocks.0.0") or any(
        graph.has_edge(src, "fpn.inner_blocks.0.0") and src.startswith("body.layer1.") for src in graph)


@pytest.mark.parametrize("name", ["resnet18_fpn", "unet", "lraspp_mobilenet_v3_large"])
def test_printer_round_trips_graph_networks(name):
    from archdsl.backends.arch_text import signature, to_arch
    arch = archdsl.load(name)
    again = archdsl.loads(to_arch(arch))
    assert signature(again) == signature(arch) and again.outputs == arch.outputs
