"""The grammar (``grammar.lark``, LALR, indentation-aware), built once per process.

Building the LALR tables takes about a second, most of a ``check``; so the
package ships them precomputed in ``grammar_tables.json`` (plain JSON, never
pickle), stamped with the grammar's sha256 and lark's version. When the stamp
does not match (an edited grammar, another lark), the tables are built from
``grammar.lark`` as before: slower, same parser. Regenerate the file after
editing the grammar::

    python -m archdsl.frontend.grammar
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path

import lark
from lark import Lark
from lark.indenter import Indenter

from .lexing import PLUGINS

GRAMMAR = Path(__file__).with_name("grammar.lark")
TABLES = Path(__file__).with_name("grammar_tables.json")
_OPTIONS = dict(parser="lalr", propagate_positions=True, start=["start", "expr"], maybe_placeholders=True)


class ArchIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR", "LSQB"]
    CLOSE_PAREN_types = ["RPAR", "RSQB"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4


def _stamp(grammar_text: str) -> dict:
    return {"grammar_sha256": hashlib.sha256(grammar_text.encode()).hexdigest(), "lark": lark.__version__}


def _build(grammar_text: str) -> Lark:
    return Lark(grammar_text, postlex=ArchIndenter(), _plugins=PLUGINS, **_OPTIONS)


@functools.lru_cache(maxsize=None)
def _parser() -> Lark:
    text = GRAMMAR.read_text(encoding="utf-8")
    try:
        saved = json.loads(TABLES.read_text(encoding="utf-8"), object_hook=_decode)
    except (OSError, ValueError):
        saved = None
    if saved is not None and saved.get("stamp") == _stamp(text):
        try:
            return Lark._load_from_dict(saved["data"], saved["memo"], postlex=ArchIndenter(), _plugins=PLUGINS)
        except Exception:  # noqa: BLE001 — lark's private format moved: build the tables instead
            pass
    return _build(text)


# JSON keeps only string keys and lists; lark's tables have integer keys and tuples.
def _encode(obj):
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v) for k, v in obj.items()}
        return {"__items__": [[_encode(k), _encode(v)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in the grammar tables")


def _decode(obj: dict):
    if "__items__" in obj and len(obj) == 1:
        return {_freeze(k): v for k, v in obj["__items__"]}
    if "__tuple__" in obj and len(obj) == 1:
        return tuple(obj["__tuple__"])
    return obj


def _freeze(key):
    return tuple(key) if isinstance(key, list) else key


def tables_json() -> str:
    """The serialised LALR tables of ``grammar.lark`` as ``grammar_tables.json`` holds them."""
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    text = GRAMMAR.read_text(encoding="utf-8")
    data, memo = _build(text).memo_serialize([TerminalDef, Rule])
    # objects, passed again at load
    data["options"] = {k: v for k, v in data["options"].items() if k not in ("postlex", "_plugins")}
    return json.dumps({"stamp": _stamp(text), "data": _encode(data), "memo": _encode(memo)},
                      separators=(",", ":"), sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m archdsl.frontend.grammar  (rewrites grammar_tables.json)
    TABLES.write_text(tables_json(), encoding="utf-8")
    print(f"wrote {TABLES}", file=sys.stderr)
