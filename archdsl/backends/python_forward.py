"""An fx graph → the Python source of a plain ``forward`` method (torch only, no fx).

One statement per graph node, named as fx names it (``conv1 = self.conv1(x)``);
``operator.add``/``mul`` become ``+``/``*``, ``getitem`` an index, torch and
``torch.nn.functional`` calls keep their public names. Helper functions that
archdsl's lowerings put in graphs are reported so the caller can emit them.
Used by :mod:`archdsl.backends.python_source`.
"""

from __future__ import annotations

import inspect
import keyword
import math
import operator

import torch
import torch.nn.functional as F
from torch import fx

from ..errors import ArchError

_INFIX = {operator.add: "+", operator.mul: "*", operator.sub: "-", operator.truediv: "/"}


def attribute_source(owner: str, parts) -> str:
    """``self.layer1.conv`` or ``getattr(self, '0')`` for a path of attribute names."""
    text = owner
    for part in parts:
        text = f"{text}.{part}" if is_name(part) else f"getattr({text}, {part!r})"
    return text


def is_name(text: str) -> bool:
    """Whether ``text`` can be written as a plain attribute name."""
    return text.isidentifier() and not keyword.iskeyword(text)


def value_source(value, names: dict | None = None) -> str:
    """Python source of a constant (numbers, strings, None, tuples, lists, dicts, slices, dtypes),
    or of an fx node's variable (its name, unless ``names`` renames it)."""
    if isinstance(value, fx.Node):
        return (names or {}).get(value, value.name)
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, tuple):
        inner = ", ".join(value_source(v, names) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, (list, torch.Size)):
        return f"[{', '.join(value_source(v, names) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{value_source(k)}: {value_source(v, names)}" for k, v in value.items()) + "}"
    if isinstance(value, slice):
        return _slice(value, names)
    if isinstance(value, torch.dtype):
        return str(value)
    raise ArchError(f"cannot write the value {value!r} ({type(value).__name__}) as source")


def _slice(s: slice, names: dict | None = None) -> str:
    parts = ["" if p is None else value_source(p, names) for p in (s.start, s.stop)]
    text = ":".join(parts)
    return text if s.step is None else f"{text}:{value_source(s.step, names)}"


def _index(index, names: dict) -> str:
    if isinstance(index, tuple) and index:
        return ", ".join(_index(i, names) for i in index)
    return _slice(index, names) if isinstance(index, slice) else value_source(index, names)


def _call_args(args, kwargs, names: dict) -> str:
    parts = [value_source(a, names) for a in args] + [f"{k}={value_source(v, names)}" for k, v in kwargs.items()]
    return ", ".join(parts)


def function_name(fn, helpers: dict) -> str:
    """The name a standalone file calls ``fn`` by; archdsl's own helpers are added to ``helpers``."""
    name = getattr(fn, "__name__", "")
    if getattr(torch, name, None) is fn:
        return f"torch.{name}"
    if getattr(F, name, None) is fn:
        return f"F.{name}"
    if getattr(fn, "__module__", "").startswith("archdsl."):
        helpers[name] = fn
        return name
    raise ArchError(f"cannot write a call to {fn!r} as standalone source")


def _statement(node: fx.Node, helpers: dict, names: dict) -> str:
    args, kwargs, var = node.args, node.kwargs, names.get(node, node.name)
    if node.op == "get_attr":
        return f"{var} = {attribute_source('self', node.target.split('.'))}"
    if node.op == "call_module":
        return f"{var} = {attribute_source('self', node.target.split('.'))}({_call_args(args, kwargs, names)})"
    if node.op == "call_method":
        return f"{var} = {value_source(args[0], names)}.{node.target}({_call_args(args[1:], kwargs, names)})"
    if node.op != "call_function":
        raise ArchError(f"cannot write the fx node {node.format_node()} as source")
    if node.target in _INFIX and len(args) == 2 and not kwargs:
        return f"{var} = {value_source(args[0], names)} {_INFIX[node.target]} {value_source(args[1], names)}"
    if node.target is operator.getitem:
        return f"{var} = {value_source(args[0], names)}[{_index(args[1], names)}]"
    return f"{var} = {function_name(node.target, helpers)}({_call_args(args, kwargs, names)})"


# Names a forward's variables must not shadow (besides the helpers it calls).
_GLOBALS = {"self", "torch", "F", "nn", "OrderedDict", "NamedTuple", "network_outputs", "NetworkOutputs"}


def forward_source(graph: fx.Graph, helpers: dict, guard: bool = False) -> str:
    """The ``def forward(self, …)`` text of ``graph`` (indented one level, for a class body).

    ``guard``: the module runs only in training mode and returns None in eval
    mode (an auxiliary head). archdsl helper functions the graph calls are
    added to ``helpers`` (name → function). A variable that would shadow a
    global the file uses gets ``_out`` appended.
    """
    called = {n.target.__name__ for n in graph.nodes
              if n.op == "call_function" and getattr(n.target, "__module__", "").startswith("archdsl.")}
    names = {n: f"{n.name}_out" for n in graph.nodes if n.name in _GLOBALS | called}
    inputs = [names.get(n, n.name) for n in graph.nodes if n.op == "placeholder"]
    body = ["if not self.training:", "    return None"] if guard else []
    for node in graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            result = node.args[0]
            body.append("return " + (", ".join(value_source(v, names) for v in result)
                                     if isinstance(result, tuple) else value_source(result, names)))
        else:
            body.append(_statement(node, helpers, names))
    lines = [f"    def forward(self, {', '.join(inputs)}):"] + [f"        {line}" for line in body]
    return "\n".join(lines)


def helper_source(fn) -> str:
    """The source of an archdsl helper function a graph calls (undecorated, torch only)."""
    source = inspect.getsource(fn)
    if source.lstrip().startswith("@"):
        raise ArchError(f"cannot copy the decorated helper {fn.__name__} into standalone source")
    return source.rstrip() + "\n"
