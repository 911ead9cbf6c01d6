"""Named tensors during elaboration: values, the names a network or block body binds, ``@name``.

A label binds its item's output (``enc2: …``), ``… as name`` binds a tensor
without a module, ``output key`` inside a block binds one of its results, and a
block parameter written ``@skip`` receives one. ``@name`` reads the latest
binding in the same network or block body (a later binding shadows an earlier
one, so loops can carry a name); ``@body.layer3`` reads into a labelled scope
or block call. There are no forward references, so the graph stays acyclic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import ast
from ..errors import SpecError, Span, describe, shape_text, suggest
from .expr import Env, Evaluator

# Labels and tensor names: letters, digits, `_` and `-` (torchvision's `block1-0`), dotted paths
# (`inner_blocks.3.0`); a segment may be a number only when written `{0}` (a built name).
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*")
NAME_EXPECTED = "letters, digits, '_' and '-', in dotted segments"
MAX_LISTED = 16


@dataclass(frozen=True)
class Value:
    """A tensor during elaboration: the node producing it and its shape (batch excluded)."""
    node: str
    shape: tuple
    kind_text = "a tensor"


def is_tensor(value) -> bool:
    """A tensor, or a non-empty list/tuple of tensors (what a ``@name`` parameter accepts)."""
    if isinstance(value, (list, tuple)):
        return bool(value) and all(isinstance(v, Value) for v in value)
    return isinstance(value, Value)


class Frame:
    """The tensors one network or block body has bound so far.

    ``root`` is the body's scope path: a label's name relative to it is bound
    too (``body.layer3``). ``skipped`` remembers names whose item did not run
    (a false ``when``), ``later`` the names the body binds further down, so a
    failed read can say why.
    """

    def __init__(self, root: tuple, body: tuple = ()):
        self.root = root
        self.names: dict[str, object] = {}
        self.skipped: dict[str, Span] = {}
        self.later = declared_names(body)

    def bind(self, name: str, value) -> None:
        self.names[name] = value
        self.skipped.pop(name, None)

    def bind_label(self, path: tuple, label: str, value) -> None:
        """Bind ``label`` and, when the item sits in a named scope, its path from the body's root."""
        self.bind(label, value)
        relative = ".".join(path[len(self.root):])
        if relative and relative != label:
            self.bind(relative, value)

    def export(self, prefix: str, inner: "Frame") -> None:
        """Make a block call's names readable as ``@prefix.name``."""
        for name, value in inner.names.items():
            self.bind(f"{prefix}.{name}", value)

    def in_scope(self) -> str:
        """The names readable here, for messages (top-level names first)."""
        names = sorted(self.names, key=lambda n: (n.count("."), n))
        listed = ", ".join("@" + n for n in names[:MAX_LISTED])
        more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
        return (listed + more) if names else "no names are bound yet"

    def scope_text(self) -> str:
        return "a name in scope: " + self.in_scope() if self.names else self.in_scope()

    def lookup(self, name: str, span: Span):
        if name in self.names:
            return self.names[name]
        if name in self.skipped:
            where = self.skipped[name]
            raise SpecError(f"@{name} was not computed: its item did not run "
                            f"(the condition at line {where.line} is false)", span,
                            expected=self.scope_text(), hint="read it only when that condition holds")
        if name in self.later and self.later[name] < span.line:
            raise SpecError(f"@{name} was not computed: the item that binds it (line {self.later[name]}) "
                            "did not run (an untaken if, or a false when)", span, expected=self.scope_text())
        if name in self.later:
            raise SpecError(f"@{name} is not computed yet: it is bound further down "
                            f"(line {self.later[name]})", span, expected=self.scope_text(),
                            hint="a tensor can be read only after the item that computes it")
        raise SpecError(f"unknown tensor @{name}", span, expected=self.scope_text(),
                        hint=suggest(name, self.names))


def declared_names(items) -> dict[str, int]:
    """Plain (non-interpolated) names a body binds anywhere, with the line of each."""
    found: dict[str, int] = {}

    def note(head: ast.Head | None, name: ast.NameText | None = None):
        for text in (head.name if head is not None else None, name):
            if text is not None and text.is_plain:
                found.setdefault(text.parts[0], text.span.line)

    def walk(body):
        for item in body or ():
            if isinstance(item, ast.Let):
                continue
            if isinstance(item, ast.Line):
                for chain in item.chains:
                    note(chain.label)
                    for head in chain.heads:
                        note(None, head.bind)
            elif isinstance(item, ast.Group):
                note(item.label, item.head.bind)
                walk(item.body)
            elif isinstance(item, (ast.Repeat, ast.For)):
                note(item.label)
                walk(item.body)
            elif isinstance(item, ast.If):
                for _, body_ in item.branches:
                    walk(body_)
                walk(item.orelse)
            elif isinstance(item, ast.Output) and isinstance(item.key, ast.Name):
                found.setdefault(item.key.id, item.span.line)
    walk(items)
    return found


class GraphEvaluator(Evaluator):
    """An :class:`Evaluator` that can also read tensors: ``read(node)`` resolves an ``@name``."""

    def __init__(self, env: Env, in_shape: tuple | None, read):
        super().__init__(env, in_shape)
        self.read = read

    def _TensorRef(self, node: ast.TensorRef):
        return self.read(node, self)


def expect_tensor(value, span: Span, what: str = "a tensor") -> Value:
    """``value`` if it is one tensor; else a located error."""
    if isinstance(value, Value):
        return value
    raise SpecError(f"expected {what}, got {describe(value)}", span, expected="@name")


def join_notes(inputs: list, names: list) -> tuple:
    """One line per input of an op-form join: where it comes from and its shape."""
    return tuple(f"{name}: {shape_text(v.shape)}" for name, v in zip(names, inputs))


def output_key(item: ast.Output, ev: Evaluator) -> str:
    """The key an ``output`` declares: a bare name as written, else a string expression."""
    if isinstance(item.key, ast.Name):
        return item.key.id
    key = ev(item.key)
    if not isinstance(key, str) or not key:
        raise SpecError(f"an output key must be a non-empty string, got {describe(key)}", item.key.span,
                        expected='a name, a string ("pool") or a string expression (str(i))')
    return key


def source_text(span: Span) -> str:
    """The spec text a span covers (one line), for messages."""
    line = span.source.line(span.line)
    end = span.end_column if span.end_column else len(line) + 1
    return line[span.column - 1:end - 1].strip() or "?"
