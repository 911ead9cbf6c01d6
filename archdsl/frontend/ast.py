"""Typed, immutable syntax tree of a ``.arch`` spec.

Every node carries its source span as the first field, so any later stage can
point at the text that caused a problem. Nodes hold syntax only; meaning is
decided during elaboration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from ..errors import Span


# ---- expressions ---------------------------------------------------------------

@dataclass(frozen=True)
class Const:
    span: Span
    value: Any


@dataclass(frozen=True)
class Name:
    span: Span
    id: str


@dataclass(frozen=True)
class InShape:
    """``in``: the shape of the tensor flowing into the current item."""
    span: Span


@dataclass(frozen=True)
class ListExpr:
    span: Span
    items: tuple
    is_tuple: bool = False


@dataclass(frozen=True)
class BinOp:
    span: Span
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class UnaryOp:
    span: Span
    op: str  # "-", "+", "not"
    operand: Any


@dataclass(frozen=True)
class BoolOp:
    span: Span
    op: str  # "and" / "or"
    left: Any
    right: Any


@dataclass(frozen=True)
class Compare:
    span: Span
    left: Any
    ops: tuple
    rights: tuple


@dataclass(frozen=True)
class CondExpr:
    span: Span
    cond: Any
    then: Any
    other: Any


@dataclass(frozen=True)
class Keyword:
    span: Span
    name: str
    value: Any


@dataclass(frozen=True)
class Call:
    span: Span
    func: Any
    args: tuple
    kwargs: tuple  # of Keyword


@dataclass(frozen=True)
class Index:
    span: Span
    value: Any
    index: Any


@dataclass(frozen=True)
class Slice:
    span: Span
    lower: Any
    upper: Any


@dataclass(frozen=True)
class Attr:
    span: Span
    value: Any
    attr: str


@dataclass(frozen=True)
class TensorRef:
    """``@name``: a tensor bound earlier (``@enc{i}``, ``@body.layer3``); ``name`` is a NameText."""
    span: Span
    name: Any


Expr = Union[Const, Name, InShape, ListExpr, BinOp, UnaryOp, BoolOp, Compare, CondExpr,
             Call, Index, Slice, Attr, TensorRef]


# ---- network items --------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A name, or a tuple of targets for unpacking (``for i, (c, n) in ...``)."""
    span: Span
    name: str | None
    items: tuple = ()


@dataclass(frozen=True)
class NameText:
    """A possibly interpolated name: ``layer{i + 1}`` is ("layer", <expr>)."""
    span: Span
    parts: tuple  # str or expression

    @property
    def is_plain(self) -> bool:
        return len(self.parts) == 1 and isinstance(self.parts[0], str)

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else "{…}" for p in self.parts)


@dataclass(frozen=True)
class Head:
    """``name(args) when cond``: an op or block call, or a group's kind."""
    span: Span
    name: NameText
    args: tuple
    kwargs: tuple
    has_call: bool
    when: Any | None
    bind: NameText | None = None  # ``… as name``: binds the output tensor to a name


@dataclass(frozen=True)
class Chain:
    """``[label:] a -> b -> c``; a label on one element names it, on several scopes them.

    ``source`` (an expression reading a tensor, ``@t``) starts the chain from
    that tensor instead of the live one: ``@t -> [label:] a -> b``, or ``@t`` alone.
    """
    span: Span
    label: Head | None
    heads: tuple
    source: Any | None = None


@dataclass(frozen=True)
class Line:
    span: Span
    chains: tuple


@dataclass(frozen=True)
class Group:
    """``[label:] head:`` followed by an indented body (add:, concat:, a named scope…)."""
    span: Span
    label: Head | None
    head: Head
    body: tuple


@dataclass(frozen=True)
class Repeat:
    span: Span
    label: Head | None
    count: Any
    var: str | None
    body: tuple


@dataclass(frozen=True)
class For:
    span: Span
    label: Head | None
    target: Target
    iterable: Any
    body: tuple


@dataclass(frozen=True)
class If:
    span: Span
    branches: tuple  # of (cond, body)
    orelse: tuple | None


@dataclass(frozen=True)
class Aux:
    span: Span
    head: Head
    body: tuple


@dataclass(frozen=True)
class Let:
    span: Span
    target: Target
    value: Any


@dataclass(frozen=True)
class Output:
    """``output key`` (the live tensor) or ``output key: value`` (``value`` reads a tensor)."""
    span: Span
    key: Any
    value: Any | None
    when: Any | None


@dataclass(frozen=True)
class InitRule:
    """``init conv.weight = kaiming_normal(mode = "fan_out")``: how the op's tensors of that role
    start, for the rest of the enclosing block or network (blocks it calls included)."""
    span: Span
    op: str
    role: str
    value: Any


Item = Union[Line, Group, Repeat, For, If, Aux, Let, Output, InitRule]


# ---- top level ------------------------------------------------------------------

@dataclass(frozen=True)
class ArchDecl:
    """``arch resnet``: the family name (used for messages and the default network name)."""
    name: str


@dataclass(frozen=True)
class NetworkDef:
    """``network:`` and its items."""
    span: Span
    items: tuple


@dataclass(frozen=True)
class Param:
    span: Span
    name: str
    default: Any | None
    tensor: bool = False  # ``@name``: the argument is a tensor (or a list of them)


@dataclass(frozen=True)
class FnDef:
    span: Span
    name: str
    params: tuple
    lets: tuple
    result: Any


@dataclass(frozen=True)
class BlockDef:
    span: Span
    name: str
    params: tuple
    body: tuple


@dataclass(frozen=True)
class Variant:
    span: Span
    name: str
    assignments: tuple  # of Keyword


@dataclass(frozen=True)
class Import:
    span: Span
    path: str


@dataclass(frozen=True)
class InputDecl:
    span: Span
    dims: tuple
    name: str | None = None  # ``input rgb: 3 x H x W``; None for the one unnamed input


@dataclass(frozen=True)
class ParamDecl:
    span: Span
    name: str
    value: Any


@dataclass(frozen=True)
class Module:
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
