"""Applying a spec's initialisation to a compiled network (torch.nn.init).

The IR records, on each node, the initialisers that apply to its tensors by
role (``{"weight": Init, "bias": Init}``; see :mod:`archdsl.ir.init`).
:func:`apply_init` re-initialises exactly those tensors, in execution order, and
leaves every other tensor at torch's default for its module.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ir.graph import Architecture
from ..ir.init import Init

# Where a role's tensor lives in an op's module; a bare tensor (class_token) is the role itself.
_ATTRIBUTES = {("multihead_attention", "weight"): "in_proj_weight",
               ("multihead_attention", "bias"): "in_proj_bias"}


def _tensor(module: nn.Module, path: str, op: str, role: str) -> torch.Tensor:
    target = module.get_parameter(path) if _is_bare(module, path) else module.get_submodule(path)
    if isinstance(target, torch.Tensor):
        return target
    return getattr(target, _ATTRIBUTES.get((op, role), role))


def _is_bare(module: nn.Module, path: str) -> bool:
    parent, _, leaf = path.rpartition(".")
    owner = module.get_submodule(parent) if parent else module
    return leaf in owner._parameters


@torch.no_grad()
def init_tensor(tensor: torch.Tensor, init: Init) -> None:
    """Fill ``tensor`` in place as ``init`` says (torch.nn.init's function of the same name)."""
    if tensor.is_meta:  # nothing to fill; torch's meta kernels for random fills import dynamo (seconds)
        return
    k = init.kwargs
    kind = init.kind
    if kind == "zeros":
        nn.init.zeros_(tensor)
    elif kind == "ones":
        nn.init.ones_(tensor)
    elif kind == "constant":
        nn.init.constant_(tensor, k["value"])
    elif kind == "uniform":
        nn.init.uniform_(tensor, k["a"], k["b"])
    elif kind == "normal":
        nn.init.normal_(tensor, k["mean"], k["std"])
    elif kind == "trunc_normal":
        nn.init.trunc_normal_(tensor, k["mean"], k["std"], k["a"], k["b"])
    elif kind in ("kaiming_normal", "kaiming_uniform"):
        fill = nn.init.kaiming_normal_ if kind == "kaiming_normal" else nn.init.kaiming_uniform_
        fill(tensor, a=k["a"], mode=k["mode"], nonlinearity=k["nonlinearity"])
    elif kind in ("xavier_uniform", "xavier_normal"):
        fill = nn.init.xavier_uniform_ if kind == "xavier_uniform" else nn.init.xavier_normal_
        fill(tensor, gain=k["gain"])
    elif kind != "default":
        raise ValueError(f"unknown initialiser {kind!r}")


def apply_init(module: nn.Module, arch: Architecture) -> nn.Module:
    """Initialise ``module`` (compiled from ``arch``) as the spec declares; returns it."""
    for _, data in arch.ops(include_aux=True):
        for role, init in (data.get("init") or {}).items():
            init_tensor(_tensor(module, data["name"], data["op"], role), init)
    return module
