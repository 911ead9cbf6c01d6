"""Syntax errors: Lark's exceptions rewritten as located messages ("unexpected X … expected Y").

Terminals are described in words (``a name``, ``an operator``), never by
Lark's internal names such as ``__ANON_0``; a bad dedent is located at the line
that breaks the indentation.
"""

from __future__ import annotations

import re

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import SpecSyntaxError, Source, Span
from .grammar import ArchIndenter, _parser


_TERMINAL_NAMES = {
    "NAME": "name", "INTERP": "name", "NUMBER": "a number", "STRING": "a string",
    "_NL": "end of line", "_INDENT": "an indented block", "_DEDENT": "end of the indented block",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "COLON": "':'", "COMMA": "','",
    "SEMICOLON": "';'", "EQUAL": "'='", "$END": "end of file",
}


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[name]
    try:
        pattern = _parser().get_terminal(name).pattern
        if pattern.type == "str":
            return repr(pattern.value)
    except KeyError:
        pass
    return name.lower()


_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "__ANON_0", "DOUBLESTAR", "LESSTHAN",
              "MORETHAN", "IF", "OR", "AND", "IN", "NOT", "DOT", "LPAR", "LSQB"}


def _expected_text(names) -> str:
    names = set(names)
    operators = {n for n in names if n in _OPERATORS or _describe_terminal(n).strip("'") in
                 ("==", "!=", "<=", ">=", "//", "**", "->")}
    described = sorted({_describe_terminal(n) for n in names - operators})
    if operators:
        described.append("an operator")
    if len(described) > 8:
        described = described[:8] + ["…"]
    return ", ".join(described) if len(described) < 2 else ", ".join(described[:-1]) + " or " + described[-1]



def _lines(text: str) -> list:
    """The lines as the parser counts them: only "\\n" ends a line (not a form feed or U+2028)."""
    return text.removesuffix("\n").split("\n") if text else []


def _syntax_error(err: UnexpectedInput, source: Source, line_offset: int, column_offset: int):
    line = (err.line if err.line and err.line > 0 else len(_lines(source.text)) or 1)
    column = err.column if err.column and err.column > 0 else 1
    if line == 1:
        column += column_offset
    line += line_offset
    if isinstance(err, UnexpectedToken):
        token = err.token
        expected = _expected_text(err.accepts or err.expected)
        if token.type == "$END":
            message = "unexpected end of file"
        elif token.type == "_NL":
            message = "unexpected end of line"
        elif token.type == "_DEDENT":
            message = "unexpected end of the indented block"
        elif token.type == "_INDENT":
            message = "unexpected indentation"
        else:
            message = f"unexpected {_describe_terminal(token.type).removeprefix('a ')} {str(token)!r}" \
                if token.type in ("NAME", "NUMBER", "STRING", "INTERP") else f"unexpected {str(token)!r}"
        if token.type in ("_INDENT", "_DEDENT") and token.end_line:
            line, column = token.end_line + line_offset, token.end_column
        if token.type == "_INDENT":
            expected = "the indentation of the line above (only a line ending in ':' opens a block)"
        lines = _lines(source.text)
        if token.type in ("_DEDENT", "$END") and line > len(lines):
            message = "unexpected end of file"
            line = max(1, len(lines))
            while line > 1 and not lines[line - 1].strip():
                line -= 1
            column = len(lines[line - 1].rstrip()) + 1 if lines else 1
        end = column + max(1, len(str(token))) if token.type not in ("_NL", "$END", "_DEDENT", "_INDENT") else None
        return SpecSyntaxError(message, Span(source, line, column, end), expected=expected)
    if isinstance(err, UnexpectedCharacters):
        char = source.line(line)[column - 1:column] if column_offset == 0 else err.char
        return SpecSyntaxError(f"unexpected character {char!r}", Span(source, line, column),
                               expected=_expected_text(err.allowed or ()))
    if isinstance(err, UnexpectedEOF):
        return SpecSyntaxError("unexpected end of file", Span(source, line, column),
                               expected=_expected_text(err.expected))
    return SpecSyntaxError(str(err), Span(source, line, column))


def _bad_dedent(text: str) -> tuple[int, int]:
    """Line and column of the first line dedenting to no enclosing block's indentation.

    Counts indentation as the Lark indenter does (a tab is 4 columns); skips
    blank lines, comment lines and lines inside brackets.
    """
    stack, depth = [0], 0
    for number, line in enumerate(text.split("\n"), 1):
        body = line.lstrip(" \t")
        if depth == 0 and body and not body.startswith("#"):
            lead = line[:len(line) - len(body)]
            indent = lead.count(" ") + lead.count("\t") * ArchIndenter.tab_len
            if indent > stack[-1]:
                stack.append(indent)
            while indent < stack[-1]:
                stack.pop()
            if indent != stack[-1]:
                return number, len(lead) + 1
        code = re.sub(r"#.*|\"[^\"\n]*\"|'[^'\n]*'", "", body)
        depth = max(0, depth + sum(code.count(c) for c in "([") - sum(code.count(c) for c in ")]"))
    return 1, 1


