"""The grammar (``grammar.lark``, LALR, indentation-aware), built once per process."""

from __future__ import annotations

import functools

from lark import Lark
from lark.indenter import Indenter


class ArchIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4


@functools.lru_cache(maxsize=None)
def _parser() -> Lark:
    return Lark.open("grammar.lark", rel_to=__file__, parser="lalr", postlex=ArchIndenter(),
                     propagate_positions=True, start=["start", "expr"], maybe_placeholders=True)
