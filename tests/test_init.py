"""Initialisation declared in specs: fresh networks start as their references do.

The statistical test: for every parameter tensor (matched by name) of a fresh
reference model and of the compiled spec, both built after ``torch.manual_seed(0)``,
the two samples' means and standard deviations must agree within sampling noise:
|mean_a - mean_b| <= Z * sqrt((s_a² + s_b²) / n) and |s_a - s_b| <= Z * sqrt((s_a² + s_b²) / (2n))
(the standard errors of a mean and, for a normal sample, of a standard deviation; uniform and
truncated-normal samples have lighter tails, so the bound is conservative for them), with
Z = 6, so a false alarm over all tensors of the zoo is below one in a million. A tensor that is
constant in the reference (zeros, ones, layer scale 1e-6) must equal it exactly. A 25 %
difference in standard deviation (the symptom this guards against) is caught for every tensor
of more than ~600 elements.
"""

from __future__ import annotations

import math

import pytest
import torch

import archdsl
from oracles import ORACLES, SMALL_INPUT

Z = 6.0
# A few small networks run by default; the rest (large, or slow to initialise) with --runslow.
QUICK = {"resnet18", "efficientnet_b0", "mnasnet0_5", "mobilenet_v3_small", "squeezenet1_1", "regnet_y_400mf"}
NAMES = [n if n in QUICK else pytest.param(n, marks=pytest.mark.slow) for n in sorted(ORACLES)]


def disagreements(reference: dict, ours: dict) -> list[str]:
    """Names of tensors whose mean or std differ beyond sampling noise (see the module doc)."""
    bad = []
    for name, a in reference.items():
        a, b = a.detach().double().flatten(), ours[name].detach().double().flatten()
        n = a.numel()
        if n < 2 or float(a.std()) == 0.0:  # a constant: exact
            if not torch.equal(a, b):
                bad.append(f"{name}: constant {a[0].item():g} in the reference")
            continue
        ma, mb, sa, sb = a.mean().item(), b.mean().item(), a.std().item(), b.std().item()
        pooled = sa * sa + sb * sb
        if abs(ma - mb) > Z * math.sqrt(pooled / n) or abs(sa - sb) > Z * math.sqrt(pooled / (2 * n)):
            bad.append(f"{name}: mean {mb:.4g} vs {ma:.4g}, std {sb:.4g} vs {sa:.4g} (n={n})")
    return bad


def fresh_pair(name: str, **options):
    make, _ = ORACLES[name]
    _, small = SMALL_INPUT.get(name, (None, {}))
    torch.manual_seed(0)
    reference = make(**small, **options)
    torch.manual_seed(0)
    ours = archdsl.build(name, **small, **options)
    return dict(reference.named_parameters()), dict(ours.named_parameters())


@pytest.mark.parametrize("name", NAMES)
def test_fresh_network_initialises_as_its_reference(name):
    reference, ours = fresh_pair(name)
    assert set(reference) == set(ours)
    assert disagreements(reference, ours) == []


def test_zero_init_residual_as_torchvision():
    reference, ours = fresh_pair("resnet18", zero_init_residual=True)
    assert not ours["layer1.0.bn2.weight"].any()
    assert disagreements(reference, ours) == []


def test_the_test_catches_torchs_default_init():
    """Without the spec's init (torch's defaults), resnet18 differs from torchvision's."""
    text = archdsl.spec_path("resnet18").read_text().replace(
        '    init conv.weight = kaiming_normal(mode = "fan_out", nonlinearity = "relu")\n', "")
    arch = archdsl.loads(text, "resnet18", path=str(archdsl.spec_path("resnet18")))
    torch.manual_seed(0)
    plain = dict(arch.to_torch().named_parameters())
    reference, _ = fresh_pair("resnet18")
    assert "layer1.0.conv1.weight" in " ".join(disagreements(reference, plain))


def test_declared_init_shows_in_summary_and_json():
    summary = archdsl.load("vit_b_16").summary()
    text = str(summary)
    assert "initialisation" in text and "linear.weight = xavier_uniform (24 ops)" in text
    data = summary.to_dict()
    assert {"tensor": "class_token.weight", "init": "zeros", "count": 1} in data["init"]
    row = next(r for r in data["rows"] if r["name"] == "encoder.layers.encoder_layer_0.mlp.0")
    assert row["init"] == {"weight": "xavier_uniform", "bias": "normal(std = 1e-06)"}
    assert "init" not in next(r for r in data["rows"] if r["name"] == "encoder.ln")


@pytest.mark.parametrize("line, col, words", [
    ("conv(4, 3, init = 5)", 23, "an init must be an initialiser, got an integer"),
    ("relu(init = zeros)", 17, "relu has no learnable tensors to initialise here"),
    ("conv(4, 3, bias = false, bias_init = zeros)", 42, "conv has no bias to initialise here"),
    ("conv(4, 3, init = normal(sd = 1))", 23, "normal has no argument 'sd'"),
    ("conv(4, 3, init = trunc_normal(a = 3))", 23, "trunc_normal needs a < b"),
    ("init convv.weight = zeros", 5, "unknown op 'convv' in an init rule"),
    ("init conv.scale = zeros", 5, "an init rule sets a weight or a bias, not 'scale'"),
    ("relu(inplace = 1)", 20, "inplace must be true or false"),
])
def test_init_errors_are_located(line, col, words):
    from archdsl.errors import SpecError
    with pytest.raises(SpecError) as info:
        archdsl.loads(f"arch t\ninput 3 x 8 x 8\nnetwork:\n    {line}\n", path="net.arch")
    assert words in str(info.value)
    assert (info.value.span.line, info.value.span.column) == (4, col)


def test_rules_end_with_their_block_and_ops_override_them():
    arch = archdsl.loads(
        "arch t\ninput 3 x 8 x 8\n"
        "block b():\n    init conv.weight = ones\n    inner: conv(4, 1)\n"
        "network:\n    init conv.bias = zeros\n    b()\n    after: conv(4, 1)\n"
        "    own: conv(4, 1, init = constant(2), bias_init = default)\n")
    inits = {d["name"]: {r: i.text() for r, i in d.get("init", {}).items()} for _, d in arch.ops()}
    assert inits == {"0.inner": {"weight": "ones", "bias": "zeros"}, "after": {"bias": "zeros"},
                     "own": {"weight": "constant(value = 2.0)"}}
    model = arch.to_torch()
    assert torch.all(model.own.weight == 2) and not model.after.bias.any()
