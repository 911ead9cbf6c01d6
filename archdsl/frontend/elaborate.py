"""Elaboration: AST → IR graph.

Evaluates parameters and expressions, expands blocks, repeats, loops and
branches, infers every shape and raises every semantic error with the span of
the text that caused it.

Naming follows ``nn.Sequential``: inside a scope, each unnamed op or block call
takes the next index (``0``, ``1``…); a label names it instead. Blocks,
``seq:`` groups and labelled multi-element chains open a new scope; plain
``for``/``repeat``/``if``/``branch:`` and join groups are transparent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from . import ast
from ..errors import ShapeError, SpecError, Span, describe, is_int, shape_text, suggest
from .expr import Env, Evaluator, bind_arguments, bind_target, truth
from ..ir.graph import Architecture, verify
from .initialise import InitRules, take_init_keywords, take_inplace_keyword
from ..ir.ops import REGISTRY, ArgProblem, ShapeProblem, joins
from .resolve import Library, declared_input, load_library, resolve_params

MAX_BLOCK_DEPTH = 100
MAX_NODES = 200_000


@dataclass(frozen=True)
class Value:
    """A tensor during elaboration: the node producing it and its shape."""
    node: str
    shape: tuple


@dataclass
class Scope:
    path: tuple
    counter: list = field(default_factory=lambda: [0])

    def next_index(self) -> str:
        index = self.counter[0]
        self.counter[0] += 1
        return str(index)

    def child(self, name: str) -> "Scope":
        return Scope(self.path + (name,))

    def join(self, name: str) -> str:
        return ".".join(self.path + (name,))


class Elaborator:
    def __init__(self, module: ast.Module, path: str):
        self.module = module
        self.path = path
        self.graph = nx.DiGraph(scopes={})
        self.aux: str | None = None
        self.aux_outputs: dict[str, str] = {}
        self.block_stack: list[str] = []
        self.library = Library()
        self.global_env = Env()
        self.init_rules = InitRules()

    def run(self, variant: str | None, overrides: dict, input_shape: tuple | None = None) -> Architecture:
        if self.module.network is None:
            raise SpecError("the spec has no network section", self.module.span,
                            expected="network: followed by an indented list of ops and blocks")
        self.library = load_library(self.module, self.path)
        env, params = resolve_params(self.module, self.library, self.path, variant, overrides)
        self.global_env = env
        shape = declared_input(self.module, env)
        if input_shape is not None:  # (C, H, W), or (H, W) keeping the spec's channels
            shape = tuple(input_shape) if len(input_shape) == 3 else (shape[0], *input_shape)
        self.graph.add_node("input", op="input", attrs={}, name="input", span=None, shape=shape,
                            in_shapes=(), params=0, buffers=0, macs=0, aux=None, order=0)
        out = self.items(self.module.network, Value("input", shape), env.child(), Scope(()))
        self.graph.graph["output"] = out.node
        verify(self.graph)
        family = self.module.arch_name or Path(self.path).stem
        return Architecture(name=variant or family, family=family, variant=variant,
                            source=self.path, params=params, input_shape=shape, graph=self.graph,
                            output=out.node, aux_outputs=dict(self.aux_outputs))

    # ---- items -----------------------------------------------------------------------

    def items(self, items, value: Value, env: Env, scope: Scope) -> Value:
        for item in items:
            value = self.item(item, value, env, scope)
        return value

    def item(self, item, value: Value, env: Env, scope: Scope) -> Value:
        if isinstance(item, tuple):  # ("let", Let) from the transformer
            item = item[1]
        if isinstance(item, ast.Let):
            bind_target(item.target, self.evaluator(env, value)(item.value), env)
            return value
        if isinstance(item, ast.Line):
            for chain in item.chains:
                value = self.chain(chain, value, env, scope)
            return value
        if isinstance(item, ast.Group):
            return self.group(item, value, env, scope)
        if isinstance(item, (ast.Repeat, ast.For)):
            return self.loop(item, value, env, scope)
        if isinstance(item, ast.If):
            body = self.pick_if(item, value, env)
            return self.items(body, value, env, scope) if body else value
        if isinstance(item, ast.Aux):
            return self.aux_branch(item, value, env, scope)
        if isinstance(item, ast.InitRule):  # for the rest of this block, blocks it calls included
            self.init_rules.add(item, self.evaluator(env, value)(item.value))
            return value
        raise AssertionError(f"unknown item {item!r}")

    def evaluator(self, env: Env, value: Value) -> Evaluator:
        return Evaluator(env, value.shape)

    def when_holds(self, head: ast.Head | None, env: Env, value: Value) -> bool:
        if head is None or head.when is None:
            return True
        return truth(self.evaluator(env, value)(head.when), head.when.span)

    def name_text(self, name: ast.NameText, env: Env, value: Value) -> str:
        parts = []
        for part in name.parts:
            if isinstance(part, str):
                parts.append(part)
                continue
            text = self.evaluator(env, value)(part)
            if isinstance(text, bool) or not isinstance(text, (str, int)):
                raise SpecError(f"a name can only interpolate strings and integers, got {describe(text)}",
                                part.span)
            parts.append(str(text))
        text = "".join(parts)
        # '-' inside a name, for torchvision's keys such as trunk_output.block1.block1-0
        if not text.replace("_", "a").replace("-", "a").isalnum() or text[0].isdigit() \
                or text[0] == "-" or text[-1] == "-":
            raise SpecError(f"{text!r} is not a valid name", name.span,
                            expected="letters, digits, underscores and inner hyphens, "
                                     "not starting with a digit")
        return text

    def label_name(self, label: ast.Head, env: Env, value: Value) -> str:
        if label.has_call:
            raise SpecError("a label takes no arguments", label.span, expected="name:")
        return self.name_text(label.name, env, value)

    def chain(self, chain: ast.Chain, value: Value, env: Env, scope: Scope) -> Value:
        if not self.when_holds(chain.label, env, value):
            return value
        label = self.label_name(chain.label, env, value) if chain.label else None
        if label is not None and len(chain.heads) > 1:
            inner = self.named_scope(scope, label, chain.label.span, "scope", None)
            for head in chain.heads:
                value = self.call(head, value, env, inner, None)
            return value
        for head in chain.heads:
            value = self.call(head, value, env, scope, label,
                              chain.label.span if chain.label is not None else None)
        return value

    def named_scope(self, scope: Scope, name: str, span: Span, kind: str, block: str | None) -> Scope:
        child = scope.child(name)
        key = ".".join(child.path)
        scopes = self.graph.graph["scopes"]
        if key in scopes or key in self.graph:
            raise SpecError(f"the name {key!r} is already used", span,
                            hint="give this item another name")
        scopes[key] = {"kind": kind, "block": block, "span": span}
        return child

    # ---- calls -----------------------------------------------------------------------

    def resolve_callee(self, head: ast.Head, env: Env, value: Value) -> str:
        name = self.name_text(head.name, env, value)
        if head.name.is_plain and env.has(name) and isinstance(env.lookup(name), str):
            name = env.lookup(name)
        return name

    def call(self, head: ast.Head, value: Value, env: Env, scope: Scope, label: str | None,
             label_span: Span | None = None) -> Value:
        if not self.when_holds(head, env, value):
            return value
        callee = self.resolve_callee(head, env, value)
        ev = self.evaluator(env, value)
        args = [ev(a) for a in head.args]
        kwargs = {}
        for kw in head.kwargs:
            if kw.name in kwargs:
                raise SpecError(f"argument {kw.name!r} is given twice", kw.span)
            kwargs[kw.name] = ev(kw.value)
        if callee in self.library.blocks:
            return self.call_block(self.library.blocks[callee], head, args, kwargs, value, scope, label,
                                   label_span or head.span)
        if callee in REGISTRY and callee not in joins():
            return self.call_op(callee, head, args, kwargs, value, scope, label, label_span or head.span)
        if callee in joins():
            raise SpecError(f"{callee} joins branches; write it as a group", head.span,
                            expected=f"{callee}: followed by an indented branch per line")
        candidates = set(self.library.blocks) | (set(REGISTRY) - set(joins()))
        raise SpecError(f"unknown op or block {callee!r}", head.name.span,
                        expected="a primitive op (`archdsl ops` lists them) or a block defined in this spec",
                        hint=suggest(callee, candidates))

    def call_op(self, op: str, head: ast.Head, args, kwargs, value: Value, scope: Scope,
                label: str | None, name_span: Span) -> Value:
        declared = take_init_keywords(kwargs)
        inplace = take_inplace_keyword(op, head, kwargs)
        attrs = self.bind_args(op, head, args, kwargs)
        if not REGISTRY[op].traits.emits_node:
            return value
        inits = self.init_rules.for_op(op, attrs, head, declared)
        name = label if label is not None else scope.next_index()
        out = self.add_node(op, attrs, [value], scope, name, head.span, named=label is not None,
                            name_span=name_span)
        if inits:
            self.graph.nodes[out.node]["init"] = inits
        if inplace is False:  # the inplace pass leaves it out of place
            self.graph.nodes[out.node]["inplace"] = False
        return out

    def bind_args(self, op: str, head: ast.Head, args, kwargs) -> dict:
        """Validate an op's arguments; errors point at the offending argument."""
        try:
            return REGISTRY[op].bind(args, kwargs)
        except ArgProblem as problem:
            span = head.span
            names = [a.name for a in REGISTRY[op].args]
            for kw in head.kwargs:  # an unknown keyword: its name; a bad value: the value
                if kw.name == problem.arg:
                    span = kw.value.span if kw.name in names else kw.span
            if isinstance(problem.arg, int) and problem.arg < len(head.args):
                span = head.args[problem.arg].span
            elif problem.arg in names and names.index(problem.arg) < len(head.args) \
                    and problem.arg not in [kw.name for kw in head.kwargs]:
                span = head.args[names.index(problem.arg)].span
            raise SpecError(str(problem), span, expected=REGISTRY[op].signature()) from None

    def add_node(self, op: str, attrs: dict, inputs: list, scope: Scope, name: str, span: Span,
                 named: bool = True, branches=None, name_span: Span | None = None) -> Value:
        opdef = REGISTRY[op]
        in_shapes = tuple(v.shape for v in inputs)
        try:
            shape = tuple(opdef.shape(attrs, in_shapes))
        except ShapeProblem as problem:
            notes = ()
            if branches:
                notes = tuple(self.branch_note(i, b) for i, b in enumerate(branches))
            raise ShapeError(str(problem), span, notes=notes,
                             expected=f"an input that {op} accepts (got {', '.join(map(shape_text, in_shapes))})"
                             if not branches else "branches that agree in shape") from None
        if any(d <= 0 for d in shape):
            raise ShapeError(f"{op} would produce an empty {shape_text(shape)} tensor", span)
        path = scope.join(name)
        if path in self.graph or path in self.graph.graph["scopes"]:
            if named:
                raise SpecError(f"the name {path!r} is already used", name_span or span,
                                hint="give this item another name")
            path = self.unique(path)
        if self.graph.number_of_nodes() >= MAX_NODES:
            raise SpecError(f"the network has more than {MAX_NODES} ops", span)
        self.graph.add_node(path, op=op, attrs=attrs, name=path, span=span, shape=shape,
                            in_shapes=in_shapes, params=opdef.params(attrs, in_shapes, shape),
                            buffers=opdef.buffers(attrs, in_shapes, shape),
                            macs=opdef.macs(attrs, in_shapes, shape), aux=self.aux,
                            order=self.graph.number_of_nodes())
        for index, src in enumerate(inputs):
            self.graph.add_edge(src.node, path, index=index)
        return Value(path, shape)

    def unique(self, path: str) -> str:
        n = 1
        while f"{path}_{n}" in self.graph or f"{path}_{n}" in self.graph.graph["scopes"]:
            n += 1
        return f"{path}_{n}"

    def call_block(self, block: ast.BlockDef, head: ast.Head, args, kwargs, value: Value,
                   scope: Scope, label: str | None, name_span: Span) -> Value:
        if block.name in self.block_stack:
            cycle = " → ".join(self.block_stack[self.block_stack.index(block.name):] + [block.name])
            raise SpecError(f"block {block.name!r} calls itself ({cycle})", head.span,
                            hint="blocks cannot be recursive; use repeat for repetition")
        if len(self.block_stack) >= MAX_BLOCK_DEPTH:
            raise SpecError(f"blocks nest deeper than {MAX_BLOCK_DEPTH}", head.span)
        global_env, rules = self.global_env, self.init_rules.snapshot()
        bound = bind_arguments(f"block {block.name}", block.params, args, kwargs, head.span,
                               Evaluator(global_env, value.shape))
        name = label if label is not None else scope.next_index()
        inner = self.named_scope(scope, name, name_span, "block", block.name)
        self.block_stack.append(block.name)
        try:
            return self.items(block.body, value, global_env.child(bound), inner)
        finally:
            self.block_stack.pop()
            self.init_rules.restore(rules)  # a block's own rules end with it

    # ---- groups ------------------------------------------------------------------------

    def group(self, group: ast.Group, value: Value, env: Env, scope: Scope) -> Value:
        label = None
        if group.label is not None:
            if not self.when_holds(group.label, env, value):
                return value
            label = self.label_name(group.label, env, value)
        head = group.head
        kind = self.name_text(head.name, env, value)
        if kind in joins():
            return self.join(group, kind, value, env, scope, label)
        if not self.when_holds(head, env, value):
            return value
        if head.has_call:
            raise SpecError(f"{kind!r} is a scope and takes no arguments", head.span,
                            expected="add(...), concat(...) or mul(...) for a join, or name: for a scope")
        if kind == "branch" and label is None:
            return self.items(group.body, value, env.child(), scope)
        if kind in ("branch", "seq"):
            name = label if label is not None else scope.next_index()
        else:
            if label is not None:
                raise SpecError(f"a scope ({kind!r}) cannot also be labelled {label!r}", group.span)
            name = kind
        inner = self.named_scope(scope, name, head.span, "scope", None)
        return self.items(group.body, value, env.child(), inner)

    def join(self, group: ast.Group, kind: str, value: Value, env: Env, scope: Scope,
             label: str | None) -> Value:
        head = group.head
        ev = self.evaluator(env, value)
        attrs = self.bind_args(kind, head, [ev(a) for a in head.args],
                               {k.name: ev(k.value) for k in head.kwargs})
        inner = scope if label is None else self.named_scope(scope, label, group.span, "scope", None)
        joined = self.when_holds(head, env, value)
        split = attrs.get("split", False)
        chunks = self.count_branches(group) if split else 0
        branches: list = []
        for index, (span, run) in enumerate(self.branch_thunks(group.body, env, inner)):
            if not joined and branches:
                break
            branch_input = value
            if split:
                split_attrs = {"chunks": chunks, "index": index}
                branch_input = self.add_node("channel_split", split_attrs, [value], inner,
                                             f"split{index}", span, named=False)
            branches.append((span, branch_input, run(branch_input)))
        if not branches:
            return value
        if len(branches) == 1:
            return branches[0][2]
        outputs = [b[2] for b in branches]
        return self.add_node(kind, attrs, outputs, inner, kind, head.span, named=False,
                             branches=branches)

    def branch_note(self, index: int, branch) -> str:
        span, start, end = branch
        where = f" (line {span.line})" if span else ""
        if start.node == end.node:
            return f"branch {index + 1}{where} passes its input through: {shape_text(end.shape)}"
        return f"branch {index + 1}{where} gives {shape_text(end.shape)}"

    def count_branches(self, group: ast.Group) -> int:
        count = 0
        for item in group.body:
            if isinstance(item, ast.Line):
                count += len(item.chains)
            elif isinstance(item, ast.Group):
                count += 1
            elif not (isinstance(item, tuple) and item[0] == "let"):
                raise SpecError("concat(split = true) needs its branches written out, one per line",
                                item.span)
        return count

    def branch_thunks(self, items, env: Env, scope: Scope):
        """Yield ``(span, run)`` per branch of a join body; ``run(value)`` elaborates it."""
        for item in items:
            if isinstance(item, tuple):
                item = item[1]
            if isinstance(item, ast.Let):
                bind_target(item.target, Evaluator(env)(item.value), env)
            elif isinstance(item, ast.Line):
                for chain in item.chains:
                    yield chain.span, (lambda v, c=chain: self.chain(c, v, env, scope))
            elif isinstance(item, ast.Group):
                yield item.span, (lambda v, g=item: self.group(g, v, env, scope))
            elif isinstance(item, ast.If):
                body = self.pick_if(item, None, env)
                if body:
                    yield from self.branch_thunks(body, env, scope)
            elif isinstance(item, (ast.Repeat, ast.For)):
                if item.label is not None:
                    yield item.span, (lambda v, it=item: self.loop(it, v, env, scope))
                else:
                    for bindings in self.loop_bindings(item, env, None):
                        yield from self.branch_thunks(item.body, bindings, scope)
            else:
                raise SpecError("an auxiliary output cannot be a branch of a join", item.span)

    # ---- control flow --------------------------------------------------------------------

    @staticmethod
    def single_call(body) -> ast.Head | None:
        if len(body) == 1 and isinstance(body[0], ast.Line) and len(body[0].chains) == 1:
            chain = body[0].chains[0]
            if chain.label is None and len(chain.heads) == 1:
                return chain.heads[0]
        return None

    def pick_if(self, item: ast.If, value: Value | None, env: Env):
        ev = Evaluator(env, value.shape if value else None)
        for cond, body in item.branches:
            if truth(ev(cond), cond.span):
                return body
        return item.orelse

    def loop_bindings(self, item, env: Env, value: Value | None):
        ev = Evaluator(env, value.shape if value else None)
        if isinstance(item, ast.Repeat):
            count = ev(item.count)
            if isinstance(count, float) and count.is_integer():
                count = int(count)
            if not is_int(count) or count < 0:
                raise SpecError(f"a repeat count must be a non-negative integer, got {count!r}",
                                item.count.span, expected="a non-negative integer",
                                hint="use ceil(...) or int(...) to round a scaled depth")
            for j in range(count):
                yield env.child({item.var: j} if item.var else {})
        else:
            iterable = ev(item.iterable)
            if not isinstance(iterable, (list, tuple)):
                raise SpecError(f"cannot loop over {describe(iterable)}", item.iterable.span,
                                expected="a list, a tuple or range(...)")
            for element in iterable:
                child = env.child()
                bind_target(item.target, element, child)
                yield child

    def loop(self, item, value: Value, env: Env, scope: Scope) -> Value:
        inner = scope
        if item.label is not None:
            if not self.when_holds(item.label, env, value):
                return value
            name = self.label_name(item.label, env, value)
            inner = self.named_scope(scope, name, item.label.span, "scope", None)
        for child in self.loop_bindings(item, env, value):
            value = self.items(item.body, value, child, inner)
        return value

    def aux_branch(self, item: ast.Aux, value: Value, env: Env, scope: Scope) -> Value:
        if not self.when_holds(item.head, env, value):
            return value
        if self.aux is not None:
            raise SpecError("auxiliary outputs cannot nest", item.span)
        name = self.label_name(item.head, env, value)
        self.aux = scope.join(name)
        try:
            single = self.single_call(item.body)
            if single is not None:  # `aux aux1: head_block()` names the block's scope aux1
                out = self.call(single, value, env.child(), scope, name)
            else:
                inner = self.named_scope(scope, name, item.head.span, "aux", None)
                out = self.items(item.body, value, env.child(), inner)
        finally:
            self.aux = None
        if out.node == value.node:
            raise SpecError(f"auxiliary output {name!r} has no ops", item.span)
        self.aux_outputs[scope.join(name)] = out.node
        return value


def elaborate(module: ast.Module, path: str, variant: str | None = None,
              overrides: dict | None = None, input_shape: tuple | None = None) -> Architecture:
    """Elaborate a parsed spec into an :class:`Architecture` (the IR and its metadata).

    ``input_shape`` replaces the spec's declared input (shapes flow from it).
    """
    return Elaborator(module, path).run(variant, overrides or {}, input_shape)
