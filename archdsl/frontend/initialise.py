"""Initialisation and in-place keywords during elaboration: ``init`` rules, ``init =``/``bias_init =``.

A rule ``init conv.weight = kaiming_normal(mode = "fan_out")`` holds for the rest
of the enclosing block or network, blocks it calls included; an op's own
``init =`` (its weight, or the tensor of ``parameter``/``class_token``/
``position_embedding``) and ``bias_init =`` win over rules. The result is a
``{role: Init}`` dict recorded on the IR node (see :mod:`archdsl.ir.init`).
"""

from __future__ import annotations

from . import ast
from ..errors import SpecError, Span, describe, suggest
from ..ir.init import Init
from ..ir.ops import REGISTRY, Category
from .expr import InitMaker

INIT_KEYWORDS = {"weight": "init", "bias": "bias_init"}  # role → the op keyword that sets it


def as_init(value, span: Span) -> Init:
    """An initialiser from a spec value (``zeros``, ``normal(std = 0.01)``, ``xavier_uniform``)."""
    if isinstance(value, InitMaker):
        return value.make([], {}, span)
    if not isinstance(value, Init):
        raise SpecError(f"an init must be an initialiser, got {describe(value)}", span,
                        expected="zeros, ones, constant(v), uniform(a, b), normal(mean, std), "
                                 "trunc_normal(std = …), kaiming_normal(…), kaiming_uniform(…), "
                                 "xavier_uniform(…), xavier_normal(…) or default")
    return value


def _keyword_span(head: ast.Head, keyword: str) -> Span:
    return next(kw.value.span for kw in head.kwargs if kw.name == keyword)


class InitRules:
    """The ``init`` rules in force: ``(op, role) → Init``."""

    def __init__(self):
        self.rules: dict = {}

    def add(self, rule: ast.InitRule, value) -> None:
        """Record ``init op.role = value`` (``value`` already evaluated)."""
        if rule.op not in REGISTRY or not REGISTRY[rule.op].traits.emits_node:
            raise SpecError(f"unknown op {rule.op!r} in an init rule", rule.span,
                            expected="init <op>.weight = … or init <op>.bias = …",
                            hint=suggest(rule.op, REGISTRY))
        if rule.role not in INIT_KEYWORDS:
            raise SpecError(f"an init rule sets a weight or a bias, not {rule.role!r}", rule.span,
                            expected=f"init {rule.op}.weight = … or init {rule.op}.bias = …")
        self.rules[(rule.op, rule.role)] = as_init(value, rule.value.span)

    def snapshot(self) -> dict:
        return dict(self.rules)

    def restore(self, saved: dict) -> None:
        self.rules = saved

    def for_op(self, op: str, attrs: dict, head: ast.Head, declared: dict) -> dict:
        """The op's initialisers by role: the rules in force, then its own ``init``/``bias_init``."""
        roles = REGISTRY[op].inits(attrs)
        inits = {role: self.rules[(op, role)] for role in roles if (op, role) in self.rules}
        for role, raw in declared.items():
            span = _keyword_span(head, INIT_KEYWORDS[role])
            if role not in roles:
                what = "learnable tensors" if not roles else role
                raise SpecError(f"{op} has no {what} to initialise here", span,
                                expected=f"init only for {', '.join(roles)}" if roles else "no init")
            if raw is not None:
                inits[role] = as_init(raw, span)
        return {role: init for role, init in inits.items() if init.kind != "default"}


def take_init_keywords(kwargs: dict) -> dict:
    """Remove ``init``/``bias_init`` from an op call's keywords: ``{role: value}``."""
    return {role: kwargs.pop(key) for role, key in INIT_KEYWORDS.items() if key in kwargs}


def take_inplace_keyword(op: str, head: ast.Head, kwargs: dict):
    """``inplace = false`` on an activation: never overwrite the input (None when not written)."""
    if "inplace" not in kwargs or REGISTRY[op].category is not Category.ACTIVATION:
        return None
    value = kwargs.pop("inplace")
    if not isinstance(value, bool):
        raise SpecError(f"inplace must be true or false, got {describe(value)}", _keyword_span(head, "inplace"))
    return value
