"""Golden tests: every bundled network equals its oracle in parameters and in outputs."""

from __future__ import annotations

import pytest
import torch

import archdsl
from conftest import liven, max_abs_diff
from oracles import FIXED_INPUT, ORACLES, SLOW, SLOW_PARAMS, SMALL_INPUT

NAMES = sorted(ORACLES)
TIMED = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in NAMES]


def test_every_oracle_name_is_bundled():
    assert set(ORACLES) <= set(archdsl.list_models())


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_equals_oracle(name):
    make, _ = ORACLES[name]
    with torch.device("meta"):
        oracle = make()
    expected = sum(p.numel() for p in oracle.parameters())
    assert archdsl.load(name).parameter_count() == expected


def test_slow_tier_holds_the_largest_networks():
    largest = {name for name in NAMES if archdsl.load(name).parameter_count() > SLOW_PARAMS}
    assert largest <= SLOW


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", TIMED)
def test_outputs_equal_oracle_with_its_weights(name):
    make, side = ORACLES[name]
    side, options = SMALL_INPUT.get(name, (side, {}))
    oracle = liven(make(**options), side).eval()
    small = {} if name in FIXED_INPUT else {"resolution": side}
    model = archdsl.build(name, weights=oracle.state_dict(), **small, **options).eval()
    assert set(model.state_dict()) == set(oracle.state_dict())
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = oracle(x)
        assert max_abs_diff(expected[0], expected[1]) > 1e-5, "the oracle must depend on its input"
        assert max_abs_diff(model(x), expected) <= 1e-5
        # channels_last: both sides get the same NHWC input (NHWC kernels round differently from NCHW)
        channels_last = x.contiguous(memory_format=torch.channels_last)
        assert max_abs_diff(model(channels_last), oracle(channels_last)) <= 1e-5
