"""Errors raised by archdsl.

Every problem in a spec is a :class:`SpecError` carrying a :class:`Span`; its
``format()`` gives ``file:line:col: error: message``, the source line with a
caret under the spot, and what was expected. All errors derive from
:class:`ArchError`, so callers catch one class.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """The text of one spec and the path it was read from (for messages)."""

    path: str
    text: str = field(repr=False)

    def line(self, number: int) -> str:
        # Only "\n" ends a line, as in the parser: a form feed or U+2028 in a comment does not.
        lines = self.text.split("\n")
        return lines[number - 1].rstrip("\r") if 0 < number <= len(lines) else ""


EXCERPT_WIDTH = 120  # characters of a source line quoted in a message


@dataclass(frozen=True)
class Span:
    """A place in a spec: 1-based line and column; ``end_column`` on the same line."""

    source: Source
    line: int
    column: int
    end_column: int | None = None

    @property
    def location(self) -> str:
        return f"{self.source.path}:{self.line}:{self.column}"

    def excerpt(self) -> str:
        """The source line, numbered, with a caret (and tildes) under the span."""
        text = "".join(c if c.isprintable() else " "  # keep the caret's column
                       for c in self.source.line(self.line).expandtabs(1))
        width = 1
        if self.end_column is not None and self.end_column > self.column:
            width = min(self.end_column - self.column, max(1, len(text) - self.column + 1))
        column = self.column
        if len(text) > EXCERPT_WIDTH:  # a long line: show the part around the caret
            start = max(0, min(column - 1 - EXCERPT_WIDTH // 2, len(text) - EXCERPT_WIDTH))
            text = ("…" if start else "") + text[start:start + EXCERPT_WIDTH] \
                + ("…" if start + EXCERPT_WIDTH < len(text) else "")
            column -= start - (1 if start else 0)
            width = max(1, min(width, EXCERPT_WIDTH - column + 1))
        gutter = f"{self.line:>5} | "
        marker = " " * (column - 1) + "^" + "~" * (width - 1)
        return f"{gutter}{text}\n{' ' * (len(gutter) - 2)}| {marker}"


class ArchError(Exception):
    """Root of every error archdsl raises on purpose."""

    def format(self) -> str:
        return f"error: {self}"


class SpecError(ArchError):
    """A mistake in a spec, located by a span."""

    kind = "error"

    def __init__(self, message: str, span: Span | None = None, *, expected: str | None = None,
                 hint: str | None = None, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.span = span
        self.expected = expected
        self.hint = hint
        self.notes = tuple(notes)

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    def format(self) -> str:
        head = f"{self.span.location}: " if self.span else ""
        parts = [f"{head}{self.kind}: {self.message}"]
        if self.span:
            parts.append(self.span.excerpt())
        for note in self.notes:
            parts.append(f"  {note}")
        if self.expected:
            parts.append(f"  expected: {self.expected}")
        if self.hint:
            parts.append(f"  hint: {self.hint}")
        return "\n".join(parts)

    def __str__(self) -> str:
        if self.span:
            return f"{self.span.location}: {self.message}"
        return self.message


class SpecSyntaxError(SpecError):
    """The text does not follow the grammar."""

    kind = "syntax error"


class ShapeError(SpecError):
    """Tensor shapes do not fit (add/concat mismatch, kernel larger than input…)."""


class SpecNotFoundError(ArchError):
    """A spec path or bundled model name that does not exist."""


class WeightsError(ArchError):
    """A state dict or weights file that does not fit the compiled network."""


# ---- message helpers shared by every layer ----------------------------------------

def shape_text(shape, sep: str = "x") -> str:
    """A shape as text: ``(64, 56, 56)`` → ``64x56x56`` (``sep="×"`` for diagrams)."""
    return sep.join(str(d) for d in shape)


def is_int(value) -> bool:
    """True for Python integers, excluding booleans (``True`` is not a channel count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def describe(value) -> str:
    """A short description of a value's type, for messages (``an integer``, ``a list``…)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "a tuple"
    if isinstance(value, list):
        return "a list"
    return getattr(type(value), "kind_text", type(value).__name__)


def suggest(name: str, candidates) -> str | None:
    """A did-you-mean hint naming up to three close candidates, or None."""
    close = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return None
