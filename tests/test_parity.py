"""Eager parity, measured without a clock: the compiled forward issues torchvision's aten kernels, in order.

A dispatch mode records every aten op each network runs on one small batch
(eval mode, no grad). Timing ratios on a shared CPU move by several percent;
the kernel sequence does not, and it is what decides eager speed. Two kinds of
difference are allowed and normalised away: an op done in place where the
reference does it out of place (``add_`` for ``add``: fewer allocations; the
reverse, an allocation the reference avoids, fails), and
pure views (``view``, ``t``…: no data moves). torchvision's ``cat`` of a
single tensor (DenseNet's first layer of each block, a copy) has no
counterpart here and is dropped from the reference. A training step is also
compared by its allocator requests (sizes, order, short lifetimes), which decide
page faults when the kernels are the same.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import archdsl

torchvision = pytest.importorskip("torchvision")

# Ops that only make a view of their input: no kernel runs, no memory moves.
VIEWS = {"view", "_unsafe_view", "t", "transpose", "permute", "expand", "select", "slice", "split",
         "unsqueeze", "squeeze", "alias", "detach", "as_strided", "unbind"}


class KernelLog(TorchDispatchMode):
    """Records the aten ops run under it: names without overload or in-place suffix, and which were in place."""

    def __init__(self):
        super().__init__()
        self.ops: list[str] = []
        self.inplace: list[bool] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func.overloadpacket.__name__
        name = packet.rstrip("_")
        if name == "cat" and len(args[0]) == 1:
            name = "cat_of_one"
        if name not in VIEWS:
            self.ops.append(name)
            self.inplace.append(packet.endswith("_") and not packet.startswith("_"))
        return func(*args, **(kwargs or {}))


def kernel_log(model: torch.nn.Module, x: torch.Tensor) -> KernelLog:
    model.eval()
    with torch.no_grad(), KernelLog() as log:
        model(x)
    return log


def kernels(model: torch.nn.Module, x: torch.Tensor) -> list[str]:
    return kernel_log(model, x).ops


# One network per family (the smallest member), at a small input where the family allows one.
FAMILIES = {
    "alexnet": 64, "vgg11_bn": 32, "resnet18": 64, "resnext50_32x4d": 64, "squeezenet1_0": 64,
    "squeezenet1_1": 64, "googlenet": 64, "densenet121": 64, "mobilenet_v2": 64,
    "mobilenet_v3_small": 64, "mobilenet_v3_large": 64, "shufflenet_v2_x0_5": 64, "mnasnet0_5": 64,
    "efficientnet_b0": 64, "regnet_x_400mf": 64, "regnet_y_400mf": 64, "convnext_tiny": 64,
}
SLOW_FAMILIES = {"inception_v3": 75, "efficientnet_v2_s": 64, "wide_resnet50_2": 64, "vit_b_16": 224}


def _pair(name: str):
    options = {"aux_logits": False} if name in ("googlenet", "inception_v3") else {}
    extra = {"init_weights": True} if options else {}
    reference = torchvision.models.get_model(name, **options, **extra)
    return archdsl.build(name, weights=reference.state_dict(), strict=True, **options), reference


def _check(name: str, side: int) -> None:
    ours, reference = _pair(name)
    x = torch.randn(1, 3, side, side)
    mine, theirs = kernel_log(ours, x), kernel_log(reference, x)
    kept = [i for i, op in enumerate(theirs.ops) if op != "cat_of_one"]
    got, expected = mine.ops, [theirs.ops[i] for i in kept]
    first = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    assert got == expected, (f"{name}: kernel {first} differs: archdsl {got[first:first + 4]} vs "
                             f"torchvision {expected[first:first + 4]} ({len(got)} vs {len(expected)} kernels)")
    allocating = [f"{i}: {op}" for i, (op, done_inplace, ref_inplace)
                  in enumerate(zip(got, mine.inplace, [theirs.inplace[i] for i in kept]))
                  if ref_inplace and not done_inplace]
    assert not allocating, f"{name}: out of place where torchvision works in place: {allocating[:5]}"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_forward_runs_torchvisions_kernels_in_order(name):
    _check(name, FAMILIES[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW_FAMILIES))
def test_forward_runs_torchvisions_kernels_in_order_large(name):
    _check(name, SLOW_FAMILIES[name])


def test_the_kernel_log_sees_a_difference():
    """A network computing the same function with one extra copy fails the comparison."""
    a = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    b = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Identity())
    x = torch.randn(1, 3, 8, 8)
    assert kernels(a, x) == kernels(b, x)  # an identity module runs no kernel

    class Copying(torch.nn.Module):
        def forward(self, y):
            return a(y).contiguous(memory_format=torch.channels_last)

    assert kernels(Copying(), x) != kernels(a, x)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny"])
def test_training_step_equals_torchvisions_bit_for_bit(name):
    """In-place adds and activations (over stochastic depth too) keep autograd exact: same random draws,
    same outputs and every gradient equal."""
    ours, reference = _pair(name)
    x = torch.randn(2, 3, 64, 64)
    results = []
    for model in (ours, reference):
        model.train()
        torch.manual_seed(0)
        y = model(x)
        y.square().sum().backward()
        results.append((y.detach(), {k: p.grad for k, p in model.named_parameters()}))
    (y_ours, g_ours), (y_ref, g_ref) = results
    assert torch.equal(y_ours, y_ref)
    assert g_ours.keys() == g_ref.keys() and all(torch.equal(g_ours[k], g_ref[k]) for k in g_ref)


def allocation_log(model: torch.nn.Module, x: torch.Tensor, trace) -> list[str]:
    """The CPU allocator's requests in one training step, in order: ``+bytes`` per allocation,
    ``-bytes@age`` per free (age: allocator events since that block's allocation; ``old`` past 30).

    Addresses differ between runs; sizes, order and short lifetimes are what decide which
    blocks the allocator reuses, trims and faults in again.
    """
    from torch.profiler import ProfilerActivity, profile

    model.train()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x).sum().backward()
    prof.export_chrome_trace(str(trace))
    events = sorted((e for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "[memory]"),
                    key=lambda e: e["ts"])
    born: dict = {}
    log: list[str] = []
    for e in events:
        size, addr = e["args"]["Bytes"], e["args"]["Addr"]
        if size > 0:
            born[addr] = len(log)
            log.append(f"+{size}")
        else:
            age = len(log) - born.pop(addr) if addr in born else None
            log.append(f"-{-size}@{age if age is not None and age <= 30 else 'old'}")
    return log


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_small"])
def test_training_step_allocates_in_torchvisions_order(name, tmp_path):
    """Forward and backward request and release memory exactly as torchvision does.

    Same kernels are not enough: squeeze-and-excitation written ``x * scale`` instead of
    torchvision's ``scale * x`` runs the same kernels, but autograd then allocates the two
    gradient products in the other order, which changes what the CPU allocator reuses and
    faults in again. Dropout is off: torchvision's is in place on a
    view of the flattened features, which only adds copies there.
    """
    reference = torchvision.models.get_model(name, dropout=0.0)
    ours = archdsl.build(name, weights=reference.state_dict(), strict=True, dropout=0.0)
    x = torch.randn(2, 3, 64, 64)
    mine = allocation_log(ours, x, tmp_path / "ours.json")
    theirs = allocation_log(reference, x, tmp_path / "reference.json")
    first = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
    assert mine == theirs, (f"{name}: allocator event {first} differs: archdsl {mine[first:first + 6]} vs "
                            f"torchvision {theirs[first:first + 6]} ({len(mine)} vs {len(theirs)} events)")
