"""IR → ``.arch`` text: a readable spec with every number resolved.

The printer recovers the spec's structure from the IR alone:

* **joins** — each ``add``/``mul``/``concat`` node closes a group whose
  branches all start at the join's immediate dominator (the value the group
  read), so a series-parallel walk back from the output rebuilds the nesting;
  a branch that reaches that value directly is ``identity``;
* **scopes** — node paths (``layer1.0.conv1``) and the graph's ``scopes``
  table give the nested scopes; numbered parts are written as unlabelled items
  or ``seq:`` (which take the next index, as they did in the original), named
  parts as labels or named scopes;
* **auxiliary heads** are written where the value they read is produced.

A network that is not series-parallel from one input to one output (several
inputs or outputs, tensors read by name) is written in graph form instead:
one line per op, ``@source -> path: op(…, @other)``, placed at its module
path, then one ``output`` line per output.

Identical consecutive numbered scopes (ResNet's repeated bottlenecks) fold
into ``repeat N:``. Compiling the printed text gives the same IR: the same
module paths, ops, arguments and shapes (``scale -o`` checks this).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import networkx as nx

from ..ir.graph import Architecture, inputs_of
from ..ir.ops import REGISTRY, Category, joins

INDENT = "    "
LINE_WIDTH = 100
# Names the grammar reads as keywords or structure; written as {"name"} or `name: seq:`.
_KEYWORDS = {"aux", "repeat", "for", "if", "elif", "else", "let", "in", "when", "as", "and", "or",
             "not", "true", "false", "none", "fn", "return", "param", "variant", "import",
             "arch", "input", "network", "block", "init"}
_GROUPS = {"branch", "seq"}
# Ops that read well on the same line as the op before them: argument-free or nearly so.
_LIGHT = {Category.NORM, Category.ACTIVATION, Category.RESHAPE, Category.REGULARIZER}


def _structural(name: str) -> bool:
    return name in _GROUPS or name in joins()


def _light(op: str) -> bool:
    return REGISTRY[op].category in _LIGHT


@dataclass
class _Op:
    node: str


@dataclass
class _Join:
    node: str
    branches: list  # one item list per branch; [] is identity


@dataclass
class _Aux:
    key: str  # the auxiliary output's full path, e.g. "aux1"
    items: list
    output: str


@dataclass
class _Scope:
    path: tuple
    items: list = field(default_factory=list)


def _path(name: str) -> tuple:
    return tuple(name.split("."))


class _Flow:
    """Series-parallel decomposition of the IR into item lists."""

    def __init__(self, arch: Architecture):
        self.arch = arch
        self.graph = arch.graph
        self.idom = nx.immediate_dominators(self.graph, "input")
        self.aux_at: dict[str, list] = defaultdict(list)
        for key, out in sorted(arch.aux_outputs.items(), key=lambda kv: self._first_order(kv[0])):
            self.aux_at[self._aux_entry(key)].append((key, out))

    def _first_order(self, key: str) -> int:
        return min(d["order"] for _, d in self.graph.nodes(data=True) if d.get("aux") == key)

    def _aux_entry(self, key: str) -> str:
        for node, data in self.graph.nodes(data=True):
            if data.get("aux") != key:
                continue
            for src in inputs_of(self.graph, node):
                if self.graph.nodes[src].get("aux") != key:
                    return src
        raise AssertionError(f"auxiliary output {key} reads nothing")

    def sequence(self, start: str, end: str) -> list:
        """Items computing ``end`` from ``start``, in execution order, aux heads included."""
        items = []
        node = end
        while node != start:
            data = self.graph.nodes[node]
            if REGISTRY[data["op"]].category is Category.JOIN:
                fork = self.idom[node]
                items.append(_Join(node, [self.branch(fork, src, data, i)
                                          for i, src in enumerate(inputs_of(self.graph, node))]))
                node = fork
            else:
                items.append(_Op(node))
                (node,) = inputs_of(self.graph, node)
        items.reverse()
        out = []
        if start == "input":
            out.extend(self.aux_items("input"))
        for item in items:
            out.append(item)
            out.extend(self.aux_items(item.node))
        return out

    def branch(self, fork: str, src: str, join: dict, index: int) -> list:
        start = fork
        if join["op"] == "concat" and join["attrs"].get("split"):
            start = self._split_of(fork, src, index)
        return self.sequence(start, src)

    def _split_of(self, fork: str, src: str, index: int) -> str:
        # the channel_split a `concat(split = true)` put at the head of branch `index`
        node = src
        while True:
            data = self.graph.nodes[node]
            if data["op"] == "channel_split" and inputs_of(self.graph, node) == [fork] \
                    and data["attrs"]["index"] == index:
                return node
            preds = inputs_of(self.graph, node)
            if len(preds) != 1:
                raise AssertionError(f"cannot find the split feeding branch {index} of a split concat")
            node = preds[0]

    def aux_items(self, value: str) -> list:
        return [_Aux(key, self.sequence(value, out), out) for key, out in self.aux_at.get(value, [])]


class _Printer:
    def __init__(self, arch: Architecture):
        self.arch = arch
        self.graph = arch.graph
        self.scopes = arch.graph.graph.get("scopes", {})
        self.next_index: dict[tuple, int] = defaultdict(int)  # per scope, as the elaborator counts

    # ---- homes and scopes ------------------------------------------------------------

    def home(self, item) -> tuple:
        if isinstance(item, _Aux):
            return _path(item.key)[:-1]
        return _path(self.graph.nodes[item.node]["name"])[:-1]

    def group(self, items: list, scope: tuple) -> list:
        """Gather consecutive items living in the same child scope of ``scope``."""
        out: list = []
        for item in items:
            home = self.home(item)
            if home[:len(scope)] != scope:
                raise AssertionError(f"{item} lies outside scope {'.'.join(scope)}")
            if home == scope:
                out.append(item)
                continue
            child = scope + (home[len(scope)],)
            if out and isinstance(out[-1], _Scope) and out[-1].path == child:
                out[-1].items.append(item)
            else:
                out.append(_Scope(child, [item]))
        return out

    # ---- text ------------------------------------------------------------------------

    @staticmethod
    def name_text(name: str) -> str:
        return f'{{"{name}"}}' if name in _KEYWORDS or "-" in name else name

    def op_text(self, node: str) -> str:
        data = self.graph.nodes[node]
        opdef = REGISTRY[data["op"]]
        attrs = data["attrs"]
        parts = []
        for arg in opdef.args:
            value = attrs.get(arg.name)
            if arg.required:
                parts.append(_value(value, arg.kind))
            elif value != arg.default:
                parts.append(f"{arg.name} = {_value(value, arg.kind)}")
        for role, init in (data.get("init") or {}).items():  # written per op, rules resolved
            parts.append(f"{'init' if role == 'weight' else role + '_init'} = {init.text()}")
        if data.get("inplace") is False:
            parts.append("inplace = false")
        call = data["op"] + (f"({', '.join(parts)})" if parts else "")
        last = _path(data["name"])[-1]
        return call if last.isdigit() else f"{self.name_text(last)}: {call}"

    def scope_header(self, path: tuple) -> str:
        name = path[-1]
        if name.isdigit():
            head = "seq:"
        elif _structural(name):
            head = f"{name}: seq:"
        else:
            head = f"{self.name_text(name)}:"
        info = self.scopes.get(".".join(path), {})
        if info.get("block"):
            head += f"  # {info['block']}"
        return head

    def render(self, items: list, scope: tuple, depth: int) -> list[str]:
        """Lines for a sequence of items run one after another in ``scope``."""
        pad = INDENT * depth
        pieces: list[tuple] = []  # (index or None, lines, element) per grouped element
        for element in self.group(items, scope):
            index = self._index_of(element)
            if index is not None:  # numbered items take the scope's next index, in order
                expected = self.next_index[scope]
                if index < expected:
                    raise AssertionError(f"index {index} of {'.'.join(scope) or 'the network'} "
                                         "comes after a later one")
                for _ in range(expected, index):  # indices taken by items that made no op
                    pieces.append((None, [pad + "seq:  # empty", pad + INDENT + "identity"], None))
                self.next_index[scope] = index + 1
            if isinstance(element, _Op):
                lines = [pad + self.op_text(element.node)]
            elif isinstance(element, _Scope):
                lines = [pad + self.scope_header(element.path)]
                lines += self.render(element.items, element.path, depth + 1)
            elif isinstance(element, _Join):
                lines = self.render_join(element, scope, depth)
            else:
                lines = self.render_aux(element, depth)
            pieces.append((index, lines, element))
        return self._assemble(pieces, pad)

    def _index_of(self, element):
        if isinstance(element, _Scope):
            last = element.path[-1]
        elif isinstance(element, _Op):
            last = _path(self.graph.nodes[element.node]["name"])[-1]
        else:
            return None
        return int(last) if last.isdigit() else None

    def _assemble(self, pieces: list, pad: str) -> list[str]:
        lines: list[str] = []
        i = 0
        while i < len(pieces):
            index, block, element = pieces[i]
            run = 1  # fold identical consecutive numbered scopes into `repeat`
            while (isinstance(element, _Scope) and index is not None and i + run < len(pieces)
                   and pieces[i + run][0] == index + run and pieces[i + run][1] == block):
                run += 1
            if run > 1:
                lines.append(f"{pad}repeat {run}:")
                lines += [INDENT + line for line in block]
            elif (isinstance(element, _Op) and i > 0 and isinstance(pieces[i - 1][2], _Op)
                    and _light(self.graph.nodes[element.node]["op"])
                    and len(lines[-1]) + len(block[0].strip()) + 3 <= LINE_WIDTH):
                lines[-1] += ";  " + block[0].strip()
            else:
                lines += block
            i += run
        return lines

    def render_join(self, join: _Join, scope: tuple, depth: int) -> list[str]:
        pad = INDENT * depth
        data = self.graph.nodes[join.node]
        head = data["op"] + ("(split = true)" if data["attrs"].get("split") else "")
        lines = [f"{pad}{head}:"]
        for branch in join.branches:
            lines += self.render_branch(branch, scope, depth + 1)
        return lines

    def render_branch(self, items: list, scope: tuple, depth: int) -> list[str]:
        pad = INDENT * depth
        if not items:
            return [pad + "identity"]
        grouped = self.group(items, scope)
        if len(grouped) == 1 and isinstance(grouped[0], _Op):
            return [pad + self.op_text(grouped[0].node)]
        if len(grouped) == 1 and isinstance(grouped[0], (_Scope, _Join)):
            return self.render(items, scope, depth)
        return [pad + "branch:"] + self.render(items, scope, depth + 1)

    def render_aux(self, aux: _Aux, depth: int) -> list[str]:
        pad = INDENT * depth
        name = _path(aux.key)[-1]
        head = f"{pad}aux {self.name_text(name)}:"
        if len(aux.items) == 1 and isinstance(aux.items[0], _Op) and \
                self.graph.nodes[aux.output]["name"] == aux.key:
            call = self.op_text(aux.output).split(": ", 1)[-1]
            return [f"{head} {call}"]
        body = self.render(aux.items, _path(aux.key), depth + 1)
        grouped = self.group(aux.items, _path(aux.key))
        if len(grouped) == 1 and isinstance(grouped[0], _Op):
            # a lone unlabelled op would take the aux head's own name; a let keeps it numbered
            body.insert(0, INDENT * (depth + 1) + "let numbered = true")
        return [head] + body


def _value(value, kind: str = "") -> str:
    """A resolved argument as spec text (floats by repr, which round-trips exactly)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if text in ("inf", "-inf", "nan"):
            raise ValueError(f"cannot write {text} in a spec")
        return text
    if isinstance(value, str):
        return f"'{value}'" if '"' in value else f'"{value}"'
    if isinstance(value, (tuple, list)):
        if kind in ("pair", "size", "padding") and len(value) == 2 and value[0] == value[1]:
            return _value(value[0])
        inner = ", ".join(_value(v) for v in value)
        return f"[{inner}]" if kind == "number_list" or isinstance(value, list) else f"({inner})"
    raise TypeError(f"cannot write {type(value).__name__} in a spec")


def to_arch(arch: Architecture, header: list[str] | None = None) -> str:
    """The ``.arch`` text of an elaborated network, every number resolved.

    ``header`` lines become ``#`` comments at the top. Compiling the text gives
    the same IR (module paths, ops, arguments and shapes) as ``arch``.
    """
    items = _series_parallel(arch)
    lines = [f"# {line}".rstrip() for line in header or []]
    lines.append(f"arch {arch.family}")
    for name, shape in arch.inputs.items():
        dims = " x ".join(str(d) for d in shape)
        lines.append(f"input {dims}" if list(arch.inputs) == ["input"] else f"input {name}: {dims}")
    lines.append("")
    lines.append("network:")
    body = None
    if items is not None:
        try:  # the scopes may not nest with the joins (a U-Net's skips): then the graph form
            body = _Printer(arch).render(items, (), 1)
        except AssertionError:
            body = None
    lines += body if body is not None else _graph_lines(arch)
    return "\n".join(lines) + "\n"


def _series_parallel(arch: Architecture) -> list | None:
    """The nested items of a series-parallel network, or None when it needs the graph form."""
    if arch.returns_dict or list(arch.inputs) != ["input"]:
        return None
    try:
        items = _Flow(arch).sequence("input", arch.output)
    except (ValueError, KeyError, AssertionError):
        return None
    seen: list = []

    def collect(elements):
        for element in elements:
            if isinstance(element, _Aux):
                collect(element.items)
                continue
            seen.append(element.node)
            for branch in getattr(element, "branches", ()):
                collect(branch)
    collect(items)
    every = [node for node, _ in arch.ops(include_aux=True)]
    return items if sorted(seen) == sorted(every) else None


def _label(name: str) -> str:
    """A module path as a placement label; keyword or numeric segments as ``{"…"}``."""
    return ".".join(f'{{"{seg}"}}' if seg in _KEYWORDS or (i == 0 and seg[0].isdigit()) else seg
                    for i, seg in enumerate(name.split(".")))


def _graph_lines(arch: Architecture) -> list[str]:
    """The graph form: each op reads its inputs by name and sits at its module path."""
    graph, lines = arch.graph, []
    for node, data in arch.ops(include_aux=True):
        if data.get("aux"):
            raise ValueError("cannot print a network with auxiliary heads and named tensors")
        refs = ["@" + graph.nodes[s]["name"] for s in inputs_of(graph, node)]
        opdef = REGISTRY[data["op"]]
        parts = refs[1:] if opdef.category is Category.JOIN else []
        extra = iter(refs[1:])
        for arg in opdef.args:
            value = data["attrs"].get(arg.name)
            if arg.kind == "tensor":
                parts.append(f"{arg.name} = {next(extra)}")
            elif arg.required:
                parts.append(_value(value, arg.kind))
            elif value != arg.default:
                parts.append(f"{arg.name} = {_value(value, arg.kind)}")
        call = data["op"] + (f"({', '.join(parts)})" if parts else "")
        lines.append(f"{INDENT}{refs[0]} -> {_label(data['name'])}: {call}")
    if arch.returns_dict:
        lines += [f"{INDENT}output {_value(key)}: @{graph.nodes[node]['name']}"
                  for key, node in arch.outputs.items()]
    else:
        lines.append(f"{INDENT}@{graph.nodes[arch.output]['name']}")
    return lines


def signature(arch: Architecture) -> list[tuple]:
    """What two IRs must share to be the same network: per op, its path, op, args, shapes and init."""
    return [(d["name"], d["op"], tuple(sorted(d["attrs"].items())), tuple(d["shape"]),
             tuple(map(tuple, d["in_shapes"])), d.get("aux"), tuple(sorted((d.get("init") or {}).items())))
            for _, d in arch.ops(include_aux=True)]
