"""A faster scanner for lark's contextual lexer: same tokens, no per-state regex unions.

Lark's contextual lexer gives every parser state its own scanner, a single
regular expression that unions the terminals the state accepts. Compiling
those unions (one per distinct state, ~40 for a ResNet spec) took 0.13 s of
every ``archdsl check`` — more than lexing and parsing together. Here each
terminal's pattern is compiled once per process and a state's scanner tries
its terminals one by one in lark's order, which is exactly what the union
does: Python's ``|`` takes the first alternative that matches at the
position, and lark lists the alternatives in that order. Keywords that the
``NAME`` pattern also matches are re-typed the way lark does it (a keyword
is ``NAME`` unless its text is the keyword's).

Plugged in through lark's ``_plugins`` hook (the one lark-cython uses), so
lark's parser, error types and ``UnexpectedCharacters`` positions are
unchanged; ``tests/test_cli_speed.py`` checks that both lexers give the same
tokens for every bundled spec.
"""

from __future__ import annotations

import functools
import re
from copy import copy

from lark.lexer import BasicLexer, ContextualLexer, PatternRE, PatternStr, UnlessCallback

class OrderedScanner:
    """Lark's ``Scanner`` interface (``match``, ``fullmatch``, ``allowed_types``) over terminals tried in order."""

    def __init__(self, terminals, g_regex_flags: int):
        self.terminals = terminals
        self.allowed_types = {t.name for t in terminals}
        # re.compile keeps compiled patterns: each terminal is compiled once per process
        self._patterns = [(re.compile(t.pattern.to_regexp(), g_regex_flags), t.name) for t in terminals]

    def match(self, text, pos):
        """``(value, terminal name)`` of the first terminal matching ``text`` at ``pos``, else None
        (``text`` is lark's ``TextSlice``; a plain string before lark 1.2)."""
        string = getattr(text, "text", text)
        end = getattr(text, "end", len(string))
        for pattern, name in self._patterns:
            m = pattern.match(string, pos, end)
            if m:
                return m.group(0), name
        return None

    def fullmatch(self, value: str):
        """The name of the first terminal matching all of ``value``, else None."""
        for pattern, name in self._patterns:
            if pattern.fullmatch(value):
                return name
        return None


@functools.cache
def _matches_all(regexp: str, flags: int, value: str) -> bool:
    """Whether ``regexp`` matching at the start of ``value`` takes all of it (asked once per pair)."""
    m = re.match(regexp, value, flags)
    return bool(m) and m.group(0) == value


def _keyword_callbacks(terminals, g_regex_flags: int):
    """Lark's rule for keywords inside a regex terminal (its ``_create_unless``), with ordered scanners.

    A string terminal of the same priority that a regex terminal matches in full
    is scanned as the regex terminal and re-typed by a callback; it leaves the
    scanner's list when its flags are no wider than the regex's.
    """
    strings = [t for t in terminals if isinstance(t.pattern, PatternStr)]
    embedded, callbacks = set(), {}
    for regex_term in (t for t in terminals if isinstance(t.pattern, PatternRE)):
        regexp = regex_term.pattern.to_regexp()
        unless = []
        for string_term in strings:
            if string_term.priority != regex_term.priority:
                continue
            if _matches_all(regexp, g_regex_flags, string_term.pattern.value):
                unless.append(string_term)
                if string_term.pattern.flags <= regex_term.pattern.flags:
                    embedded.add(string_term)
        if unless:
            callbacks[regex_term.name] = UnlessCallback(OrderedScanner(unless, g_regex_flags))
    return [t for t in terminals if t not in embedded], callbacks


class OrderedBasicLexer(BasicLexer):
    """Lark's ``BasicLexer`` whose scanner is an :class:`OrderedScanner`."""

    def _build_scanner(self):
        if self.use_bytes or self.user_callbacks:  # archdsl sets neither: lark's own scanner then
            return super()._build_scanner()
        terminals, self.callback = _keyword_callbacks(self.terminals, self.g_regex_flags)
        return OrderedScanner(terminals, self.g_regex_flags)


class _LexersByState(dict):
    """``{parser state: lexer}``, each made on first use (a spec visits a fraction of ~400 states)."""

    def __init__(self, make):
        super().__init__()
        self._make = make

    def __missing__(self, state):
        lexer = self[state] = self._make(state)
        return lexer


class OrderedContextualLexer(ContextualLexer):
    """Lark's contextual lexer: one :class:`OrderedBasicLexer` per distinct set of accepted terminals,
    made when a parser state first needs it instead of for every state at load (~10 ms).

    Unlike lark's constructor, it does not ask the optional ``interegular``
    package about colliding terminals: the grammar is fixed, and
    ``tests/test_cli_speed.py`` compares the tokens with lark's own lexer.
    """

    BasicLexer = OrderedBasicLexer

    def __init__(self, conf, states, always_accept=()):  # noqa: D107 — lark's signature
        terminals = list(conf.terminals)
        by_name = conf.terminals_by_name
        trad_conf = copy(conf)
        trad_conf.terminals = terminals
        extra = set(conf.ignore) | set(always_accept)
        by_accepts: dict = {}

        def make(state):
            key = frozenset(states[state])
            lexer = by_accepts.get(key)
            if lexer is None:
                lexer_conf = copy(trad_conf)
                lexer_conf.terminals = [by_name[n] for n in key | extra if n in by_name]
                lexer = by_accepts[key] = self.BasicLexer(lexer_conf)
            return lexer

        self.lexers = _LexersByState(make)
        trad_conf.skip_validation = True
        self.root_lexer = self.BasicLexer(trad_conf)


PLUGINS = {"ContextualLexer": OrderedContextualLexer}
