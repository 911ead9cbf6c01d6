"""Every resource limit the compiler applies to a spec, in one place.

A spec may come from anywhere, so reading one must take bounded time and
memory whatever it says. Each limit below is checked where the work happens
(before a repeat iterates, as an op is added, as a number grows) and an
exceeded limit is a :class:`~archdsl.errors.SpecError` at the text that
exceeded it. The defaults leave the bundled zoo far below every limit.

Raise a limit for one call with :func:`using`::

    with limits.using(max_ops=50_000):
        archdsl.load("huge.arch")

or for a whole process with the ``ARCHDSL_LIMITS`` environment variable,
``ARCHDSL_LIMITS="max_ops=50000,max_steps=2000000"``. ``docs/security.md``
describes each limit.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import sys
from dataclasses import dataclass

from ..errors import ArchError


@dataclass(frozen=True)
class Limits:
    """Resource limits for reading one spec (all counts, sizes in the unit named)."""

    max_spec_bytes: int = 1_000_000
    """Size of one spec file or string, in bytes."""
    max_nesting: int = 200
    """Depth of the syntax tree: nested parentheses, operators chained in one expression
    (``1 + 1 + …`` nests one level per ``+``), indented blocks."""
    max_steps: int = 250_000
    """Evaluation steps for one elaboration: each expression node evaluated, each loop
    iteration, and one per item of every list or string built."""
    max_call_depth: int = 100
    """Nested calls of ``fn`` functions (recursion depth)."""
    max_eval_depth: int = 1_000
    """Nested expression evaluations, counting through ``fn`` calls."""
    max_int_bits: int = 1_024
    """Size of any integer a spec computes, in bits (about 308 decimal digits)."""
    max_sequence: int = 100_000
    """Items in one list or tuple, characters in one string."""
    max_ops: int = 10_000
    """Ops in one network, checked as each op is added."""
    max_repeat: int = 10_000
    """The count of one ``repeat``, checked before it iterates."""
    max_block_depth: int = 100
    """Nested block calls."""
    max_params: int = 2**31
    """Parameters plus buffers a built module may hold (about 8.6 GB in float32);
    checked before any weight is allocated (``archdsl compile --max-params``,
    ``archdsl.build(max_params=…)``)."""


class LimitError(ArchError):
    """A malformed ``ARCHDSL_LIMITS`` value or an unknown limit name."""


_FIELDS = {f.name for f in dataclasses.fields(Limits)}


def _parse_env(text: str) -> dict:
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in _FIELDS:
            raise LimitError(f"ARCHDSL_LIMITS: {item!r} is not NAME=VALUE with NAME one of "
                             + ", ".join(sorted(_FIELDS)))
        try:
            out[key] = int(value.replace("_", ""))
        except ValueError:
            raise LimitError(f"ARCHDSL_LIMITS: {key} must be an integer, got {value!r}") from None
    return out


def _from_environment() -> Limits:
    text = os.environ.get("ARCHDSL_LIMITS", "")
    return Limits(**_parse_env(text)) if text else Limits()


_current: contextvars.ContextVar = contextvars.ContextVar("archdsl_limits", default=None)


def current() -> Limits:
    """The limits in force: :func:`using` overrides, else ``ARCHDSL_LIMITS``, else the defaults."""
    chosen = _current.get()
    return chosen if chosen is not None else _from_environment()


@contextlib.contextmanager
def using(**changes):
    """Apply ``changes`` (field=value) to the limits in force for the ``with`` body (this thread)."""
    unknown = set(changes) - _FIELDS
    if unknown:
        raise LimitError(f"unknown limit {sorted(unknown)[0]!r}; the limits are "
                         + ", ".join(sorted(_FIELDS)))
    token = _current.set(dataclasses.replace(current(), **changes))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


@contextlib.contextmanager
def deep_stack(frames: int = 20_000):
    """Room on Python's stack for the bounded recursion of parsing and evaluation.

    Every recursion in the front end is bounded by a limit above (nesting,
    evaluation depth, block depth), each well inside this many frames; raising
    the interpreter's limit only makes room for them.
    """
    saved = sys.getrecursionlimit()
    sys.setrecursionlimit(max(saved, frames))
    try:
        yield
    finally:
        sys.setrecursionlimit(saved)


def byte_text(count: int) -> str:
    """A byte count for messages: ``8.6 GB``, ``4.0 TB``, ``2.1e+25 bytes``."""
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{float(count):.1e} bytes"
