"""Every scope is a callable module: the torchvision backbone recipes work on compiled networks."""

from __future__ import annotations

import pytest
import torch
import torch.fx
from torch import nn

import archdsl
from conftest import liven, max_abs_diff


@pytest.fixture(scope="module")
def resnet50_pair():
    """An archdsl ResNet-50 and torchvision's, with the same (livened) weights, in eval mode."""
    import torchvision
    torch.manual_seed(0)
    oracle = liven(torchvision.models.resnet50()).eval()
    model = archdsl.build("resnet50", weights=oracle.state_dict()).eval()
    return model, oracle


def test_every_scope_is_a_module_with_a_forward(resnet50_pair):
    model, _ = resnet50_pair
    plain = [name for name, m in model.named_modules() if type(m) is nn.Module]
    assert not plain, f"containers without a forward: {plain[:5]}"
    assert isinstance(model, torch.fx.GraphModule) and isinstance(model.layer2[0], torch.fx.GraphModule)
    assert type(model.layer2[0]).__name__ == "Bottleneck"  # a block instance is named after its block
    # chains are Sequentials, as in torchvision: indexable, sliceable, iterable
    assert isinstance(model.layer4, nn.Sequential) and isinstance(model.layer1[0].downsample, nn.Sequential)
    assert len(model.layer3) == 6 and len(model.layer3[1:4]) == 3 and list(model.layer2)[-1] is model.layer2[3]


def test_a_stage_runs_alone(resnet50_pair):
    model, oracle = resnet50_pair
    x = torch.randn(2, 1024, 8, 8)
    with torch.no_grad():
        assert max_abs_diff(model.layer4(x), oracle.layer4(x)) <= 1e-5
        assert max_abs_diff(model.layer4[1](model.layer4[0](x)), oracle.layer4[1](oracle.layer4[0](x))) <= 1e-5


def test_children_in_a_sequential(resnet50_pair):
    model, oracle = resnet50_pair
    ours = nn.Sequential(*list(model.children())[:-1])
    theirs = nn.Sequential(*list(oracle.children())[:-1])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = ours(x)
        assert out.shape == (2, 2048, 1, 1)
        assert max_abs_diff(out, theirs(x)) <= 1e-5


def test_intermediate_layer_getter(resnet50_pair):
    from torchvision.models._utils import IntermediateLayerGetter
    model, oracle = resnet50_pair
    layers = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = IntermediateLayerGetter(model, layers)(x)
        theirs = IntermediateLayerGetter(oracle, layers)(x)
    assert list(ours) == ["0", "1", "2", "3"]
    assert all(max_abs_diff(ours[k], theirs[k]) <= 1e-5 for k in ours)


def test_create_feature_extractor_with_scope_names(resnet50_pair):
    from torchvision.models.feature_extraction import create_feature_extractor
    model, oracle = resnet50_pair
    nodes = {"layer2": "c3", "layer3.5": "block", "layer4.0.downsample": "proj", "layer4": "c5"}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = create_feature_extractor(model, nodes)(x)
        theirs = create_feature_extractor(oracle, nodes)(x)
    assert set(ours) == set(nodes.values())
    assert all(max_abs_diff(ours[k], theirs[k]) <= 1e-5 for k in ours)


def test_backbone_with_fpn_under_faster_rcnn(resnet50_pair):
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    model, oracle = resnet50_pair
    layers = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
    channels = [256, 512, 1024, 2048]
    torch.manual_seed(1)
    ours = FasterRCNN(BackboneWithFPN(model, layers, channels, 64), num_classes=5, min_size=64, max_size=96)
    theirs = FasterRCNN(BackboneWithFPN(oracle, layers, channels, 64), num_classes=5, min_size=64, max_size=96)
    theirs.load_state_dict(ours.state_dict())  # same names all the way down, backbone included
    image = torch.rand(3, 64, 80)
    with torch.no_grad():
        features = ours.backbone(image[None])
        assert max_abs_diff(features["3"], theirs.backbone(image[None])["3"]) <= 1e-4
        (detections,) = ours.eval()([image])
        (expected,) = theirs.eval()([image])
    assert set(detections) == {"boxes", "labels", "scores"}
    assert detections["boxes"].shape == expected["boxes"].shape
    assert torch.equal(detections["labels"], expected["labels"])


def test_scope_with_several_outputs(write_spec):
    # An auxiliary head reading a value inside a scope: the scope returns both of its values read outside.
    path = write_spec("""
        arch twoout
        input 3 x 8 x 8
        network:
            stage:
                conv(4, 3, padding = 1)
                aux side:
                    adaptive_avgpool(1);  flatten;  fc: linear(3)
                relu
            head: adaptive_avgpool(1) -> flatten -> linear(5)
    """)
    model = archdsl.build(path)
    assert list(model.state_dict()) == ["stage.0.weight", "stage.0.bias", "stage.side.fc.weight",
                                        "stage.side.fc.bias", "head.2.weight", "head.2.bias"]
    x = torch.randn(2, 3, 8, 8)
    out = model.train()(x)
    assert out.logits.shape == (2, 5) and out.aux["stage.side"].shape == (2, 3)
    conv_out, relu_out = model.stage(x)
    assert torch.equal(relu_out, torch.relu(conv_out))
    model.eval()
    assert max_abs_diff(torch.fx.symbolic_trace(model)(x), model(x)) == 0


def test_scripting_and_export_see_the_nested_modules():
    model = archdsl.build("resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        assert max_abs_diff(torch.jit.script(model)(x), expected) <= 1e-6
        assert max_abs_diff(torch.export.export(model, (x,)).module()(x), expected) <= 1e-6
