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

from pathlib import Path


from . import ast
from ..errors import ShapeError, SpecError, Span, describe, is_int, shape_text, suggest
from . import limits
from .expr import Env, Evaluator, bind_arguments, bind_target, metering, truth
from ..ir.digraph import DiGraph
from ..ir.graph import Architecture, verify
from ..ir.ops import REGISTRY, ArgProblem, ShapeProblem, joins
from .graph_items import GraphItems
from .groups import GroupItems, Scope
from .initialise import InitRules, take_init_keywords, take_inplace_keyword
from .names import check_label
from .resolve import GROUP_KINDS, Library, load_library, resolve_params
from .tensors import (NAME_EXPECTED, NAME_PATTERN, Frame, GraphEvaluator, Value, is_tensor)

INT64_MAX = 2**63 - 1
UNNAMED = "_"  # the label of an op that takes no module index (a parameterless functional op)


class Elaborator(GraphItems, GroupItems):
    def __init__(self, module: ast.Module, path: str):
        self.module = module
        self.path = path
        self.graph = DiGraph(scopes={})
        self.aux: str | None = None
        self.aux_outputs: dict[str, str] = {}
        self.block_stack: list[str] = []
        self.library = Library()
        self.global_env = Env()
        self.limits = limits.current()
        self.frame = Frame(())
        self.network_frame = self.frame
        self.outputs: dict[str, str] = {}
        self.output_spans: dict[str, Span] = {}
        self.init_rules = InitRules()

    def run(self, variant: str | None, overrides: dict, input_shape: tuple | None = None) -> Architecture:
        if self.module.network is None:
            raise SpecError("the spec has no network section", self.module.span,
                            expected="network: followed by an indented list of ops and blocks")
        self.library = load_library(self.module, self.path)
        env, params = resolve_params(self.module, self.library, self.path, variant, overrides)
        self.global_env = env
        self.frame = self.network_frame = Frame((), self.module.network)
        inputs = self.add_inputs(env, input_shape)
        first = next(iter(inputs.values()))
        out = self.items(self.module.network, first, env.child(), Scope(()))
        outputs = dict(self.outputs) or {"output": out.node}
        self.graph.graph["output"] = next(iter(outputs.values()))
        self.graph.graph["outputs"] = outputs
        verify(self.graph)
        family = self.module.arch_name or Path(self.path).stem
        return Architecture(name=variant or family, family=family, variant=variant,
                            source=self.path, params=params, input_shape=first.shape, graph=self.graph,
                            output=next(iter(outputs.values())), aux_outputs=dict(self.aux_outputs),
                            outputs=outputs, returns_dict=bool(self.outputs),
                            inputs={name: v.shape for name, v in inputs.items()})

    # ---- items -----------------------------------------------------------------------

    def items(self, items, value: Value, env: Env, scope: Scope) -> Value:
        for item in items:
            value = self.item(item, value, env, scope)
        return value

    def item(self, item, value: Value, env: Env, scope: Scope) -> Value:
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
        if isinstance(item, ast.Output):
            return self.output(item, value, env)
        if isinstance(item, ast.InitRule):  # for the rest of this block, blocks it calls included
            self.init_rules.add(item, self.evaluator(env, value)(item.value))
            return value
        raise AssertionError(f"unknown item {item!r}")

    def evaluator(self, env: Env, value: Value | None) -> Evaluator:
        return GraphEvaluator(env, value.shape if value is not None else None, self.read_tensor)

    def when_holds(self, head: ast.Head | None, env: Env, value: Value) -> bool:
        if head is None or head.when is None:
            return True
        return truth(self.evaluator(env, value)(head.when), head.when.span)

    def name_text(self, name: ast.NameText, env: Env, value: Value | None, pattern: bool = False) -> str:
        """The text of a possibly interpolated name; ``pattern``: a label or tensor name (``-``, ``.``)."""
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
        if pattern:
            if not NAME_PATTERN.fullmatch(text):
                raise SpecError(f"{text!r} is not a valid name", name.span, expected=NAME_EXPECTED)
            return text
        if not text.replace("_", "a").isalnum() or text[0].isdigit():
            raise SpecError(f"{text!r} is not a valid name", name.span,
                            expected="letters, digits and underscores, not starting with a digit")
        return text

    def label_name(self, label: ast.Head, env: Env, value: Value) -> str:
        if label.has_call or label.bind is not None:
            raise SpecError("a label takes no arguments", label.span, expected="name:")
        text = self.name_text(label.name, env, value, pattern=True)
        for part in text.split("."):  # each component becomes a module attribute
            check_label(part, label.name.span)
        return text

    def structural(self, label: ast.Head | None, scope: Scope) -> Scope | None:
        """The scope for items after ``seq:`` / ``branch:`` on the same line, else None.

        ``seq`` and ``branch`` are never names: ``seq: repeat 3: …`` opens a
        numbered scope exactly as ``seq:`` on a line of its own does, and
        ``branch: …`` opens none.
        """
        if label is None or not label.name.is_plain or label.name.parts[0] not in GROUP_KINDS:
            return None
        if label.has_call:
            raise SpecError("a label takes no arguments", label.span, expected="name:")
        if label.name.parts[0] == "branch":
            return scope
        return self.named_scope(scope, scope.next_index(), label.span, "scope", None)

    def place(self, scope: Scope, label: str, span: Span) -> tuple[Scope, str]:
        """A dotted label (``inner_blocks.3.0``) puts its item under scopes made on demand."""
        *parents, last = label.split(".")
        for part in parents:
            child = scope.child(part)
            key = ".".join(child.path)
            if key in self.graph:
                raise SpecError(f"{key!r} is a module, not a scope", span)
            self.graph.graph["scopes"].setdefault(key, {"kind": "scope", "block": None, "span": span})
            scope = child
        return scope, last

    def chain(self, chain: ast.Chain, value: Value, env: Env, scope: Scope) -> Value:
        if chain.source is not None:
            value = self.source_value(chain.source, env, value)
        if not self.when_holds(chain.label, env, value):
            self.skip_names(chain.label, None, env, value)
            return value
        inner = self.structural(chain.label, scope)
        if inner is not None:
            for head in chain.heads:
                value = self.call(head, value, env, inner, None)
            return value
        label = self.label_name(chain.label, env, value) if chain.label else None
        where = scope
        if label is not None and len(chain.heads) > 1:
            where, last = self.place(scope, label, chain.label.span)
            inner = self.named_scope(where, last, chain.label.span, "scope", None)
            for head in chain.heads:
                value = self.call(head, value, env, inner, None)
        elif label is not None:
            if len(chain.heads) == 1 and not self.when_holds(chain.heads[0], env, value):
                self.skip_names(chain.label, chain.heads[0], env, value)  # a removed item binds nothing
                return value
            where, last = self.place(scope, label, chain.label.span)
            for head in chain.heads:
                value = self.call(head, value, env, where, last, chain.label.span)
        else:
            for head in chain.heads:
                value = self.call(head, value, env, scope, None)
        if label is not None:
            self.frame.bind_label(where.path + (label.split(".")[-1],), label, value)
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
            self.skip_names(None, head, env, value)
            return value
        out = self.call_head(head, value, env, scope, label, label_span)
        self.bind_name(head.bind, out, env)
        return out

    def call_head(self, head: ast.Head, value: Value, env: Env, scope: Scope, label: str | None,
                  label_span: Span | None) -> Value:
        callee = self.resolve_callee(head, env, value)
        ev = self.evaluator(env, value)
        args = [ev(a) for a in head.args]
        kwargs = {}
        for kw in head.kwargs:
            if kw.name in kwargs:
                raise SpecError(f"argument {kw.name!r} is given twice", kw.span)
            kwargs[kw.name] = ev(kw.value)
        if callee in self.library.blocks:
            # `Detect(…) as detect`: the block's results also read as @detect.key
            results_as = self.name_text(head.bind, env, value, pattern=True) if head.bind else None
            return self.call_block(self.library.blocks[callee], head, args, kwargs, value, scope, label,
                                   label_span or head.span, results_as)
        if callee in REGISTRY and callee not in joins():
            return self.call_op(callee, head, args, kwargs, value, scope, label, label_span or head.span)
        if callee in joins():
            return self.op_join(callee, head, args, kwargs, value, scope, label, label_span)
        candidates = set(self.library.blocks) | (set(REGISTRY) - set(joins()))
        raise SpecError(f"unknown op or block {callee!r}", head.name.span,
                        expected="a primitive op (`archdsl ops` lists them) or a block defined in this spec",
                        hint=suggest(callee, candidates))

    def call_op(self, op: str, head: ast.Head, args, kwargs, value: Value, scope: Scope,
                label: str | None, name_span: Span) -> Value:
        declared = take_init_keywords(kwargs)
        inplace = take_inplace_keyword(op, head, kwargs)
        tensors = {k: v for k, v in kwargs.items() if isinstance(v, Value)}  # resize(like = @t)
        attrs = self.bind_args(op, head, args, {k: v for k, v in kwargs.items() if k not in tensors})
        if not REGISTRY[op].traits.emits_node:
            return value
        inits = self.init_rules.for_op(op, attrs, head, declared)
        inputs = [value]
        for key, tensor in tensors.items():
            attrs[key] = tensor.shape
            inputs.append(tensor)
        if len(inputs) != max(1, REGISTRY[op].inputs) and REGISTRY[op].inputs != -1:
            raise SpecError(f"{op} takes no tensor arguments", head.span, expected=REGISTRY[op].signature())
        name, named = self.module_name(op, scope, label)
        out = self.add_node(op, attrs, inputs, scope, name, head.span, named=named, name_span=name_span)
        if label == UNNAMED and (self.graph.nodes[out.node]["params"] or self.graph.nodes[out.node]["buffers"]):
            raise SpecError(f"{op} has weights, so it needs a module name", name_span,
                            hint="'_:' is for ops without weights; give it a label or no label")
        if inits:
            self.graph.nodes[out.node]["init"] = inits
        if inplace is False:  # the inplace pass leaves it out of place
            self.graph.nodes[out.node]["inplace"] = False
        return out

    def module_name(self, op: str, scope: Scope, label: str | None) -> tuple[str, bool]:
        """The node's name in ``scope`` and whether the spec chose it (``_``: no index taken)."""
        if label == UNNAMED:
            return op, False
        return (label, True) if label is not None else (scope.next_index(), False)

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
                 named: bool = True, branches=None, name_span: Span | None = None, notes=()) -> Value:
        opdef = REGISTRY[op]
        in_shapes = tuple(v.shape for v in inputs)
        try:
            shape = tuple(opdef.shape(attrs, in_shapes))
        except ShapeProblem as problem:
            expected = f"an input that {op} accepts (got {', '.join(map(shape_text, in_shapes))})"
            if notes:  # an op-form join: which tensor has which shape, and what else could be read
                notes = tuple(notes) + ("names in scope: " + self.frame.in_scope(),)
                expected = "tensors that agree in shape"
            elif branches:
                notes = tuple(self.branch_note(i, b) for i, b in enumerate(branches))
                expected = "branches that agree in shape"
            raise ShapeError(str(problem), span, notes=notes, expected=expected) from None
        if any(d <= 0 for d in shape):
            raise ShapeError(f"{op} would produce an empty {shape_text(shape)} tensor", span)
        self.check_size(op, shape, span)
        path = scope.join(name)
        if path in self.graph or path in self.graph.graph["scopes"]:
            if named:
                raise SpecError(f"the name {path!r} is already used", name_span or span,
                                hint="give this item another name")
            path = self.unique(path)
        if self.graph.number_of_nodes() > self.limits.max_ops:
            raise SpecError(f"the network has more than {self.limits.max_ops:,} ops", span,
                            hint="limits are described in docs/security.md")
        self.graph.add_node(path, op=op, attrs=attrs, name=path, span=span, shape=shape,
                            in_shapes=in_shapes, params=opdef.params(attrs, in_shapes, shape),
                            buffers=opdef.buffers(attrs, in_shapes, shape),
                            macs=opdef.macs(attrs, in_shapes, shape), aux=self.aux,
                            order=self.graph.number_of_nodes())
        for index, src in enumerate(inputs):
            if self.graph.has_edge(src.node, path):  # one tensor read twice, e.g. concat(@x) of x
                edge = self.graph.edges[src.node, path]
                edge["indices"] = edge.get("indices", (edge["index"],)) + (index,)
            else:
                self.graph.add_edge(src.node, path, index=index)
        return Value(path, shape)

    def check_size(self, op: str, shape: tuple, span: Span) -> None:
        """Refuse a tensor whose element count does not fit PyTorch's int64 sizes."""
        numel = 1
        for d in shape:
            numel *= d
        if numel > INT64_MAX:
            dims = [str(d) if d < 10**12 else f"{str(d)[0]}.{str(d)[1]}e+{len(str(d)) - 1}" for d in shape]
            raise ShapeError(f"{op} would produce a {'x'.join(dims)} tensor, more elements than "
                             "a tensor can hold (2^63 - 1)", span)

    def unique(self, path: str) -> str:
        n = 1
        while f"{path}_{n}" in self.graph or f"{path}_{n}" in self.graph.graph["scopes"]:
            n += 1
        return f"{path}_{n}"

    def call_block(self, block: ast.BlockDef, head: ast.Head, args, kwargs, value: Value,
                   scope: Scope, label: str | None, name_span: Span, results_as: str | None = None) -> Value:
        if block.name in self.block_stack:
            cycle = " → ".join(self.block_stack[self.block_stack.index(block.name):] + [block.name])
            raise SpecError(f"block {block.name!r} calls itself ({cycle})", head.span,
                            hint="blocks cannot be recursive; use repeat for repetition")
        if len(self.block_stack) >= self.limits.max_block_depth:
            raise SpecError(f"blocks nest deeper than {self.limits.max_block_depth}", head.span)
        global_env, rules = self.global_env, self.init_rules.snapshot()
        bound = bind_arguments(f"block {block.name}", block.params, args, kwargs, head.span,
                               Evaluator(global_env, value.shape))
        name = label if label is not None else scope.next_index()
        inner = self.named_scope(scope, name, name_span, "block", block.name)
        outer, frame = self.frame, Frame(inner.path, block.body)
        for param in block.params:
            given = bound[param.name]
            if param.tensor != is_tensor(given):
                raise SpecError(f"block {block.name}'s parameter {'@' * param.tensor}{param.name} takes "
                                f"{'a tensor' if param.tensor else 'a value'}, got {describe(given)}",
                                head.span, hint="declare tensor parameters with @: block up(c, @skip)")
            if param.tensor:
                frame.bind(param.name, given)
        self.block_stack.append(block.name)
        self.frame = frame
        try:
            out = self.items(block.body, value, global_env.child(bound), inner)
        except SpecError as err:  # say which of the block's instances failed, and where it was called
            err.notes = err.notes + (f"in {'.'.join(inner.path)} (block {block.name}), "
                                     f"called from {head.span.location}",)
            raise
        finally:
            self.block_stack.pop()
            self.frame = outer
            self.init_rules.restore(rules)  # a block's own rules end with it
        relative = ".".join(inner.path[len(outer.root):])
        outer.export(relative, frame)
        if results_as is not None:
            outer.export(results_as, frame)
        outer.bind(relative, out)  # an unlabelled call too: @backbone.4
        return out

    # ---- control flow --------------------------------------------------------------------

    @staticmethod
    def single_call(body) -> ast.Head | None:
        if len(body) == 1 and isinstance(body[0], ast.Line) and len(body[0].chains) == 1:
            chain = body[0].chains[0]
            if chain.label is None and len(chain.heads) == 1:
                return chain.heads[0]
        return None

    def pick_if(self, item: ast.If, value: Value | None, env: Env):
        ev = self.evaluator(env, value)
        for cond, body in item.branches:
            if truth(ev(cond), cond.span):
                return body
        return item.orelse

    def loop_bindings(self, item, env: Env, value: Value | None):
        ev = self.evaluator(env, value)
        if isinstance(item, ast.Repeat):
            count = ev(item.count)
            if isinstance(count, float) and count.is_integer():
                count = int(count)
            if not is_int(count) or count < 0:
                raise SpecError(f"a repeat count must be a non-negative integer, got {count!r}",
                                item.count.span, expected="a non-negative integer",
                                hint="use ceil(...) or int(...) to round a scaled depth")
            if count > self.limits.max_repeat:
                raise SpecError(f"a repeat count of {count:,} is more than the limit of "
                                f"{self.limits.max_repeat:,}", item.count.span,
                                hint="limits are described in docs/security.md")
            for j in range(count):
                ev.budget.charge(1, item.span)
                yield env.child({item.var: j} if item.var else {})
        else:
            iterable = ev(item.iterable)
            if not isinstance(iterable, (list, tuple)):
                raise SpecError(f"cannot loop over {describe(iterable)}", item.iterable.span,
                                expected="a list, a tuple or range(...)")
            for element in iterable:
                ev.budget.charge(1, item.span)
                child = env.child()
                bind_target(item.target, element, child)
                yield child

    def loop(self, item, value: Value, env: Env, scope: Scope) -> Value:
        inner = scope
        label = None
        if item.label is not None:
            if not self.when_holds(item.label, env, value):
                self.skip_names(item.label, None, env, value)
                return value
            inner = self.structural(item.label, scope)
            if inner is None:
                label = self.label_name(item.label, env, value)
                where, name = self.place(scope, label, item.label.span)
                inner = self.named_scope(where, name, item.label.span, "scope", None)
        for child in self.loop_bindings(item, env, value):
            value = self.items(item.body, value, child, inner)
        if label is not None:
            self.frame.bind_label(inner.path, label, value)
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
    with metering():
        return Elaborator(module, path).run(variant, overrides or {}, input_shape)
