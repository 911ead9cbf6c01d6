"""The evaluation budget: steps, value sizes and depth, charged as a spec is evaluated.

One :class:`Budget` is active per elaboration (:func:`metering`); every
expression step and every value built is charged to it, so a small spec cannot
run for minutes or fill memory. The limits come from :mod:`.limits`.
"""

from __future__ import annotations

import contextlib
import contextvars

from . import limits
from ..errors import SpecError, Span


class Budget:
    """What one elaboration may spend: evaluation steps and stack depth (see :mod:`.limits`).

    One budget is shared by every :class:`Evaluator` created inside
    :func:`metering`; an evaluator created outside one (a ``--set`` value) gets
    its own.
    """

    def __init__(self, lim: limits.Limits | None = None):
        self.limits = lim or limits.current()
        self.steps = 0
        self.depth = 0

    def charge(self, steps: int, span: Span | None) -> None:
        """Spend ``steps``; a :class:`SpecError` at ``span`` once the budget is exhausted."""
        self.steps += steps
        if self.steps > self.limits.max_steps:
            raise SpecError(f"evaluation takes more than {self.limits.max_steps:,} steps", span,
                            hint="the spec loops or recurses too much; limits are described in "
                                 "docs/security.md")


_active: contextvars.ContextVar = contextvars.ContextVar("archdsl_budget", default=None)


def active_budget() -> Budget:
    """The budget of the elaboration in progress (in this thread), or a fresh one outside any."""
    budget = _active.get()
    return budget if budget is not None else Budget()


@contextlib.contextmanager
def metering():
    """Share one :class:`Budget` among all evaluation in the ``with`` body (reentrant)."""
    if _active.get() is not None:
        yield _active.get()
        return
    token = _active.set(Budget())
    try:
        with limits.deep_stack():
            yield _active.get()
    finally:
        _active.reset(token)


def weight(value, limit: int) -> int:
    """Items in ``value`` counting nested lists and string characters; stops past ``limit``."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, (list, tuple)):
            total += len(item)
            stack.extend(v for v in item if isinstance(v, (list, tuple, str)))
    return total


def check_value(value, span: Span | None, budget: Budget | None = None):
    """``value`` if it is within the integer and sequence limits, else a :class:`SpecError`.

    Sequences are charged one step per item (nested items included), so time
    spent building them counts against the step budget.
    """
    budget = budget or active_budget()
    lim = budget.limits
    if isinstance(value, int) and value.bit_length() > lim.max_int_bits:
        raise SpecError(f"an integer of {value.bit_length():,} bits is too large "
                        f"(limit {lim.max_int_bits} bits)", span)
    if isinstance(value, (list, tuple, str)):
        size = weight(value, lim.max_sequence)
        if size > lim.max_sequence:
            raise SpecError(f"a {'string' if isinstance(value, str) else 'list'} of more than "
                            f"{lim.max_sequence:,} items is too long", span)
        budget.charge(size, span)
    return value
