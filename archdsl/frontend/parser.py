"""Text → AST: the cached Lark parser and the transformer (messages in :mod:`.syntax_errors`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from lark import Transformer, Tree, v_args
from lark.exceptions import (UnexpectedInput,
                             VisitError)
from lark.indenter import DedentError

from . import ast, limits
from ..errors import SpecError, SpecSyntaxError, Source, Span
from .grammar import _parser
from .syntax_errors import _bad_dedent, _syntax_error


class AstBuilder(Transformer):
    """Builds :mod:`archdsl.ast` nodes; one method per grammar rule, no semantics."""

    def __init__(self, source: Source, line_offset: int = 0, column_offset: int = 0):
        super().__init__()
        self.source = source
        self.line_offset = line_offset
        self.column_offset = column_offset

    def _span(self, meta_or_token) -> Span:
        line = getattr(meta_or_token, "line", None)
        if line is None:
            return Span(self.source, 1 + self.line_offset, 1)
        column = meta_or_token.column
        end = meta_or_token.end_column if getattr(meta_or_token, "end_line", line) == line else None
        if line == 1:  # offsets apply to interpolated text, which is a single line
            column += self.column_offset
            end = end + self.column_offset if end else None
        return Span(self.source, line + self.line_offset, column, end)

    # ---- top level
    @v_args(meta=True)
    def start(self, meta, items):
        params, variants, imports, lets, functions, blocks = [], [], [], [], [], []
        arch_name = input_decl = network = network_span = None
        inputs = []
        lists = {ast.ParamDecl: params, ast.Variant: variants, ast.Import: imports, ast.Let: lets,
                 ast.FnDef: functions, ast.BlockDef: blocks}
        for item in items:  # every top-level rule returns a typed node
            if isinstance(item, ast.ArchDecl):
                arch_name = item.name
            elif isinstance(item, ast.InputDecl):
                input_decl = input_decl or item
                inputs.append(item)
            elif isinstance(item, ast.NetworkDef):
                network, network_span = item.items, item.span
            else:
                lists[type(item)].append(item)
        return ast.Module(self._span(meta), arch_name, input_decl, tuple(params), tuple(variants),
                          tuple(imports), tuple(lets), tuple(functions), tuple(blocks), network,
                          network_span, tuple(inputs))

    def arch_decl(self, args):
        return ast.ArchDecl(str(args[0]))

    @v_args(meta=True)
    def input_decl(self, meta, dims):
        return ast.InputDecl(self._span(meta), tuple(dims))

    @v_args(meta=True)
    def named_input(self, meta, args):
        name, *dims = args
        return ast.InputDecl(self._span(name), tuple(dims), str(name))

    @v_args(meta=True)
    def param_decl(self, meta, args):
        return ast.ParamDecl(self._span(args[0]), str(args[0]), args[1])

    @v_args(meta=True)
    def variant_decl(self, meta, args):
        assigns = tuple(a for a in args[1:] if a is not None)
        return ast.Variant(self._span(args[0]), str(args[0]), assigns)

    @v_args(meta=True)
    def assign(self, meta, args):
        return ast.Keyword(self._span(args[0]), str(args[0]), args[1])

    @v_args(meta=True)
    def import_decl(self, meta, args):
        return ast.Import(self._span(args[0]), str(args[0])[1:-1])

    @v_args(meta=True)
    def fn_inline(self, meta, args):
        name, params, result = args
        return ast.FnDef(self._span(name), str(name), params or (), (), result)

    @v_args(meta=True)
    def fn_body(self, meta, args):
        name, params, *lets, result = args
        return ast.FnDef(self._span(name), str(name), params or (), tuple(lets), result)

    @v_args(meta=True)
    def block_def(self, meta, args):
        name, params, body = args
        return ast.BlockDef(self._span(name), str(name), params or (), body)

    @v_args(meta=True)
    def network_def(self, meta, args):
        return ast.NetworkDef(self._span(meta), args[0])

    def params(self, args):
        return tuple(a for a in args if a is not None)

    @v_args(meta=True)
    def param(self, meta, args):
        return ast.Param(self._span(args[0]), str(args[0]), args[1])

    def tensor_param(self, args):
        return ast.Param(self._span(args[0]), str(args[0])[1:], None, tensor=True)

    # ---- items
    def suite(self, items):
        return tuple(items)

    indented = suite

    @v_args(meta=True)
    def line(self, meta, chains):
        return ast.Line(self._span(meta), tuple(chains))

    @v_args(meta=True)
    def chain(self, meta, args):
        label, *heads = args
        return ast.Chain(self._span(meta), label, tuple(heads))

    @v_args(meta=True)
    def sourced_chain(self, meta, args):
        source, label, *heads = args
        return ast.Chain(self._span(meta), label, tuple(h for h in heads if h is not None), source)

    @v_args(meta=True)
    def bound_source(self, meta, args):
        source, name = args  # `@t as name`: an identity with a binding
        head = ast.Head(name.span, ast.NameText(name.span, ("identity",)), (), (), False, None, name)
        return ast.Chain(self._span(meta), None, (head,), source)

    def tensor_source(self, args):
        token, *indices = args
        ref = self.tensor_ref([token])
        for index in indices:
            ref = ast.Index(ref.span, ref, index)
        return ref

    def label(self, args):
        return args[0]

    @v_args(meta=True)
    def head(self, meta, args):
        name, call, when, bind = args
        pos, kw = call if call is not None else ((), ())
        return ast.Head(name.span, name, pos, kw, call is not None, when, bind)

    def tensor_ref(self, args):
        token = args[0]
        name = self._name_text(token, skip=1)
        return ast.TensorRef(name.span, name)

    @v_args(meta=True)
    def output_stmt(self, meta, args):
        key, value, when = args
        return ast.Output(self._span(meta), key, value, when)

    def plain_name(self, args):
        return ast.NameText(self._span(args[0]), (str(args[0]),))

    def interp_name(self, args):
        return self._name_text(args[0])

    def _name_text(self, token, skip: int = 0) -> ast.NameText:
        """A name with ``{expr}`` pieces; ``skip`` leading characters (the ``@`` of a tensor) dropped."""
        span = self._span(token)
        parts = []
        for piece in re.split(r"(\{[^{}]*\})", str(token)[skip:]):
            if not piece:
                continue
            if piece.startswith("{"):
                offset = token.column + str(token).index(piece)  # column of "{"
                parts.append(parse_expression(piece[1:-1], self.source, token.line - 1 + self.line_offset,
                                              offset))
            else:
                parts.append(piece)
        return ast.NameText(span, tuple(parts))

    def call_args(self, args):
        pos = tuple(a for a in args if a is not None and not isinstance(a, ast.Keyword))
        kw = tuple(a for a in args if isinstance(a, ast.Keyword))
        return pos, kw

    @v_args(meta=True)
    def keyword(self, meta, args):
        return ast.Keyword(self._span(args[0]), str(args[0]), args[1])

    @v_args(meta=True)
    def group(self, meta, args):
        label, head, body = args
        return ast.Group(self._span(meta), label, head, body)

    @v_args(meta=True)
    def repeat_stmt(self, meta, args):
        label, count, var, body = args
        return ast.Repeat(self._span(meta), label, count, str(var) if var else None, body)

    @v_args(meta=True)
    def for_stmt(self, meta, args):
        label, target, iterable, body = args
        return ast.For(self._span(meta), label, target, iterable, body)

    @v_args(meta=True)
    def if_stmt(self, meta, args):
        cond, body, *rest = args
        orelse = rest.pop() if rest and (rest[-1] is None or rest[-1][0] == "else") else None
        branches = [(cond, body)] + [(c, b) for _, c, b in rest]
        return ast.If(self._span(meta), tuple(branches), orelse[1] if orelse else None)

    def elif_clause(self, args):
        return ("elif", args[0], args[1])

    def else_clause(self, args):
        return ("else", args[0])

    @v_args(meta=True)
    def aux_stmt(self, meta, args):
        return ast.Aux(self._span(meta), args[0], args[1])

    @v_args(meta=True)
    def init_stmt(self, meta, args):
        op, role, value = args
        return ast.InitRule(self._span(meta), str(op), str(role) if role is not None else "weight", value)

    @v_args(meta=True)
    def let_stmt(self, meta, args):
        return ast.Let(self._span(meta), args[0], args[1])

    @v_args(meta=True)
    def targets(self, meta, args):
        if len(args) == 1:
            return args[0]
        return ast.Target(self._span(meta), None, tuple(args))

    def target_name(self, args):
        return ast.Target(self._span(args[0]), str(args[0]))

    # ---- expressions
    def number(self, args):
        text = str(args[0])
        value = float(text) if any(c in text for c in ".eE") else int(text)
        return ast.Const(self._span(args[0]), value)

    def string(self, args):
        return ast.Const(self._span(args[0]), str(args[0])[1:-1])

    def name(self, args):
        return ast.Name(self._span(args[0]), str(args[0]))

    @v_args(meta=True)
    def true(self, meta, _):
        return ast.Const(self._span(meta), True)

    @v_args(meta=True)
    def false(self, meta, _):
        return ast.Const(self._span(meta), False)

    @v_args(meta=True)
    def none(self, meta, _):
        return ast.Const(self._span(meta), None)

    @v_args(meta=True)
    def in_shape(self, meta, _):
        return ast.InShape(self._span(meta))

    @v_args(meta=True)
    def tuple(self, meta, items):
        return ast.ListExpr(self._span(meta), tuple(i for i in items if i is not None), True)

    @v_args(meta=True)
    def list(self, meta, items):
        return ast.ListExpr(self._span(meta), tuple(i for i in items if i is not None), False)

    @v_args(meta=True)
    def cond_expr(self, meta, args):
        then, cond, other = args
        return ast.CondExpr(self._span(meta), cond, then, other)

    @v_args(meta=True)
    def or_op(self, meta, args):
        return ast.BoolOp(self._span(meta), "or", *args)

    @v_args(meta=True)
    def and_op(self, meta, args):
        return ast.BoolOp(self._span(meta), "and", *args)

    @v_args(meta=True)
    def not_op(self, meta, args):
        return ast.UnaryOp(self._span(meta), "not", args[0])

    @v_args(meta=True)
    def compare(self, meta, args):
        return ast.Compare(self._span(meta), args[0], tuple(args[1::2]), tuple(args[2::2]))

    def comp_op(self, tokens):
        return " ".join(str(t) for t in tokens)

    def _bin(op):  # noqa: N805 - factory used at class creation
        @v_args(meta=True)
        def method(self, meta, args):
            return ast.BinOp(self._span(meta), op, args[0], args[1])
        return method

    add_op, sub_op, mul_op, div_op = _bin("+"), _bin("-"), _bin("*"), _bin("/")
    floordiv_op, mod_op, pow_op = _bin("//"), _bin("%"), _bin("**")

    @v_args(meta=True)
    def neg_op(self, meta, args):
        return ast.UnaryOp(self._span(meta), "-", args[0])

    @v_args(meta=True)
    def pos_op(self, meta, args):
        return ast.UnaryOp(self._span(meta), "+", args[0])

    @v_args(meta=True)
    def call(self, meta, args):
        pos, kw = args[1]
        return ast.Call(self._span(meta), args[0], pos, kw)

    @v_args(meta=True)
    def index(self, meta, args):
        return ast.Index(self._span(meta), args[0], args[1])

    @v_args(meta=True)
    def slice(self, meta, args):
        return ast.Slice(self._span(meta), args[0], args[1])

    @v_args(meta=True)
    def attr(self, meta, args):
        return ast.Attr(self._span(meta), args[0], str(args[1]))


def _check_nesting(tree: Tree, builder: "AstBuilder") -> None:
    """A located error for a syntax tree deeper than ``max_nesting`` (before recursing into it)."""
    limit = limits.current().max_nesting
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise SpecSyntaxError(f"the text nests more than {limit} levels deep", builder._span(node.meta),
                                  hint="split a long expression with let; a chain of n operators "
                                       "nests n levels")
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _parse(text: str, source: Source, start: str, line_offset: int = 0, column_offset: int = 0):
    try:
        tree = _parser().parse(text, start=start)
    except UnexpectedInput as err:
        raise _syntax_error(err, source, line_offset, column_offset) from None
    except DedentError:
        line, column = _bad_dedent(text)
        raise SpecSyntaxError("this line's indentation matches no enclosing block",
                              Span(source, line + line_offset, column),
                              expected="the indentation of an enclosing line") from None
    builder = AstBuilder(source, line_offset, column_offset)
    _check_nesting(tree, builder)
    try:
        with limits.deep_stack():
            return builder.transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, SpecError):
            raise err.orig_exc from None
        raise


def parse_expression(text: str, source: Source, line_offset: int = 0, column: int = 0):
    """Parse one expression (used for ``{…}`` inside interpolated names)."""
    return _parse(text, source, "expr", line_offset, column)


def _check_size(size: int, path: str) -> None:
    limit = limits.current().max_spec_bytes
    if size > limit:
        raise SpecError(f"{path} is {size:,} bytes, more than the limit of {limit:,} for a spec",
                        hint="limits are described in docs/security.md")


def parse(text: str, path: str = "<string>") -> ast.Module:
    """Parse spec text into an :class:`archdsl.ast.Module`.

    A leading byte-order mark is ignored. Raises :class:`SpecSyntaxError`, or
    :class:`SpecError` for text longer than the ``max_spec_bytes`` limit.
    """
    _check_size(len(text), path)
    text = text.removeprefix("\ufeff")
    source = Source(path, text)
    if not text.endswith("\n"):
        text += "\n"
    return _parse(text, source, "start")


def decode(data: bytes, path: str) -> str:
    """UTF-8 bytes → text; an undecodable byte is a :class:`SpecSyntaxError` at its line and column."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, err.start) + 1
        column = len(data[start:err.start].decode("utf-8", errors="replace")) + 1
        source = Source(path, data.decode("utf-8", errors="replace"))
        raise SpecSyntaxError(f"the file is not UTF-8 text: byte 0x{data[err.start]:02x} "
                              f"{err.reason}", Span(source, line, column),
                              expected="a spec saved as UTF-8") from None


# Parsed files by path, content digest and limits: a command that resolves a spec and then
# elaborates it (check, every variant) parses each file once. The AST is immutable (frozen
# nodes, tuples), so sharing it is safe; the content digest makes a stale entry impossible.
_PARSED: dict = {}
_PARSED_MAX = 64


def parse_file(path: str | Path) -> ast.Module:
    """Parse a spec file (UTF-8, at most ``max_spec_bytes``); raises :class:`SpecError`."""
    path = Path(path)
    with open(path, "rb") as handle:
        data = handle.read(limits.current().max_spec_bytes + 1)
    _check_size(len(data), str(path))
    key = (str(path), hashlib.sha256(data).digest(), limits.current())
    module = _PARSED.get(key)
    if module is None:
        module = parse(decode(data, str(path)), str(path))
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.pop(next(iter(_PARSED)))
        _PARSED[key] = module
    return module
