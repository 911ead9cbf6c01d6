"""Generated ``forward`` code shared by ``GraphModule`` s whose graphs print the same.

Building a ``torch.fx.GraphModule`` generates the Python source of its graph
(``Graph.python_code``) and ``exec`` s it, once per instance, though the 16
bottlenecks of ResNet-50 or the 98 dense layers of DenseNet-201 differ only in
their submodules' weights. :class:`CodeShare` keys each graph by its structure
(:func:`graph_key`: every node's kind, name, target, arguments), generates and
compiles the first graph of each key as torch.fx does, and gives every later
graph with the same key that code: the same source string, the same
``forward`` function object. Everything else about the module is torch.fx's
own: its class (one per instance, as ``GraphModule`` makes), graph,
submodules, ``code``, pickling, deepcopy, scripting and export; a later
``recompile()`` is torch.fx's unchanged.

Sharing repeats what ``GraphModule.recompile`` sets (three private attributes
and the class's ``forward``/``__call__``). Every shared module is checked to
hold the same attribute names as the first module of its key, which torch.fx
compiled itself; on any difference (a torch version that sets more), the
module is compiled by torch.fx after all, a :class:`RuntimeWarning` says so,
and sharing stops for that build.
"""

from __future__ import annotations

import warnings

import torch
from torch import fx, nn

# Instance attributes GraphModule.recompile sets from the PythonCode it generates.
_CODE_ATTRIBUTES = ("_code", "_lineno_map", "_prologue_start")


class _Unshareable(Exception):
    """A graph holds something whose printed form the key cannot capture."""


def _value_key(value):
    """A hashable key equal for two argument values exactly when fx prints them the same."""
    if isinstance(value, fx.Node):
        return ("%", value.name)
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return (kind, value)
    if kind in (float, complex):  # repr: 0.0 and -0.0 print differently, though equal
        return (kind, repr(value))
    if isinstance(value, (tuple, list)):  # fx's immutable_list and torch.Size keep their own type
        return (kind, tuple(_value_key(v) for v in value))
    if isinstance(value, dict):
        return (kind, tuple((_value_key(k), _value_key(v)) for k, v in value.items()))
    if kind is slice:
        return (kind, _value_key(value.start), _value_key(value.stop), _value_key(value.step))
    if kind in (torch.dtype, torch.device, torch.memory_format, torch.layout):
        return (kind, str(value))
    if value is Ellipsis:
        return (kind,)
    raise _Unshareable(kind.__name__)


def graph_key(graph: fx.Graph):
    """The structural key of ``graph``'s generated code, or None when it cannot be shared.

    Two graphs with equal keys have the same nodes in the same order: kind,
    name, target (a submodule or attribute path, a method name, or the very
    function object called) and arguments (constants by type and printed value,
    other nodes by name). That is everything ``python_code`` prints for a graph
    with torch.fx's default code generator, no node metadata and no type
    annotations; any other graph gets None and keeps its own code.
    """
    if type(getattr(graph, "_codegen", None)) is not fx.graph.CodeGen or getattr(graph, "_co_fields", None):
        return None
    try:
        key = tuple(_node_key(node) for node in graph.nodes)
        hash(key)  # a function target that cannot be hashed
    except (_Unshareable, TypeError):
        return None
    return key


def _node_key(node: fx.Node) -> tuple:
    if node.meta or node.type is not None:  # metadata and annotations can reach the printed code
        raise _Unshareable("node metadata")
    target = node.target if isinstance(node.target, str) else ("fn", node.target)
    return node.op, node.name, target, _value_key(node.args), _value_key(node.kwargs)


def _profiler_metadata() -> bool:
    """Whether torch.fx writes per-graph profiler metadata into generated code (then nothing is shared)."""
    try:
        from torch.fx.experimental import _config
    except ImportError:
        return True
    return bool(getattr(_config, "enrich_profiler_metadata", True))


class _Compiled:
    """The code torch.fx generated and compiled for the first graph of a key."""

    def __init__(self, module: fx.GraphModule):
        cls = type(module)
        self.attributes = {name: module.__dict__[name] for name in _CODE_ATTRIBUTES}
        self.forward = cls.__dict__["forward"]
        self.call = cls.__dict__["__call__"]  # calls self._wrapped_call: the same for every instance
        self.wrapped_call_type = type(cls.__dict__["_wrapped_call"])
        self.instance_names = frozenset(module.__dict__)
        self.class_names = frozenset(cls.__dict__)

    @staticmethod
    def usable(module: fx.GraphModule) -> bool:
        """Whether ``module`` was compiled the way :meth:`install` repeats."""
        cls, names = type(module), module.__dict__
        wrapped = cls.__dict__.get("_wrapped_call")
        return (all(name in names for name in _CODE_ATTRIBUTES) and "forward" in cls.__dict__
                and "__call__" in cls.__dict__ and getattr(wrapped, "cls", None) is cls
                and getattr(wrapped, "cls_call", ()) is None)

    def install(self, module: fx.GraphModule):
        """Stands in for ``GraphModule.recompile`` while ``module`` is constructed: gives it this code."""
        for name, value in self.attributes.items():
            setattr(module, name, value)
        cls = type(module)  # the instance's own class, made by GraphModule.__new__
        cls.forward = self.forward
        cls._wrapped_call = self.wrapped_call_type(cls, None)
        cls.__call__ = self.call
        for child in module.children():  # as recompile does; archdsl's builds hold only stand-ins here
            if isinstance(child, fx.GraphModule):
                child.recompile()

    def matches(self, module: fx.GraphModule) -> bool:
        """Whether ``module`` holds what torch.fx's own compilation gave the first module."""
        return (frozenset(module.__dict__) == self.instance_names
                and frozenset(type(module).__dict__) == self.class_names)


class CodeShare:
    """Makes ``GraphModule`` s for one build, compiling each distinct graph's code once.

    ``compiled`` counts the graphs torch.fx generated and compiled code for,
    ``shared`` the ones given an earlier graph's code.
    """

    def __init__(self):
        self._entries: dict = {}
        self.enabled = not _profiler_metadata()
        self.compiled = 0
        self.shared = 0

    def graph_module(self, root: nn.Module, graph: fx.Graph, class_name: str) -> fx.GraphModule:
        """``fx.GraphModule(root, graph, class_name)``, with the code of an earlier equal graph if any."""
        key = graph_key(graph) if self.enabled else None
        entry = self._entries.get(key) if key is not None else None
        if entry is None:
            module = fx.GraphModule(root, graph, class_name)
            self.compiled += 1
            if key is not None:
                self._remember(key, module)
            return module
        module = fx.GraphModule.__new__(fx.GraphModule)
        cls = type(module)
        cls.recompile = lambda self: entry.install(self)
        try:
            module.__init__(root, graph, class_name)
        finally:
            del cls.recompile
        if not entry.matches(module):
            self._stop("a shared module's attributes differ from torch.fx's own compilation")
            fx.GraphModule.recompile(module)
            self.compiled += 1
            return module
        self.shared += 1
        return module

    def _remember(self, key, module: fx.GraphModule) -> None:
        if _Compiled.usable(module):
            self._entries[key] = _Compiled(module)
        else:
            self._stop("GraphModule.recompile no longer sets what sharing repeats")

    def _stop(self, why: str) -> None:
        self.enabled = False
        self._entries.clear()
        warnings.warn(f"generated code is no longer shared between identical blocks: {why} "
                      f"(torch {torch.__version__}); every block compiles its own", RuntimeWarning, stacklevel=3)
