"""Groups in elaboration: named and numbered scopes, and joins (``add:``, ``concat:``, ``mul:``).

A mixin of :class:`~archdsl.frontend.elaborate.Elaborator`: each branch of a
join starts from the join's input; the branches' outputs meet in one join node,
whose shape rule reports every branch's shape when they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ast
from ..errors import SpecError, Span, shape_text
from .expr import Env, bind_target
from ..ir.ops import joins
from .names import check_label
from .tensors import Value


@dataclass
class Scope:
    """Where items are being placed: a module path and its next ``nn.Sequential`` index."""

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


class GroupItems:
    """Scopes and joins; the elaborator's other methods do the rest."""

    def group(self, group: ast.Group, value: Value, env: Env, scope: Scope) -> Value:
        label, where = None, scope
        if group.label is not None:
            if not self.when_holds(group.label, env, value):
                self.skip_names(group.label, group.head, env, value)
                return value
            label = self.label_name(group.label, env, value)
            where, label = self.place(scope, label, group.label.span)
        head = group.head
        kind = self.name_text(head.name, env, value, pattern=True)
        if kind in joins():
            out = self.join(group, kind, value, env, where, label)
        elif not self.when_holds(head, env, value):
            self.skip_names(None, head, env, value)
            return value
        else:
            out = self.scope_group(group, kind, value, env, where, label)
            if label is None and kind not in ("branch", "seq"):
                self.frame.bind_label(where.path + (kind,), kind, out)  # `body:` binds @body
        if label is not None:
            self.frame.bind_label(where.path + (label,), self.label_name(group.label, env, value), out)
        self.bind_name(head.bind, out, env)
        return out

    def scope_group(self, group: ast.Group, kind: str, value: Value, env: Env, scope: Scope,
                    label: str | None) -> Value:
        head = group.head
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
            for part in kind.split("."):
                check_label(part, head.name.span)
            scope, name = self.place(scope, kind, head.span)
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
        self.check_distinct(outputs, branches, head.span)
        return self.add_node(kind, attrs, outputs, inner, kind, head.span, named=False,
                             branches=branches)

    def check_distinct(self, outputs: list, branches: list, span: Span) -> None:
        """The IR has one edge per (producer, consumer): a join cannot read one tensor twice."""
        seen: dict = {}
        for index, out in enumerate(outputs):
            if out.node in seen:
                first = seen[out.node]
                raise SpecError(f"branches {first + 1} and {index + 1} of this join are the same tensor",
                                span, notes=(self.branch_note(first, branches[first]),
                                             self.branch_note(index, branches[index])),
                                hint="a join needs a distinct op on each branch; to repeat a tensor, "
                                     "give all but one branch an op")
            seen[out.node] = index

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
            elif not isinstance(item, ast.Let):
                raise SpecError("concat(split = true) needs its branches written out, one per line",
                                item.span)
        return count

    def branch_thunks(self, items, env: Env, scope: Scope):
        """Yield ``(span, run)`` per branch of a join body; ``run(value)`` elaborates it."""
        for item in items:
            if isinstance(item, ast.Let):
                bind_target(item.target, self.evaluator(env, None)(item.value), env)
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

