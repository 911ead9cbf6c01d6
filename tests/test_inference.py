"""Inference passes and the eval-only back end: every pass keeps every bundled network's outputs."""

from __future__ import annotations

import pytest
import torch

import archdsl
from archdsl.backends.inference import compile_inference, derive_state, reference_state
from archdsl.ir.passes import INFERENCE_PIPELINE, changes, run_pipeline
from conftest import max_abs_diff, max_abs_value

# One small network per family runs in the quick suite; the rest of the zoo is marked slow.
QUICK = {"resnet18", "googlenet", "squeezenet1_1", "shufflenet_v2_x0_5", "mnasnet0_5", "mobilenet_v2",
         "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"}
# Small inputs that every bundled network takes (Inception v3 needs 75 without its aux head).
SIDE = {"inception_v3": 75, "googlenet": 64, "efficientnet_b0": 32, "mobilenet_v2": 32,
        "mnasnet0_5": 32, "shufflenet_v2_x0_5": 32, "mobilenet_v3_small": 32, "convnext_tiny": 32}


@torch.no_grad()
def _liven_norms(module: torch.nn.Module, seed: int = 0) -> None:
    """Random affine and running statistics on every BatchNorm, so a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.weight.copy_(torch.rand(n, generator=g, dtype=m.weight.dtype) + 0.5)
            m.bias.copy_(torch.randn(n, generator=g, dtype=m.bias.dtype) * 0.1)
            m.running_mean.copy_(torch.randn(n, generator=g, dtype=m.running_mean.dtype) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g, dtype=m.running_var.dtype) + 0.5)


def _reference(name: str):
    arch = archdsl.load(name)
    side = SIDE.get(name, arch.input_shape[-1] if name.startswith("vit") else 64)  # ViT's tokens are fixed
    reference = arch.to_torch()
    _liven_norms(reference)
    return arch, reference.eval(), torch.randn(2, 3, side, side)


def _marks(name):
    return [] if name in QUICK else [pytest.mark.slow]


NAMES = archdsl.list_models()


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in NAMES])
def test_each_inference_pass_preserves_outputs(name):
    """After each pass in turn, the eval-only module equals eager within 1e-4 of the output's scale.

    float32 (float64 convolutions are too slow on CPU for every network): a
    fold rounds differently from BatchNorm, hence the tolerance relative to
    the output's largest magnitude.
    """
    arch, reference, x = _reference(name)
    state = reference.state_dict()
    with torch.no_grad():
        expected = reference(x)
        tolerance = 1e-4 * max_abs_value(expected)
        before = arch
        for p in INFERENCE_PIPELINE:
            after = run_pipeline(before, (p,))
            if changes(before, after):  # a pass that changed nothing needs no second look
                module = compile_inference(after, state)
                assert max_abs_diff(module(x), expected) <= tolerance, f"after pass {p.name!r}"
            before = after


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "efficientnet_b0", "vgg16_bn",
                                  "mobilenet_v3_large", "inception_v3"])
def test_folded_network_has_no_batchnorm_or_dropout(name):
    optimised = run_pipeline(archdsl.load(name), INFERENCE_PIPELINE)
    ops = {d["op"] for _, d in optimised.ops()}
    assert not ops & {"batchnorm", "dropout", "stochastic_depth"}
    assert not optimised.aux_outputs


def test_input_affine_folds_into_a_padding_free_conv():
    """Inception v3's input re-normalisation folds into its first (unpadded) conv, exactly."""
    arch = archdsl.load("inception_v3", transform_input=True, aux_logits=False)
    optimised = run_pipeline(arch, INFERENCE_PIPELINE)
    assert "channel_affine" not in {d["op"] for _, d in optimised.ops()}
    rules = [s["rule"] for s in optimised.graph.graph["derivations"]]
    assert rules[:2] == ["in_shift", "in_scale"]
    reference = arch.to_torch()
    _liven_norms(reference)
    reference.eval()
    x = torch.randn(1, 3, 75, 75)
    with torch.no_grad():
        expected = reference(x)
        got = compile_inference(optimised, reference.state_dict())(x)
    assert max_abs_diff(got, expected) <= 1e-4 * expected.abs().max().item()


def test_input_affine_stays_before_a_padded_conv():
    """GoogLeNet's first conv pads: zeros would see the shift, so the affine is kept."""
    optimised = run_pipeline(archdsl.load("googlenet", transform_input=True), INFERENCE_PIPELINE)
    assert "channel_affine" in {d["op"] for _, d in optimised.ops()}


def test_oneDNN_float32_module_matches_eager():
    """The float32 CPU path (fused conv, pre-packed weights, channels_last) against eager."""
    arch = archdsl.load("resnet18")
    reference = arch.to_torch()
    _liven_norms(reference)
    reference.eval()
    model = archdsl.build(arch, weights=reference.state_dict(), optimize="inference")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        got = model(x)
    assert max_abs_diff(got, expected) <= 1e-4 * expected.abs().max().item()
    packed = [m for m in model.modules() if type(m).__name__ == "FusedConv2d"]
    assert packed and all(m.onednn == torch.backends.mkldnn.is_available() for m in packed)


def test_inference_module_is_eval_only_and_frozen():
    model = archdsl.build("resnet18", optimize="inference")
    assert not model.training
    assert not any(t.requires_grad for t in model.state_dict().values())
    with pytest.raises(RuntimeError, match="eval-only"):
        model.train()


def test_linear_batchnorm_fold_and_derivations(write_spec):
    path = write_spec("""
        arch head
        input 8 x 6 x 6
        network:
            features: conv(4, 3, padding = 1) -> batchnorm(eps = 0.001) -> relu6
            pool: adaptive_avgpool(1) -> flatten -> dropout(0.3)
            fc: linear(5, bias = false) -> batchnorm
    """)
    arch = archdsl.load(path)
    optimised = run_pipeline(arch, INFERENCE_PIPELINE)
    assert [d["op"] for _, d in optimised.ops()] == ["conv", "adaptive_avgpool", "flatten", "linear"]
    assert optimised.graph.nodes["features.0"]["activation"] == "relu6"
    reference = arch.to_torch().double()
    _liven_norms(reference)
    reference.eval()
    derived = derive_state(optimised, reference.state_dict())
    assert derived["fc.0.bias"].shape == (5,)
    x = torch.randn(3, 8, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        assert max_abs_diff(compile_inference(optimised, reference.state_dict())(x), reference(x)) <= 1e-10


def test_reference_state_uses_fitting_weights_as_given():
    arch = archdsl.load("resnet18")
    weights = arch.to_torch().state_dict()
    state = reference_state(arch, weights)
    assert state.keys() == weights.keys()
    assert all(state[k] is weights[k] for k in weights)


def test_inference_build_stays_out_of_dynamo():
    """Set-up stays fast: initialising on the meta device must not pull in torch._dynamo (seconds)."""
    import subprocess
    import sys
    code = ("import sys, archdsl\n"
            "w = archdsl.build('resnet18').state_dict()\n"
            "archdsl.build('resnet18', weights=w, optimize='inference')\n"
            "print('torch._dynamo' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"


def test_bad_optimize_value():
    with pytest.raises(ValueError, match="optimize"):
        archdsl.build("resnet18", optimize="fast")


@pytest.mark.slow
def test_compile_true_runs_the_optimised_graph(write_spec):
    path = write_spec("""
        arch tiny
        input 3 x 16 x 16
        network:
            conv(8, 3, padding = 1, bias = false) -> batchnorm -> relu
            adaptive_avgpool(1) -> flatten -> linear(4)
    """)
    eager = archdsl.build(path).eval()
    compiled = archdsl.build(path, weights=eager.state_dict(), optimize="inference", compile=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert max_abs_diff(compiled(x), eager(x)) <= 1e-4


@pytest.mark.slow
@pytest.mark.skipif(not __import__("os").environ.get("ARCHDSL_TEST_AOT"),
                    reason="AOTInductor compiles C++ for minutes; set ARCHDSL_TEST_AOT=1 to run")
def test_aot_package_round_trip(tmp_path):
    arch = archdsl.loads("""
        arch tiny
        input 3 x 16 x 16
        network:
            conv(8, 3, padding = 1, bias = false) -> batchnorm -> relu
            adaptive_avgpool(1) -> flatten -> linear(4)
    """.replace("\n        ", "\n"))
    eager = arch.to_torch().eval()
    path = archdsl.compile_package(arch, tmp_path / "tiny.pt2", weights=eager.state_dict(), batch=2)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert max_abs_diff(archdsl.load_package(path)(x), eager(x)) <= 1e-4


def test_aot_package_path_must_be_pt2(tmp_path):
    with pytest.raises(archdsl.ArchError, match=r"\.pt2"):
        archdsl.compile_package("resnet18", tmp_path / "model.zip")


def test_every_output_of_a_multi_output_network_survives():
    """A dict-returning network (an FPN) keeps every output, in order, through the inference build."""
    eager = archdsl.build("resnet18_fpn").eval()
    optimised = archdsl.build("resnet18_fpn", weights=eager.state_dict(), optimize="inference")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_abs_diff(optimised(x), eager(x)) <= 1e-4
