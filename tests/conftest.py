"""Shared test helpers: oracle models, small inputs, a spec-writing fixture."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (the largest networks, full-size inputs) run with ``ARCHDSL_SLOW=1``
    or ``-m slow``; the default run, CI's included, keeps to the fast tier (timm filters its
    largest models on CI the same way)."""
    if os.environ.get("ARCHDSL_SLOW") or "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow tier: runs with ARCHDSL_SLOW=1 or -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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


def max_abs_diff(a, b) -> float:
    """The largest absolute difference of two outputs: tensors, or dicts / sequences of them (same keys)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"outputs {list(a)} vs {list(b)}"
        return max(max_abs_diff(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        assert isinstance(b, (tuple, list)) and len(a) == len(b)
        return max(max_abs_diff(x, y) for x, y in zip(a, b))
    return (a - b).abs().max().item()


def max_abs_value(a) -> float:
    """The largest magnitude in an output (a tensor, or a dict / sequence of them)."""
    if isinstance(a, dict):
        return max(max_abs_value(v) for v in a.values())
    if isinstance(a, (tuple, list)):
        return max(max_abs_value(v) for v in a)
    return a.abs().max().item()


@torch.no_grad()
def liven(model: torch.nn.Module, side: int = 64, seed: int = 0) -> torch.nn.Module:
    """Give an oracle's weights a state in which its outputs depend visibly on the input.

    Fresh reference inits (e.g. GoogLeNet's std-0.01 truncated normal, or
    EfficientNet's SE gates, ViT's zero head) can make a network's eval-mode
    output almost constant, which would let a wrong graph pass an output
    comparison. LayerNorm/GroupNorm get random affine parameters; all-zero
    tensors (heads, class tokens, biases) small random values.
    BatchNorm layers get random affine parameters and running statistics
    measured on a random batch, so every layer passes on a unit-scale signal.
    """
    g = torch.Generator().manual_seed(seed)
    for module in model.modules():  # LayerNorm/GroupNorm affine; zero-initialised heads and tokens
        if isinstance(module, (torch.nn.LayerNorm, torch.nn.GroupNorm)) and module.weight is not None:
            module.weight.copy_(torch.rand(module.weight.shape, generator=g) + 0.5)
            module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.1)
    for param in model.parameters():
        if param.numel() > 1 and not param.any():
            param.copy_(torch.randn(param.shape, generator=g) * 0.02)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.weight.copy_(torch.rand(norm.num_features, generator=g) + 0.5)
        norm.bias.copy_(torch.randn(norm.num_features, generator=g) * 0.1)
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: one batch sets the statistics
    was_training = model.training
    model.train()
    model(torch.randn(8, 3, side, side, generator=g))
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    return model.train(was_training)


def place_published_weights(tmp_path, monkeypatch, name: str, tag: str, state: dict) -> dict:
    """Save ``state`` under torchvision's published file name, its name's hash made to match."""
    from archdsl.published import weight_entry

    entry = weight_entry(name, tag)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    raw = folder / "raw.pth"
    torch.save(state, raw)
    digest = hashlib.sha256(raw.read_bytes()).hexdigest()
    monkeypatch.setattr("archdsl.published.weight_entry",
                        lambda n, t="DEFAULT", missing_ok=False: {**entry, "hash": digest[:8]})
    raw.rename(folder / entry["file"])
    return entry
