"""The op registry's machinery: typed arguments, traits, :class:`OpDef`, binding.

An :class:`OpDef` holds everything the compiler knows about one primitive op
except its torch code: name, doc, typed arguments, arity, shape rule,
parameter/buffer/MAC counts, diagram label and :class:`Traits`. The ops
themselves are defined in :mod:`archdsl.ir.ops`; their torch lowerings live in
:mod:`archdsl.backends.lowerings`, keyed by the same names. Nothing here
imports torch, so analysis never allocates.

Shapes exclude the batch: ``(C, H, W)`` for feature maps, ``(F,)`` for vectors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import describe, is_int


class ArgProblem(Exception):
    """An argument value is invalid; the elaborator adds the span of ``arg`` (a name or index)."""

    def __init__(self, message: str, arg=None):
        super().__init__(message)
        self.arg = arg


class ShapeProblem(Exception):
    """The op cannot take its input shape; the elaborator adds the span."""


class ArgKind(str, enum.Enum):
    """What an op argument accepts; each kind validates and normalises its value."""

    POSITIVE_INT = "positive_int"
    NONNEG_INT = "nonneg_int"
    NUMBER = "number"
    PROBABILITY = "probability"
    BOOLEAN = "boolean"
    PAIR = "pair"
    SIZE = "size"
    PADDING = "padding"
    NUMBER_LIST = "number_list"
    DIMS = "dims"
    CHOICE = "choice"
    TENSOR = "tensor"  # a tensor read by name (`like = @t`): an extra input; attrs hold its shape

    def text(self, choices: tuple = ()) -> str:
        """The kind in words, for messages and ``archdsl ops``."""
        if self is ArgKind.CHOICE:
            return "one of " + ", ".join(repr(c) for c in choices)
        return _KIND_TEXT[self]


_KIND_TEXT = {
    ArgKind.POSITIVE_INT: "a positive integer", ArgKind.NONNEG_INT: "a non-negative integer",
    ArgKind.NUMBER: "a number", ArgKind.PROBABILITY: "a number in [0, 1)",
    ArgKind.BOOLEAN: "true or false", ArgKind.PAIR: "a positive integer or a pair of them",
    ArgKind.SIZE: "a positive integer or a pair of them",
    ArgKind.PADDING: "a non-negative integer, a pair of them, or \"same\"",
    ArgKind.NUMBER_LIST: "a list of numbers",
    ArgKind.TENSOR: "a tensor (@name)",
    ArgKind.DIMS: "a list of non-negative integers",
}

REQUIRED = object()


def value_text(value) -> str:
    """A default value as spec text: ``true``, ``none``, ``"row"``, ``(1, 1)``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1]:
            return value_text(value[0])
        return "(" + ", ".join(value_text(v) for v in value) + ")"
    return repr(value)


@dataclass(frozen=True)
class Arg:
    """One op argument: its name, kind, doc and default (``REQUIRED`` when it has none)."""

    name: str
    kind: ArgKind
    doc: str
    default: Any = REQUIRED
    choices: tuple = ()

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def describe(self) -> str:
        return self.kind.text(self.choices)

    def check(self, value):
        """The normalised value (pairs as tuples, numbers as floats); raises :class:`ArgProblem`."""
        try:
            return _check_kind(self, value)
        except ArgProblem as problem:
            raise ArgProblem(str(problem), self.name) from None


def _bad(arg: Arg, value, shown=None):
    return ArgProblem(f"{arg.name} must be {arg.describe()}, got {shown or repr(value)}")


def _check_kind(arg: Arg, value):
    kind = arg.kind
    if kind in (ArgKind.POSITIVE_INT, ArgKind.NONNEG_INT):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not is_int(value) or value < (1 if kind is ArgKind.POSITIVE_INT else 0):
            raise _bad(arg, value)
        return value
    if kind is ArgKind.NUMBER:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _bad(arg, value, describe(value))
        return float(value)
    if kind is ArgKind.PROBABILITY:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise _bad(arg, value)
        return float(value)
    if kind is ArgKind.BOOLEAN:
        if not isinstance(value, bool):
            raise _bad(arg, value, describe(value))
        return value
    if kind in (ArgKind.PAIR, ArgKind.SIZE, ArgKind.PADDING):
        if kind is ArgKind.PADDING and value == "same":
            return "same"
        low = 0 if kind is ArgKind.PADDING else 1
        items = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
        if len(items) != 2 or not all(is_int(v) and v >= low for v in items):
            raise _bad(arg, value)
        return items
    if kind is ArgKind.NUMBER_LIST:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise _bad(arg, value, describe(value))
        return tuple(float(v) for v in value)
    if kind is ArgKind.TENSOR:  # tensors are taken out before binding; anything else is wrong
        raise _bad(arg, value, describe(value))
    if kind is ArgKind.DIMS:
        if isinstance(value, (list, tuple)) and all(isinstance(v, float) and v.is_integer() for v in value):
            value = [int(v) for v in value]
        if not isinstance(value, (list, tuple)) or not value or not all(is_int(v) and v >= 0 for v in value):
            raise _bad(arg, value, describe(value) if not isinstance(value, (list, tuple)) else None)
        return tuple(value)
    if value not in arg.choices:  # ArgKind.CHOICE
        raise _bad(arg, value)
    return value


class Category(str, enum.Enum):
    """What kind of op this is; diagrams, the printer and training read it."""

    CONV = "conv"
    NORM = "norm"
    ACTIVATION = "activation"
    POOL = "pool"
    LINEAR = "linear"
    RESHAPE = "reshape"
    REGULARIZER = "regularizer"
    JOIN = "join"


@dataclass(frozen=True)
class Traits:
    """Facts about an op that passes and back ends decide by.

    ``emits_node``: elaboration adds an IR node (``identity`` adds none).
    ``inplace_safe``: may overwrite its (first) input when nothing else reads it
    (activations with an in-place form; ``add`` accumulating into a branch).
    ``fresh_output``: returns a newly allocated tensor, so a consumer may
    overwrite it. ``aliases_input``: returns either a new tensor or its input
    itself (dropout and stochastic depth in eval mode), so its output may be
    overwritten exactly when its input may. ``varies``: its output differs
    between runs in training mode (dropout, stochastic depth), and its
    arguments may differ between otherwise identical repeated blocks.
    """

    category: Category
    emits_node: bool = True
    inplace_safe: bool = False
    fresh_output: bool = False
    aliases_input: bool = False
    varies: bool = False


def _zero(attrs, ins, out) -> int:
    return 0


def _no_tensors(attrs) -> tuple:
    return ()


def weight_and_bias(attrs) -> tuple:
    """Roles of an op with a weight and an optional bias (``bias`` or ``affine`` false: none)."""
    if attrs.get("affine") is False:
        return ()
    return ("weight", "bias") if attrs.get("bias", True) else ("weight",)


def weight_only(attrs) -> tuple:
    """Roles of an op with one learnable tensor."""
    return ("weight",)


@dataclass(frozen=True)
class OpDef:
    """One primitive op: its arguments and every rule the compiler needs.

    ``shape(attrs, in_shapes) -> out_shape`` raises :class:`ShapeProblem`;
    ``params``, ``buffers`` and ``macs`` take ``(attrs, in_shapes, out_shape)``
    and return element counts (MACs in torchvision's ``_ops`` convention);
    ``label(attrs)`` is the diagram text. ``inputs`` is the arity (-1: any
    number, for joins). ``inits(attrs)`` names the learnable tensors a spec's
    ``init`` can set (``("weight", "bias")``; none by default).
    """

    name: str
    doc: str
    args: tuple
    shape: Callable[[dict, tuple], tuple]
    traits: Traits
    params: Callable[[dict, tuple, tuple], int] = _zero
    buffers: Callable[[dict, tuple, tuple], int] = _zero
    macs: Callable[[dict, tuple, tuple], int] = _zero
    label: Callable[[dict], str] | None = None
    inputs: int = 1
    inits: Callable[[dict], tuple] = _no_tensors
    arg_names: tuple = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "arg_names", tuple(a.name for a in self.args))

    @property
    def category(self) -> Category:
        return self.traits.category

    def signature(self) -> str:
        """``conv(out, kernel, stride=1, …)``, defaults written as in a spec."""
        parts = [a.name if a.required else f"{a.name}={value_text(a.default)}" for a in self.args]
        return f"{self.name}({', '.join(parts)})"

    def label_text(self, attrs: dict) -> str:
        """The short text a diagram shows, e.g. ``conv 3×3/2, 64``."""
        return self.label(attrs) if self.label else self.name

    def bind(self, args: list, kwargs: dict) -> dict:
        """Validate and normalise call arguments into the op's attribute dict.

        Raises :class:`ArgProblem` naming the offending argument (a name, or
        the index of a surplus positional argument).
        """
        if len(args) > len(self.args):
            raise ArgProblem(f"{self.name} takes at most {len(self.args)} positional arguments, "
                             f"got {len(args)}", len(self.args))
        bound = dict(zip(self.arg_names, args))
        for key, value in kwargs.items():
            if key not in self.arg_names:
                raise ArgProblem(f"{self.name} has no argument {key!r}", key)
            if key in bound:
                raise ArgProblem(f"{self.name} got two values for {key!r}", key)
            bound[key] = value
        attrs = {}
        for arg in self.args:
            if arg.name in bound:
                value = bound[arg.name]
                attrs[arg.name] = None if value is None and not arg.required else arg.check(value)
            elif arg.required:
                raise ArgProblem(f"{self.name} is missing the argument {arg.name!r}")
            else:
                attrs[arg.name] = arg.default
        return attrs

    def describe(self) -> dict:
        """A JSON-ready description (what ``archdsl ops --json`` prints)."""
        return {
            "name": self.name, "doc": self.doc, "category": self.category.value,
            "inputs": "any" if self.inputs < 0 else self.inputs,
            "args": [{"name": a.name, "kind": a.kind.value, "accepts": a.describe(), "doc": a.doc,
                      **({} if a.required else {"default": a.default})} for a in self.args],
            "traits": {"emits_node": self.traits.emits_node, "inplace_safe": self.traits.inplace_safe,
                       "fresh_output": self.traits.fresh_output, "varies": self.traits.varies},
        }


REGISTRY: dict[str, OpDef] = {}
_BY_CATEGORY: dict = {}  # ops_in's answers; elaboration asks for every node


def register(op: OpDef) -> OpDef:
    """Add ``op`` to :data:`REGISTRY`; a name registered twice is an error."""
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} registered twice")
    REGISTRY[op.name] = op
    _BY_CATEGORY.clear()
    return op


def ops_in(category: Category) -> tuple[str, ...]:
    """The names of the registered ops of one category, in registration order."""
    found = _BY_CATEGORY.get(category)
    if found is None:
        found = _BY_CATEGORY[category] = tuple(name for name, op in REGISTRY.items() if op.category is category)
    return found


def joins() -> tuple[str, ...]:
    """Ops written as groups (``add:``, ``concat:``): the join category."""
    return ops_in(Category.JOIN)
