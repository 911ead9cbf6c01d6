"""The spec expression language: a small, safe evaluator over the AST.

Values are Python ints, floats, bools, strings, None, tuples/lists, and
:class:`UserFunction` / :class:`Builtin` callables. Nothing here ever runs
Python code from a spec; every operation is dispatched explicitly.
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

from . import ast
from ..errors import SpecError, Span, describe, is_int, shape_text, suggest
from ..ir.init import CONSTANT_NAMES, INITIALIZERS, Init, make_init, signature
from ..ir.registry import ArgProblem
from .budget import Budget, active_budget, check_value, metering, weight  # noqa: F401 (re-exported)


class Env:
    """A lexical scope: names bound here, then in the parent."""

    def __init__(self, parent: "Env | None" = None, values: dict | None = None):
        self.parent = parent
        self.values = dict(values or {})

    def lookup(self, name: str):
        env = self
        while env is not None:
            if name in env.values:
                return env.values[name]
            env = env.parent
        raise KeyError(name)

    def has(self, name: str) -> bool:
        try:
            self.lookup(name)
            return True
        except KeyError:
            return False

    def names(self) -> set[str]:
        out, env = set(), self
        while env is not None:
            out |= set(env.values)
            env = env.parent
        return out

    def child(self, values: dict | None = None) -> "Env":
        return Env(self, values)


@dataclass(frozen=True)
class ShapeView:
    """What ``in`` evaluates to: the incoming tensor's shape (batch excluded)."""

    shape: tuple
    kind_text = "the input shape"

    def attribute(self, name: str):
        if name == "shape":
            return self.shape
        if len(self.shape) == 2:  # a sequence: tokens x dim
            if name in ("tokens", "dim", "features"):
                return self.shape[0] if name == "tokens" else self.shape[1]
            raise KeyError(name)
        if name in ("channels", "features"):
            return self.shape[0]
        if len(self.shape) == 3 and name in ("height", "width"):
            return self.shape[1] if name == "height" else self.shape[2]
        raise KeyError(name)

    def __str__(self):
        return shape_text(self.shape)


@dataclass(frozen=True)
class UserFunction:
    """A pure function written in the spec with ``fn``."""

    definition: ast.FnDef
    env: Env
    kind_text = "a function"

    def __str__(self):
        return f"function {self.definition.name}"


@dataclass(frozen=True)
class Builtin:
    name: str
    fn: Callable
    arity: tuple  # (min, max)
    kind_text = "a function"

    def __str__(self):
        return f"builtin {self.name}"


@dataclass(frozen=True)
class InitMaker:
    """An initialiser name such as ``kaiming_normal``: called with its arguments, it gives an Init."""

    kind: str
    kind_text = "an initialiser"

    def __str__(self):
        return f"initialiser {self.kind}"

    def make(self, args: list, kwargs: dict, span: Span) -> Init:
        try:
            return make_init(self.kind, args, kwargs)
        except ArgProblem as problem:
            raise SpecError(str(problem), span, expected=signature(self.kind)) from None


def _initialiser(name: str):
    """What an initialiser's bare name means: ``zeros`` is an Init; ``trunc_normal`` is callable."""
    if name in CONSTANT_NAMES:
        return Init(name)
    return InitMaker(name) if name in INITIALIZERS else None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) or isinstance(v, bool)


def _check_size(n: int) -> int:
    limit = active_budget().limits.max_sequence
    if n > limit:
        raise ValueError(f"a sequence of {n:,} items is too long (limit {limit:,})")
    return n


def _sum(items, start=0):
    """``sum``, with lists and strings joined only after their total size is checked."""
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"sum() takes a list, got {describe(items)}")
    if isinstance(start, (list, tuple)):
        if not all(type(i) is type(start) for i in items):
            raise TypeError("sum() can only join lists of the type of its start value")
        _check_size(len(start) + sum(len(i) for i in items))
        return type(start)(itertools.chain(start, *items))
    if not all(_is_number(i) for i in items + type(items)((start,))):
        raise TypeError("sum() adds numbers; give a start value like [] to join lists")
    return sum(items, start)


def _text_size(value, limit: int) -> int:
    """An upper bound on ``len(str(value))``, counted up to just past ``limit``."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 4
        elif isinstance(item, (list, tuple)):
            total += 2 * len(item) + 3
            stack.extend(item)
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        else:
            total += 25
    return total


def _str(value):
    if not (isinstance(value, (str, bool, int, float, list, tuple)) or value is None):
        raise TypeError(f"cannot turn {describe(value)} into a string")
    _check_size(_text_size(value, active_budget().limits.max_sequence))
    return str(value)


def _range(*args):
    for a in args:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"range() takes integers, got {describe(a)}")
    r = range(*args)
    _check_size(len(r))
    return tuple(r)


class SpecFailure(Exception):
    """Raised by the ``error(message)`` builtin: a spec rejecting its own parameters."""


def _error(message):
    raise SpecFailure(str(message))


def _round(x, ndigits=None):
    return round(x) if ndigits is None else round(x, ndigits)


def _seq(fn):
    def wrapped(*args):
        return tuple(fn(*args))
    return wrapped


BUILTINS = {b.name: b for b in [
    Builtin("int", int, (1, 1)), Builtin("float", float, (1, 1)), Builtin("bool", bool, (1, 1)),
    Builtin("str", _str, (1, 1)), Builtin("round", _round, (1, 2)),
    Builtin("ceil", math.ceil, (1, 1)), Builtin("floor", math.floor, (1, 1)),
    Builtin("abs", abs, (1, 1)), Builtin("min", min, (1, 99)), Builtin("max", max, (1, 99)),
    Builtin("sum", _sum, (1, 2)), Builtin("len", len, (1, 1)), Builtin("range", _range, (1, 3)),
    Builtin("enumerate", _seq(enumerate), (1, 2)), Builtin("zip", _seq(zip), (1, 9)),
    Builtin("list", list, (0, 1)), Builtin("tuple", tuple, (0, 1)),
    Builtin("reversed", _seq(reversed), (1, 1)), Builtin("sorted", sorted, (1, 1)),
    Builtin("any", any, (1, 1)), Builtin("all", all, (1, 1)),
    Builtin("sqrt", math.sqrt, (1, 1)), Builtin("log", math.log, (1, 2)),
    Builtin("error", _error, (1, 1)),
]}

_BINARY = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
}
_COMPARE = {
    "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
    "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
}


def truth(value, span: Span) -> bool:
    if isinstance(value, (bool, int, float, str, tuple, list)) or value is None:
        return bool(value)
    raise SpecError(f"{describe(value)} cannot be used as a condition", span,
                    expected="a boolean")



def bind_arguments(what: str, params: tuple, args: list, kwargs: dict, span: Span,
                   default_eval: Callable[[Any], Any]) -> dict:
    """Match positional and keyword arguments to ``params`` (a tuple of ast.Param)."""
    names = [p.name for p in params]
    if len(args) > len(params):
        raise SpecError(f"{what} takes {len(params)} positional argument{'s' * (len(params) != 1)} "
                        f"but {len(args)} were given", span,
                        expected=f"({', '.join(names)})" if names else "no arguments")
    bound = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in names:
            raise SpecError(f"{what} has no parameter {key!r}", span,
                            expected=f"one of: {', '.join(names)}" if names else "no arguments",
                            hint=suggest(key, names))
        if key in bound:
            raise SpecError(f"{what} got two values for {key!r}", span)
        bound[key] = value
    for p in params:
        if p.name not in bound:
            if p.default is None:
                raise SpecError(f"{what} is missing the argument {p.name!r}", span,
                                expected=f"({', '.join(names)})")
            bound[p.name] = default_eval(p.default)
    return bound


def bind_target(target: ast.Target, value, env: Env) -> None:
    """Bind ``value`` to a name or unpack it into a tuple of targets."""
    if target.name is not None:
        env.values[target.name] = value
        return
    if not isinstance(value, (tuple, list)):
        raise SpecError(f"cannot unpack {describe(value)} into {len(target.items)} names", target.span)
    if len(value) != len(target.items):
        raise SpecError(f"cannot unpack {len(value)} values into {len(target.items)} names",
                        target.span, expected=f"{len(target.items)} values")
    for t, v in zip(target.items, value):
        bind_target(t, v, env)


class Evaluator:
    """Evaluates expressions in an :class:`Env`; ``in_shape`` is what ``in`` reads."""

    def __init__(self, env: Env, in_shape: tuple | None = None, depth: int = 0,
                 budget: Budget | None = None):
        self.env = env
        self.in_shape = in_shape
        self.depth = depth
        self.budget = budget or active_budget()

    def __call__(self, node):
        budget = self.budget
        budget.charge(1, node.span)
        if budget.depth >= budget.limits.max_eval_depth:
            raise SpecError(f"evaluation nests deeper than {budget.limits.max_eval_depth} levels",
                            node.span, hint="is a function recursing without reaching its base case?")
        budget.depth += 1
        try:
            return getattr(self, "_" + type(node).__name__)(node)
        finally:
            budget.depth -= 1

    def nested(self, env: Env, depth: int) -> "Evaluator":
        return Evaluator(env, self.in_shape, depth, self.budget)

    def _Const(self, node: ast.Const):
        return node.value

    def _Name(self, node: ast.Name):
        try:
            return self.env.lookup(node.id)
        except KeyError:
            if node.id in BUILTINS:
                return BUILTINS[node.id]
            if _initialiser(node.id) is not None:
                return _initialiser(node.id)
            raise SpecError(f"undefined name {node.id!r}", node.span,
                            hint=suggest(node.id, self.env.names() | set(BUILTINS) | set(INITIALIZERS))) from None

    def _InShape(self, node: ast.InShape):
        if self.in_shape is None:
            raise SpecError("'in' (the input shape) is only defined inside the network", node.span)
        return ShapeView(tuple(self.in_shape))

    def _ListExpr(self, node: ast.ListExpr):
        items = [self(i) for i in node.items]
        return check_value(tuple(items) if node.is_tuple else items, node.span, self.budget)

    def _BinOp(self, node: ast.BinOp):
        left, right = self(node.left), self(node.right)
        op = node.op
        try:
            self.check_operands(op, left, right)
            return check_value(_BINARY[op](left, right), node.span, self.budget)
        except ZeroDivisionError:
            raise SpecError("division by zero", node.span,
                            notes=(f"the right-hand side of {op!r} evaluated to 0",)) from None
        except OverflowError:
            raise SpecError(f"the result of {op!r} is too large for a number", node.span) from None
        except (TypeError, ValueError) as err:
            detail = str(err) or f"cannot apply {op!r} to {describe(left)} and {describe(right)}"
            raise SpecError(detail, node.span) from None

    def check_operands(self, op: str, left, right) -> None:
        """Refuse, before computing it, a result past the size limits (or of mixed types)."""
        lim = self.budget.limits
        if op == "*" and isinstance(left, (list, tuple, str)) and is_int(right):
            _check_size(weight(left, lim.max_sequence) * max(right, 0))
        if op == "*" and isinstance(right, (list, tuple, str)) and is_int(left):
            _check_size(weight(right, lim.max_sequence) * max(left, 0))
        if op == "+" and type(left) is not type(right) and not (_is_number(left) and _is_number(right)):
            raise TypeError()
        if op in ("-", "/", "//", "%", "**") and not (_is_number(left) and _is_number(right)):
            raise TypeError()
        if op == "+" and isinstance(left, (list, tuple, str)):
            _check_size(weight(left, lim.max_sequence) + weight(right, lim.max_sequence))
        if op == "*" and is_int(left) and is_int(right) \
                and left.bit_length() + right.bit_length() > lim.max_int_bits + 1:
            raise ValueError(f"the product would exceed {lim.max_int_bits} bits")
        if op == "**" and is_int(left) and is_int(right) and abs(left) > 1 \
                and (abs(left).bit_length() - 1) * right > lim.max_int_bits:
            raise ValueError(f"the power would exceed {lim.max_int_bits} bits")

    def _UnaryOp(self, node: ast.UnaryOp):
        value = self(node.operand)
        if node.op == "not":
            return not truth(value, node.operand.span)
        if not _is_number(value):
            raise SpecError(f"cannot apply unary {node.op!r} to {describe(value)}", node.span,
                            expected="a number")
        return -value if node.op == "-" else +value

    def _BoolOp(self, node: ast.BoolOp):
        left = self(node.left)
        if node.op == "and":
            return self(node.right) if truth(left, node.left.span) else left
        return left if truth(left, node.left.span) else self(node.right)

    def _Compare(self, node: ast.Compare):
        left = self(node.left)
        for op, right_node in zip(node.ops, node.rights):
            right = self(right_node)
            limit = self.budget.limits.max_sequence  # comparing sequences walks them
            self.budget.charge(weight(left, limit) + weight(right, limit), node.span)
            try:
                if not _COMPARE[op](left, right):
                    return False
            except TypeError:
                raise SpecError(f"cannot compare {describe(left)} and {describe(right)} with {op!r}",
                                node.span) from None
            left = right
        return True

    def _CondExpr(self, node: ast.CondExpr):
        return self(node.then) if truth(self(node.cond), node.cond.span) else self(node.other)

    def _Index(self, node: ast.Index):
        value = self(node.value)
        if isinstance(node.index, ast.Slice):
            lo = self(node.index.lower) if node.index.lower is not None else None
            hi = self(node.index.upper) if node.index.upper is not None else None
            if not isinstance(value, (list, tuple, str)):
                raise SpecError(f"cannot slice {describe(value)}", node.span)
            for bound, bound_node in ((lo, node.index.lower), (hi, node.index.upper)):
                if bound is not None and not is_int(bound):
                    raise SpecError(f"a slice bound must be an integer, not {describe(bound)}",
                                    bound_node.span, expected="an integer or nothing")
            return check_value(value[lo:hi], node.span, self.budget)
        index = self(node.index)
        if isinstance(value, ShapeView):
            value = value.shape
        if not isinstance(value, (list, tuple, str)):
            raise SpecError(f"cannot index {describe(value)}", node.span, expected="a list or tuple")
        if not isinstance(index, int) or isinstance(index, bool):
            raise SpecError(f"an index must be an integer, not {describe(index)}", node.index.span)
        if not -len(value) <= index < len(value):
            raise SpecError(f"index {index} is out of range for a sequence of {len(value)} items",
                            node.index.span, expected=f"an index in 0..{len(value) - 1}")
        return value[index]

    def _TensorRef(self, node: ast.TensorRef):
        raise SpecError("a tensor (@name) cannot be read here", node.span,
                        expected="a value; tensors are read inside the network or a block")

    def _Slice(self, node: ast.Slice):
        raise SpecError("a slice is only allowed inside [ ]", node.span)

    def _Attr(self, node: ast.Attr):
        value = self(node.value)
        if isinstance(value, ShapeView):
            try:
                return value.attribute(node.attr)
            except KeyError:
                raise SpecError(f"the input shape has no {node.attr!r}", node.span,
                                expected="channels, height, width or shape (a map); features (a vector); "
                                         "tokens, dim or shape (a sequence)") from None
        raise SpecError(f"{describe(value)} has no attribute {node.attr!r}", node.span)

    def _Call(self, node: ast.Call):
        func = self(node.func)
        args = [self(a) for a in node.args]
        kwargs = {k.name: self(k.value) for k in node.kwargs}
        return self.call(func, args, kwargs, node.span)

    def call(self, func, args, kwargs, span: Span):
        if isinstance(func, InitMaker):
            return func.make(args, kwargs, span)
        if isinstance(func, Builtin):
            low, high = func.arity
            if kwargs:
                raise SpecError(f"{func.name}() takes no keyword arguments", span)
            if not low <= len(args) <= high:
                want = f"{low}" if low == high else f"{low} to {high}"
                raise SpecError(f"{func.name}() takes {want} argument{'s' * (high != 1)}, "
                                f"got {len(args)}", span)
            limit = self.budget.limits.max_sequence  # builtins walk their arguments
            self.budget.charge(sum(weight(a, limit) for a in args), span)
            try:
                return check_value(func.fn(*args), span, self.budget)
            except SpecFailure as failure:
                raise SpecError(str(failure), span) from None
            except (TypeError, ValueError, OverflowError, ZeroDivisionError) as err:
                raise SpecError(f"{func.name}(): {err}", span) from None
        if isinstance(func, UserFunction):
            limit = self.budget.limits.max_call_depth
            if self.depth >= limit:
                raise SpecError(f"too many nested calls of {func.definition.name} "
                                f"(limit {limit}); is it recursive?", span,
                                hint="a recursive function needs a base case it reaches")
            d = func.definition
            bound = bind_arguments(f"{d.name}()", d.params, args, kwargs, span,
                                   self.nested(func.env, self.depth + 1))
            env = func.env.child(bound)
            inner = self.nested(env, self.depth + 1)
            for let in d.lets:
                bind_target(let.target, inner(let.value), env)
            return inner(d.result)
        raise SpecError(f"{describe(func)} is not callable", span)
