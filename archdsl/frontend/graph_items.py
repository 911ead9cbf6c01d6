"""The graph items of elaboration: inputs, ``@name`` reads, bindings, outputs, op-form joins.

A mixin of :class:`~archdsl.frontend.elaborate.Elaborator`: these methods use its
graph, current :class:`~archdsl.frontend.tensors.Frame` and naming helpers.
"""

from __future__ import annotations

from . import ast
from ..errors import SpecError, Span
from .expr import Env, Evaluator, truth
from .resolve import declared_input
from .tensors import Value, expect_tensor, is_tensor, join_notes, output_key, source_text


class GraphItems:
    """Named tensors, several inputs and outputs (see :mod:`archdsl.frontend.tensors`)."""

    def add_inputs(self, env: Env, input_shape: tuple | None) -> dict:
        """One ``input`` node per declared input (``input`` when unnamed); the first is live."""
        decls = self.module.inputs or (self.module.input,)
        named = [d for d in decls if d is not None and d.name is not None]
        if len(decls) > 1 and len(named) != len(decls):
            bad = next(d for d in decls if d.name is None)
            raise SpecError("with several inputs, each needs a name", bad.span,
                            expected="input rgb: 3 x H x W")
        values = {}
        for order, decl in enumerate(decls):
            shape = declared_input(self.module, env, decl)
            if order == 0 and input_shape is not None:  # (C, H, W), or (H, W) keeping the channels
                shape = tuple(input_shape) if len(input_shape) == 3 else (shape[0], *input_shape)
            node = decl.name if decl is not None and decl.name else "input"
            if node in values:
                raise SpecError(f"the input {node!r} is declared twice", decl.span)
            self.graph.add_node(node, op="input", attrs={}, name=node, span=decl.span if decl else None,
                                shape=shape, in_shapes=(), params=0, buffers=0, macs=0, aux=None,
                                order=order)
            values[node] = Value(node, shape)
            self.frame.bind(node, values[node])
        return values

    def read_tensor(self, ref: ast.TensorRef, ev: Evaluator):
        """``@name``: the tensor (or list of tensors) bound to ``name`` in this body."""
        name = self.name_text(ref.name, ev.env, None, pattern=True)
        return self.frame.lookup(name, ref.span)

    def bind_name(self, name: ast.NameText | None, value: Value, env: Env) -> None:
        if name is not None:
            self.frame.bind(self.name_text(name, env, value, pattern=True), value)

    def skip_names(self, label: ast.Head | None, head: ast.Head | None, env: Env, value: Value) -> None:
        """Remember the names of an item that did not run (a false ``when``), for messages."""
        when = (label.when if label else None) or (head.when if head else None)
        for name in (label.name if label else None, head.bind if head else None):
            if name is not None and when is not None:
                text = self.name_text(name, env, value, pattern=True)
                if text not in self.frame.names:
                    self.frame.skipped[text] = when.span

    def source_value(self, source, env: Env, value: Value) -> Value:
        return expect_tensor(self.evaluator(env, value)(source), source.span, "a tensor to start from")

    def output(self, item: ast.Output, value: Value, env: Env) -> Value:
        """``output key[: @t]``: a network output, or one of a block's named results."""
        ev = self.evaluator(env, value)
        if item.when is not None and not truth(ev(item.when), item.when.span):
            return value
        key = output_key(item, ev)
        target = value if item.value is None else expect_tensor(ev(item.value), item.value.span)
        if self.frame is not self.network_frame:
            self.frame.bind(key, target)  # read by the caller as @call.key
            return value
        if self.aux is not None:
            raise SpecError("an auxiliary head cannot declare a network output", item.span)
        if key in self.outputs:
            first = self.output_spans[key]
            raise SpecError(f"output {key!r} is declared twice (first at line {first.line})", item.key.span,
                            expected="a new key; declared so far: " + ", ".join(map(repr, self.outputs)))
        self.outputs[key] = target.node
        self.output_spans[key] = item.span
        return value

    def op_join(self, kind: str, head: ast.Head, args, kwargs, value: Value, scope,
                label: str | None, label_span: Span | None) -> Value:
        """``concat(@a, @b)``: join the live tensor with named ones (takes a module index)."""
        tensors = [a for a in args if is_tensor(a)]
        if not tensors or len(tensors) != len(args):
            raise SpecError(f"{kind} joins tensors: give it named tensors, or write it as a group",
                            head.span, expected=f"{kind}(@name, …), or {kind}: followed by one branch per line")
        flat = [t for a in tensors for t in (a if isinstance(a, (list, tuple)) else [a])]
        attrs = self.bind_args(kind, head, [], kwargs)
        name, named = self.module_name(kind, scope, label)
        names = ["the live tensor"]
        for node, given in zip(head.args, args):
            names += [source_text(node.span)] * (len(given) if isinstance(given, (list, tuple)) else 1)
        return self.add_node(kind, attrs, [value] + flat, scope, name, head.span, named=named,
                             name_span=label_span, notes=join_notes([value] + flat, names))
