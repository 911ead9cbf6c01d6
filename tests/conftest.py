"""Shared test helpers: oracle models, small inputs, a spec-writing fixture."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def write_spec(tmp_path):
    """Write spec text (dedented) to a temp file and return its path as a string."""
    def write(text: str, name: str = "net.arch") -> str:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return str(path)
    return write


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@torch.no_grad()
def liven(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-draw an oracle's weights so its outputs depend visibly on the input.

    Some reference inits (GoogLeNet's truncated normal with std 0.01) make a
    fresh network's output almost constant, which would let a wrong graph
    pass an output comparison. Convs and linears get N(0, 1/fan_in); BatchNorm
    gets random affine parameters and running statistics.
    """
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            module.weight.copy_(torch.rand(n, generator=g) + 0.5)
            module.bias.copy_(torch.randn(n, generator=g) * 0.1)
        elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.weight.normal_(0, (1.0 / module.weight[0].numel()) ** 0.5, generator=g)
            if module.bias is not None:
                module.bias.normal_(0, 0.01, generator=g)
    return model
