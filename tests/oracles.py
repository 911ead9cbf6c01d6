"""The reference implementations every bundled name is checked against.

Each entry: bundled name → (constructor of the oracle model, small test input side).
Oracles are torchvision (or timm) models; the compiler never uses them.
"""

from __future__ import annotations


def _tv(name, **kwargs):
    def make(**options):
        import torchvision
        return torchvision.models.get_model(name, **kwargs, **options)
    return make


def _timm(name):
    def make(**options):
        import timm
        return timm.create_model(name, pretrained=False, **options)
    return make


ORACLES: dict = {}
for _name in ["alexnet"] + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]:
    ORACLES[_name] = (_tv(_name), 64)
for _name in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
              "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2"]:
    ORACLES[_name] = (_tv(_name), 64)
ORACLES["googlenet"] = (_tv("googlenet", init_weights=True), 64)
ORACLES["inception_v3"] = (_tv("inception_v3", init_weights=True), 299)
for _name in ["squeezenet1_0", "squeezenet1_1", "densenet121", "densenet161", "densenet169",
              "densenet201", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5",
              "shufflenet_v2_x2_0", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3",
              "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]:
    ORACLES[_name] = (_tv(_name), 64)
for _b in range(8):
    ORACLES[f"efficientnet_b{_b}"] = (_tv(f"efficientnet_b{_b}"), 64)
for _size in ("s", "m", "l"):
    ORACLES[f"efficientnet_v2_{_size}"] = (_tv(f"efficientnet_v2_{_size}"), 64)
ORACLES["xception"] = (_timm("legacy_xception"), 64)

# The smallest input a network takes, for the output comparison: Inception v3 takes 75x75
# without its auxiliary head (whose 5x5 conv needs 299x299); the head is compared in test_backend.
SMALL_INPUT = {"inception_v3": (75, {"aux_logits": False})}

# Names whose spec input side is a `resolution` parameter (the rest are fixed at 224).
FIXED_INPUT = {"alexnet", "googlenet"} | {n for n in ORACLES if n.startswith(("vgg", "res", "wide"))}

def _regnet(name):
    """torchvision's RegNet; its block widths are computed with tensors, which must not be on "meta"."""
    def make(**options):
        import torch
        import torchvision
        from unittest import mock
        from torchvision.models import regnet
        original = regnet.BlockParams.from_init_params.__func__

        def widths_on_cpu(cls, *args, **kwargs):
            with torch.device("cpu"):
                return original(cls, *args, **kwargs)

        with mock.patch.object(regnet.BlockParams, "from_init_params", classmethod(widths_on_cpu)):
            return torchvision.models.get_model(name, **options)
    return make


REGNETS = [f"regnet_{kind}_{size}" for kind, sizes in (
    ("y", ["400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf"]),
    ("x", ["400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf"])) for size in sizes]
for _name in REGNETS:
    ORACLES[_name] = (_regnet(_name), 64)
for _name in ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large"):
    ORACLES[_name] = (_tv(_name), 32)  # the smallest input: four stride-2+ stages leave 1x1
for _name in ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"):
    ORACLES[_name] = (_tv(_name), 224)  # ViT's position embedding fixes the input size
FIXED_INPUT |= {n for n in ORACLES if n.startswith("vit")}


# The size tier: networks of more than 60 M parameters run their output comparison only with
# ARCHDSL_SLOW=1 or `-m slow`; their parameter counts are always checked.
# tests/test_zoo.py::test_slow_tier_is_the_largest_networks keeps this list honest.
SLOW_PARAMS = 60_000_000
SLOW = {"alexnet", "wide_resnet50_2", "wide_resnet101_2", "resnet152", "resnext101_32x8d",
        "resnext101_64x4d", "efficientnet_b7", "efficientnet_v2_l", "convnext_base", "convnext_large",
        "regnet_x_32gf", "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf"} | {
    n for n in ORACLES if n.startswith("vgg")} | {f"vit_{v}" for v in ("b_16", "b_32", "l_16", "l_32", "h_14")}
# ... and those whose output comparison takes over ~5 s on two cores (ViT at 224, wide ConvNeXts, RegNets).
SLOW |= ({n for n in ORACLES if n.startswith(("vit", "convnext"))} - {"convnext_tiny"}) \
    | (set(REGNETS) - {"regnet_x_400mf", "regnet_y_400mf", "regnet_x_800mf", "regnet_y_800mf"})
