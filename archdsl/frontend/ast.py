"""Typed, immutable syntax tree of a ``.arch`` spec.

Every node carries its source span as the first field, so any later stage can
point at the text that caused a problem. Nodes hold syntax only; meaning is
decided during elaboration.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, Union

from ..errors import Span


class Node:
    """Base of every syntax-tree node: fields from the class's annotations (in order, with the
    class-level defaults), immutable, compared and hashed by type and value, printed as
    ``Call(span=…, func=…)`` — what ``@dataclass(frozen=True)`` gives, made once here instead of
    generated per class (that cost ~1.5 ms per class, ~50 ms of every command's start-up).

    Raises ``TypeError`` for a missing, unknown or repeated argument, and
    ``dataclasses.FrozenInstanceError`` on assignment.
    """

    __slots__ = ()
    _fields: tuple = ()
    _defaults: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(cls.__dict__.get("__annotations__", {}))
        cls._defaults = {name: cls.__dict__[name] for name in cls._fields if name in cls.__dict__}
        cls.__match_args__ = cls._fields

    def __init__(self, *args, **kwargs):
        fields = self._fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} fields, {len(args)} given")
        values = dict(zip(fields, args))
        for name, value in kwargs.items():
            if name not in fields or name in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected or repeated field {name!r}")
            values[name] = value
        if len(values) < len(fields):
            for name in fields:
                if name not in values:
                    if name not in self._defaults:
                        raise TypeError(f"{type(self).__name__}() missing field {name!r}")
                    values[name] = self._defaults[name]
        object.__setattr__(self, "__dict__", values)

    def _values(self) -> tuple:
        values = self.__dict__
        return tuple(values[name] for name in self._fields)

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self):
        return hash(self._values())

    def __repr__(self):
        return f"{type(self).__qualname__}(" + ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self._values())) + ")"

    def __setattr__(self, name, value):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name):
        raise FrozenInstanceError(f"cannot delete field {name!r}")


# ---- expressions ---------------------------------------------------------------

class Const(Node):
    span: Span
    value: Any


class Name(Node):
    span: Span
    id: str


class InShape(Node):
    """``in``: the shape of the tensor flowing into the current item."""
    span: Span


class ListExpr(Node):
    span: Span
    items: tuple
    is_tuple: bool = False


class BinOp(Node):
    span: Span
    op: str
    left: Any
    right: Any


class UnaryOp(Node):
    span: Span
    op: str  # "-", "+", "not"
    operand: Any


class BoolOp(Node):
    span: Span
    op: str  # "and" / "or"
    left: Any
    right: Any


class Compare(Node):
    span: Span
    left: Any
    ops: tuple
    rights: tuple


class CondExpr(Node):
    span: Span
    cond: Any
    then: Any
    other: Any


class Keyword(Node):
    span: Span
    name: str
    value: Any


class Call(Node):
    span: Span
    func: Any
    args: tuple
    kwargs: tuple  # of Keyword


class Index(Node):
    span: Span
    value: Any
    index: Any


class Slice(Node):
    span: Span
    lower: Any
    upper: Any


class Attr(Node):
    span: Span
    value: Any
    attr: str


class TensorRef(Node):
    """``@name``: a tensor bound earlier (``@enc{i}``, ``@body.layer3``); ``name`` is a NameText."""
    span: Span
    name: Any


Expr = Union[Const, Name, InShape, ListExpr, BinOp, UnaryOp, BoolOp, Compare, CondExpr,
             Call, Index, Slice, Attr, TensorRef]


# ---- network items --------------------------------------------------------------

class Target(Node):
    """A name, or a tuple of targets for unpacking (``for i, (c, n) in ...``)."""
    span: Span
    name: str | None
    items: tuple = ()


class NameText(Node):
    """A possibly interpolated name: ``layer{i + 1}`` is ("layer", <expr>)."""
    span: Span
    parts: tuple  # str or expression

    @property
    def is_plain(self) -> bool:
        return len(self.parts) == 1 and isinstance(self.parts[0], str)

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else "{…}" for p in self.parts)


class Head(Node):
    """``name(args) when cond``: an op or block call, or a group's kind."""
    span: Span
    name: NameText
    args: tuple
    kwargs: tuple
    has_call: bool
    when: Any | None
    bind: NameText | None = None  # ``… as name``: binds the output tensor to a name


class Chain(Node):
    """``[label:] a -> b -> c``; a label on one element names it, on several scopes them.

    ``source`` (an expression reading a tensor, ``@t``) starts the chain from
    that tensor instead of the live one: ``@t -> [label:] a -> b``, or ``@t`` alone.
    """
    span: Span
    label: Head | None
    heads: tuple
    source: Any | None = None


class Line(Node):
    span: Span
    chains: tuple


class Group(Node):
    """``[label:] head:`` followed by an indented body (add:, concat:, a named scope…)."""
    span: Span
    label: Head | None
    head: Head
    body: tuple


class Repeat(Node):
    span: Span
    label: Head | None
    count: Any
    var: str | None
    body: tuple


class For(Node):
    span: Span
    label: Head | None
    target: Target
    iterable: Any
    body: tuple


class If(Node):
    span: Span
    branches: tuple  # of (cond, body)
    orelse: tuple | None


class Aux(Node):
    span: Span
    head: Head
    body: tuple


class Let(Node):
    span: Span
    target: Target
    value: Any


class Output(Node):
    """``output key`` (the live tensor) or ``output key: value`` (``value`` reads a tensor)."""
    span: Span
    key: Any
    value: Any | None
    when: Any | None


class InitRule(Node):
    """``init conv.weight = kaiming_normal(mode = "fan_out")``: how the op's tensors of that role
    start, for the rest of the enclosing block or network (blocks it calls included)."""
    span: Span
    op: str
    role: str
    value: Any


Item = Union[Line, Group, Repeat, For, If, Aux, Let, Output, InitRule]


# ---- top level ------------------------------------------------------------------

class ArchDecl(Node):
    """``arch resnet``: the family name (used for messages and the default network name)."""
    name: str


class NetworkDef(Node):
    """``network:`` and its items."""
    span: Span
    items: tuple


class Param(Node):
    span: Span
    name: str
    default: Any | None
    tensor: bool = False  # ``@name``: the argument is a tensor (or a list of them)


class FnDef(Node):
    span: Span
    name: str
    params: tuple
    lets: tuple
    result: Any


class BlockDef(Node):
    span: Span
    name: str
    params: tuple
    body: tuple


class Variant(Node):
    span: Span
    name: str
    assignments: tuple  # of Keyword


class Import(Node):
    span: Span
    path: str


class InputDecl(Node):
    span: Span
    dims: tuple
    name: str | None = None  # ``input rgb: 3 x H x W``; None for the one unnamed input


class ParamDecl(Node):
    span: Span
    name: str
    value: Any


class Module(Node):
    """A whole spec file."""
    span: Span
    arch_name: str | None
    input: InputDecl | None
    params: tuple
    variants: tuple
    imports: tuple
    lets: tuple
    functions: tuple
    blocks: tuple
    network: tuple | None
    network_span: Span | None
    inputs: tuple = ()  # every input declaration, in order (``input`` is the first)
