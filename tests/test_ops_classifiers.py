"""The norm, activation, permute, linear-over-last-dim, sequence and parameter ops against torch.

Each op is compiled alone (after a prefix that gives it its input) and compared with its torch
counterpart holding the same weights: output values and shape, parameter count, and MACs as
torch's own FLOP counter measures them (FLOPs / 2, matmuls and convolutions only, which is
torchvision's ``_ops`` convention).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.convnext import LayerNorm2d

import archdsl
from archdsl.errors import ShapeError, SpecError
from conftest import max_abs_diff


def compile_one(item: str, prefix: str = "", side: int = 6, channels: int = 16):
    """The network ``prefix; item`` on a channels x side x side input: (architecture, module)."""
    lines = [f"    {p}" for p in prefix.split(";") if p.strip()] + [f"    op: {item}"]
    arch = archdsl.loads(f"arch t\ninput {channels} x {side} x {side}\nnetwork:\n" + "\n".join(lines) + "\n")
    return arch, arch.to_torch().eval()


def measured_macs(module, x) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() // 2


def check_against(item: str, reference: nn.Module, prefix: str = "", before=lambda x: x,
                  side: int = 6, channels: int = 16):
    """Compile ``item``, give it the reference's state, and compare values, shape, params, MACs."""
    arch, ours = compile_one(item, prefix, side, channels)
    reference = reference.eval()
    own = {k[len("op."):]: v for k, v in ours.state_dict().items() if k.startswith("op.")}
    assert set(own) == set(reference.state_dict())
    with torch.no_grad():
        for p in reference.parameters():  # away from 0/1 so a dropped weight shows
            p.copy_(torch.randn_like(p) * 0.5 + 0.3)
    ours.load_state_dict({"op." + k: v for k, v in reference.state_dict().items()}, strict=False)
    x = torch.randn(2, channels, side, side)
    with torch.no_grad():
        expected = reference(before(x))
        got = ours(x)
    assert got.shape == expected.shape and tuple(got.shape[1:]) == arch.output_shape
    assert max_abs_diff(got, expected) <= 1e-5
    node = arch.graph.nodes["op"]
    assert node["params"] == sum(p.numel() for p in reference.parameters())
    assert node["macs"] == measured_macs(reference, before(x)) // 2  # per image
    return arch, ours


def to_tokens(x):
    return x.flatten(2).transpose(1, 2)


@pytest.mark.parametrize("item, reference", [
    ("layernorm(eps = 1e-6)", LayerNorm2d(16, eps=1e-6)),  # ConvNeXt's, over a map's channels
    ("groupnorm(4)", nn.GroupNorm(4, 16)),
    ("instancenorm(affine = true, track_running_stats = true)",
     nn.InstanceNorm2d(16, affine=True, track_running_stats=True)),
    ("instancenorm", nn.InstanceNorm2d(16)),
    ("leaky_relu(0.2)", nn.LeakyReLU(0.2)),
    ("prelu", nn.PReLU()),
    ("prelu(channelwise = true)", nn.PReLU(16)),
    ("elu(0.5)", nn.ELU(0.5)),
    ("selu", nn.SELU()),
    ("celu(0.7)", nn.CELU(0.7)),
    ("mish", nn.Mish()),
    ("softplus(2, 3)", nn.Softplus(2, 3)),
    ("gelu", nn.GELU()),
    ("gelu(approximate = \"tanh\")", nn.GELU(approximate="tanh")),
    ("hardtanh(-0.5, 0.25)", nn.Hardtanh(-0.5, 0.25)),
])
def test_map_op_equals_torch(item, reference):
    check_against(item, reference)


@pytest.mark.parametrize("item, reference", [
    ("layernorm(over = \"last\")", nn.LayerNorm(16)),
    ("linear(24, over = \"last\")", nn.Linear(16, 24)),
    ("linear(24, bias = false, over = \"last\")", nn.Linear(16, 24, bias=False)),
])
def test_last_dim_ops_on_a_permuted_map(item, reference):
    check_against(item, reference, prefix="permute([1, 2, 0])", before=lambda x: x.permute(0, 2, 3, 1))


@pytest.mark.parametrize("item, reference", [
    ("layernorm", nn.LayerNorm(16)),
    ("linear(8)", nn.Linear(16, 8)),
    ("gelu", nn.GELU()),
])
def test_ops_on_a_sequence(item, reference):
    check_against(item, reference, prefix="tokens", before=to_tokens)


def test_linear_on_a_vector_is_unchanged():
    check_against("linear(10)", nn.Linear(16 * 36, 10), prefix="flatten", before=lambda x: x.flatten(1))


def test_multihead_attention_is_torchs_in_its_layout():
    reference = nn.MultiheadAttention(16, 4, batch_first=True)

    class Self(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = reference

        def forward(self, x):
            return self.inner(x, x, x, need_weights=False)[0]

    arch, ours = compile_one("multihead_attention(4)", prefix="tokens")
    assert set(ours.state_dict()) == {"op." + k for k in reference.state_dict()}
    ours.load_state_dict({"op." + k: v for k, v in reference.state_dict().items()})
    x = torch.randn(2, 16, 6, 6)
    with torch.no_grad():
        assert max_abs_diff(ours(x), Self().eval()(to_tokens(x))) <= 1e-5
    node = arch.graph.nodes["op"]
    assert node["shape"] == (36, 16)
    assert node["params"] == sum(p.numel() for p in reference.parameters())
    # The counter sees the four projections (train mode: eval's fast path is one fused kernel it
    # does not see) but not the CPU attention kernel: q·kᵀ and attention·v are T·T·D MACs each,
    # as torchvision's _ops counts them (ViT's published figures are checked in test_summary).
    tokens, dim = 36, 16
    assert node["macs"] == measured_macs(Self().train(), to_tokens(x)) // 2 + 2 * tokens * tokens * dim


def test_tokens_class_token_position_embedding_select_token():
    text = """
        arch t
        input 16 x 4 x 4
        network:
            tokens
            class_token: class_token
            pos: position_embedding
            select_token(0)
    """
    arch = archdsl.loads("\n".join(line[8:] for line in text.splitlines()[1:]) + "\n")
    model = arch.to_torch().eval()
    state = model.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {"class_token": (1, 1, 16),
                                                             "pos": (1, 17, 16)}
    assert not state["class_token"].any()  # zeros, as torchvision's ViT
    assert 0.01 < state["pos"].std() < 0.03  # normal, std 0.02
    with torch.no_grad():
        model.class_token.normal_()
    x = torch.randn(2, 16, 4, 4)
    seq = torch.cat([model.class_token.expand(2, -1, -1), to_tokens(x)], dim=1) + model.pos
    with torch.no_grad():
        assert torch.equal(model(x), seq[:, 0])
    shapes = [d["shape"] for _, d in arch.ops()]
    assert shapes == [(16, 16), (17, 16), (17, 16), (16,)]
    assert arch.parameter_count() == 16 + 17 * 16


def test_parameter_in_a_join_is_a_layer_scale():
    arch = archdsl.loads("arch t\ninput 8 x 4 x 4\nnetwork:\n    mul:\n"
                         "        gamma: parameter([8, 1, 1], init = constant(0.5))\n"
                         "        conv(8, 1)\n")
    model = arch.to_torch().eval()
    assert tuple(model.gamma.shape) == (8, 1, 1) and torch.all(model.gamma == 0.5)
    x = torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        assert torch.equal(model(x), model.gamma * getattr(model, "0")(x))
    assert arch.graph.nodes["gamma"]["params"] == 8


@pytest.mark.parametrize("network, line, col, words", [
    ("    multihead_attention(4)\n", 4, 5, "multihead_attention needs a sequence (tokens x dim), "
                                          "got a 16x6x6 feature map; add tokens before it"),
    ("    tokens\n    conv(8, 3)\n", 5, 5, "conv needs a CxHxW feature map, got a 36x16 sequence"),
    ("    tokens\n    maxpool(2)\n", 5, 5, "maxpool needs a CxHxW feature map, got a 36x16 sequence"),
    ("    select_token(0)\n", 4, 5, "select_token needs a sequence"),
    ("    tokens\n    tokens\n", 5, 5, "tokens needs a CxHxW feature map, got a 36x16 sequence"),
    ("    linear(8)\n", 4, 5, "linear needs a flat vector or a sequence"),
    ("    permute([0, 1])\n", 4, 5, "permute dims [0, 1] must be an order of 0..2"),
    ("    tokens\n    multihead_attention(5)\n", 5, 5, "heads=5 must divide the dim 16"),
    ("    tokens\n    select_token(36)\n", 5, 5, "index 36 is out of range for 36 tokens"),
    ("    groupnorm(5)\n", 4, 5, "groupnorm groups=5 must divide the 16 channels"),
])
def test_sequence_and_map_errors_are_located(network, line, col, words):
    with pytest.raises(ShapeError) as info:
        archdsl.loads("arch t\ninput 16 x 6 x 6\nnetwork:\n" + network, path="net.arch")
    err = info.value
    assert words in str(err)
    assert (err.span.line, err.span.column) == (line, col)


def test_in_reads_a_sequence():
    arch = archdsl.loads("arch t\ninput 16 x 6 x 6\nnetwork:\n    tokens\n"
                         "    linear(in.dim * 2)\n    linear(in.tokens)\n")
    assert arch.output_shape == (36, 36)
    with pytest.raises(SpecError, match="the input shape has no 'channels'") as info:
        archdsl.loads("arch t\ninput 16 x 6 x 6\nnetwork:\n    tokens\n    linear(in.channels)\n")
    assert "tokens, dim or shape (a sequence)" in info.value.expected
