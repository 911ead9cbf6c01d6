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
