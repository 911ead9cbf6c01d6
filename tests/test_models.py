"""timm's interface: create_model, features_only / feature_info, forward_features / forward_head, classifier reset."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import archdsl
from archdsl.errors import ArchError, WeightsError
from conftest import liven, max_abs_diff, place_published_weights


# Feature pyramids of the convolutional classifiers (and HRNet, YOLOv8-cls); the dense-prediction
# networks already return their maps as outputs, and ViT's tokens have no spatial stages.
_DENSE = ("fcn_", "deeplabv3_", "lraspp_", "unet", "vit_")
FEATURE_NAMES = [n for n in archdsl.list_models() if not n.startswith(_DENSE) and not n.endswith("_fpn")
                 and n not in {f"yolov8{s}" for s in "nsmlx"}]


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_features_only_outputs_match_feature_info(name):
    with torch.device("meta"):
        model = archdsl.create_model(name, features_only=True)
        side = model.arch.input_shape[-1]
        outs = model(torch.empty(1, *model.arch.input_shape))
    info = model.feature_info
    assert len(outs) == len(info) >= 3
    assert [o.shape[1] for o in outs] == info.channels()
    # nominal reductions, as timm reports them: AlexNet's 13x13 map of a 224 input is "16"
    assert [2 ** round(math.log2(side / o.shape[-1])) for o in outs] == info.reduction()
    assert info.reduction() == sorted(set(info.reduction()))
    assert set(model.state_dict()) < set(_keys(name))


def _keys(name):
    with torch.device("meta"):
        return archdsl.build(name).state_dict().keys()


def _timm_pair(ours_name, timm_name):
    """Our features_only model and timm's, with the same (livened) weights, mapped in order and shape."""
    timm = pytest.importorskip("timm")
    ours = archdsl.create_model(ours_name, features_only=True)
    theirs = timm.create_model(timm_name, features_only=True, pretrained=False)
    mine, other = ours.state_dict(), theirs.state_dict()
    assert len(mine) == len(other)
    assert all(a.shape == b.shape for a, b in zip(mine.values(), other.values()))
    for ours_bn, their_bn in zip([m for m in ours.modules() if isinstance(m, nn.BatchNorm2d)],
                                 [m for m in theirs.modules() if isinstance(m, nn.BatchNorm2d)]):
        their_bn.eps = ours_bn.eps  # torchvision's MobileNet/EfficientNet BatchNorm eps; timm's default differs
    liven(ours)
    theirs.load_state_dict(dict(zip(other, ours.state_dict().values())))
    return ours.eval(), theirs.eval()


@pytest.mark.parametrize("ours_name, timm_name", [
    ("resnet50", "resnet50"), ("efficientnet_b0", "efficientnet_b0"), ("mobilenet_v2", "mobilenetv2_100"),
    ("mobilenet_v3_large", "mobilenetv3_large_100")])
def test_features_equal_timm_features_only(ours_name, timm_name):
    ours, theirs = _timm_pair(ours_name, timm_name)
    assert ours.feature_info.channels() == theirs.feature_info.channels()
    assert ours.feature_info.reduction() == theirs.feature_info.reduction()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(ours(x), theirs(x)):
            assert a.shape == b.shape and max_abs_diff(a, b) <= 1e-5


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "squeezenet1_1", "googlenet"])
def test_forward_head_of_forward_features_is_forward(name):
    model = archdsl.create_model(name).eval()
    liven(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.dim() == 4
        assert torch.equal(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape[1] == model.num_features


def test_reset_classifier_gives_pooled_features():
    model = archdsl.create_model("resnet18").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)
        assert isinstance(model.get_classifier(), nn.Identity)
        assert torch.equal(model(x), pooled) and pooled.shape == (2, 512)
        model.reset_classifier(7)
        assert model(x).shape == (2, 7) and model.get_classifier() is model.fc
        assert "fc.weight" in model.state_dict()


def test_create_model_options():
    model = archdsl.create_model("resnet18", num_classes=10, in_chans=1)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 10)
    assert model.conv1.weight.shape[1] == 1 and model.num_classes == 10
    assert archdsl.create_model("efficientnet_b0", drop_rate=0.5, drop_path_rate=0.3).classifier[0].p == 0.5
    assert archdsl.create_model("resnet18", num_classes=0)(torch.randn(1, 3, 64, 64)).shape == (1, 512)
    backbone = archdsl.create_model("resnet50", features_only=True, out_indices=(2, 4))
    assert backbone.feature_info.channels() == [512, 2048]
    assert "fc.weight" not in backbone.state_dict()
    with pytest.raises(ArchError, match="out_indices"):
        archdsl.create_model("resnet18", features_only=True, out_indices=(7,))
    with pytest.raises(ArchError, match="drop_path_rate"):
        archdsl.create_model("resnet18", drop_path_rate=0.1)


def test_list_models_takes_a_pattern():
    assert archdsl.list_models("resnet1*") == ["resnet101", "resnet101_fpn", "resnet152", "resnet18",
                                                "resnet18_fpn"]
    assert archdsl.list_models("nothing*") == []
    assert set(archdsl.list_models("resnet*", pretrained=True)) >= {"resnet18", "resnet50"}


def test_pretrained_weights_load_from_the_torch_cache(tmp_path, monkeypatch):
    import torchvision
    oracle = liven(torchvision.models.resnet18()).eval()
    entry = place_published_weights(tmp_path, monkeypatch, "resnet18", "DEFAULT", oracle.state_dict())
    model = archdsl.create_model("resnet18", pretrained=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_abs_diff(model(x), oracle(x)) <= 1e-5
    assert model.pretrained_cfg["categories"][0] == "tench" and model.pretrained_cfg["file"] == entry["file"]
    tuned = archdsl.create_model("resnet18", pretrained=True, num_classes=5)  # a fresh classifier
    assert torch.equal(tuned.layer4[1].conv2.weight, model.layer4[1].conv2.weight)
    assert tuned.fc.weight.shape == (5, 512)


def test_pretrained_weights_missing_or_damaged(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match=r"resnet18-f37072fd\.pth not found.*download\.pytorch\.org.*checkpoints"):
        archdsl.create_model("resnet18", pretrained=True)
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "resnet18-f37072fd.pth").write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match="does not match"):
        archdsl.create_model("resnet18", weights="IMAGENET1K_V1")
    with pytest.raises(WeightsError, match="published: DEFAULT, IMAGENET1K_V1"):
        archdsl.create_model("resnet18", weights="IMAGENET1K_V9")


def test_transforms_follow_the_published_entry():
    from PIL import Image
    preprocess = archdsl.transforms("resnet50", "IMAGENET1K_V2")
    out = preprocess(Image.new("RGB", (300, 260), (124, 116, 104)))
    assert out.shape == (3, 224, 224) and out.abs().max() < 0.02  # the ImageNet mean maps to ~0
