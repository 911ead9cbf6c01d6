"""A compiled module tree → one standalone Python file that needs only torch.

The file mirrors the compiled network's hierarchy with plain ``nn.Module``
classes, so its ``state_dict`` keys are exactly archdsl's and weights load by
name (``strict=True``):

- every scope compiled to a ``GraphModule`` (block instances, the network
  itself), every auxiliary head and every ``nn.Sequential`` that is a block
  instance becomes a class. Instances with the same body share one class whose
  constructor takes what differs between them (``Bottleneck(in_channels=256,
  conv1_out_channels=128, conv3_out_channels=512, stride=2)``); what is the
  same in every instance stays a literal;
- other ``nn.Sequential`` scopes, and the plain containers of inlined scopes,
  are written in place in their parent's ``__init__``;
- leaves are ``torch.nn`` layers written with their constructor arguments
  (read back from the module), or archdsl's own layers, whose source is copied
  into the file;
- each ``forward`` is written from the scope's fx graph
  (:mod:`archdsl.backends.python_forward`).

:func:`python_source` returns the text.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from ..errors import ArchError
from ..ir.graph import Architecture
from .lowerings import ChannelAffine, FrozenBatchNorm2d, SelfAttention
from .python_forward import (
    attribute_source,
    forward_source,
    helper_source,
    is_name,
    value_source,
)
from .torch_fx import AuxHead

# Conv and pool arguments torch reads as "an int or a pair": (3, 3) is written 3.
_PAIR_ARGS = {"kernel_size", "stride", "padding", "dilation", "output_padding", "output_size"}
_SKIPPED_ARGS = {"self", "device", "dtype"}
_REQUIRED = inspect.Parameter.empty


def _own_args(module: nn.Module) -> dict | None:
    """Constructor arguments of archdsl's layers whose attributes do not mirror them."""
    if isinstance(module, SelfAttention):
        return {"dim": module.embed_dim, "heads": module.num_heads, "dropout": module.dropout,
                "bias": module.in_proj_bias is not None}
    if isinstance(module, FrozenBatchNorm2d):
        return {"num_features": module.weight.shape[0], "eps": module.eps}
    if isinstance(module, ChannelAffine):
        return {"scale": module.scale.flatten().tolist(), "shift": module.shift.flatten().tolist()}
    return None


@dataclass(frozen=True)
class Arg:
    """One constructor argument: its keyword (None: positional), slot index and default."""

    keyword: str | None
    slot: int
    default: object


def leaf_call(module: nn.Module, slots: list, rel: str, own: dict) -> tuple:
    """``("leaf", callable text, (Arg, …))`` for a layer; its argument values go to ``slots``.

    ``slots`` collects ``((member path, argument), value)``; archdsl's own
    classes are added to ``own``. Raises ArchError for a layer that is
    neither ``torch.nn``'s nor archdsl's, or whose arguments cannot be read back.
    """
    cls = type(module)
    if getattr(nn, cls.__name__, None) is cls:
        callable_text = f"nn.{cls.__name__}"
    elif cls.__module__.startswith("archdsl."):
        callable_text = own.setdefault(cls.__name__, cls).__name__
    else:
        raise ArchError(f"cannot write {rel} ({cls.__module__}.{cls.__name__}) as standalone source")
    values = _own_args(module)
    args = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name in _SKIPPED_ARGS or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if values is not None:
            value = values[p.name]
        elif hasattr(module, p.name):
            value = _argument_value(getattr(module, p.name), p, rel)
        elif p.default is None:  # a deprecated alias torch does not store (Hardtanh's min_value)
            continue
        else:
            raise ArchError(f"cannot read argument {p.name!r} of {rel} ({cls.__name__}) back")
        if p.name in _PAIR_ARGS and isinstance(value, tuple) and len(value) > 1 and len(set(value)) == 1:
            value = value[0]
        slots.append(((rel, p.name), value))
        args.append(Arg(None if p.default is _REQUIRED else p.name, len(slots) - 1, p.default))
    return ("leaf", callable_text, tuple(args))


def _argument_value(value, parameter: inspect.Parameter, rel: str):
    if isinstance(parameter.default, bool) and (value is None or isinstance(value, torch.Tensor)):
        return value is not None  # `bias=True` is stored as the bias tensor itself
    if isinstance(value, torch.Tensor):
        raise ArchError(f"argument {parameter.name!r} of {rel} is a tensor; cannot write it back")
    return value


# ---- describing the tree ----------------------------------------------------------------------

@dataclass
class Instance:
    """One module that becomes an instance of a generated class.

    ``items`` is its ``__init__`` as a template whose values are slot indices
    into ``slots`` (``((member, argument), value)`` pairs); ``key`` is the same
    for every instance with the same body, values aside.
    """

    path: str
    base: str  # "Module" or "Sequential"
    name: str
    items: list = field(default_factory=list)
    slots: list = field(default_factory=list)
    forward: str = ""
    key: tuple = ()


class Describer:
    """Walks a module tree, describing every class-scope module (children before parents)."""

    def __init__(self, scopes: dict):
        self.scopes = scopes
        self.instances: list[Instance] = []
        self.own: dict = {}  # archdsl layer classes used: name → class
        self.helpers: dict = {}  # archdsl functions the graphs call: name → function

    def describe(self, module: nn.Module, path: str, name: str | None = None) -> Instance:
        body = module._graph_module if isinstance(module, AuxHead) else module
        block = (self.scopes.get(path) or {}).get("block")
        if isinstance(module, nn.Sequential):
            inst = Instance(path, "Sequential", _class_name(block or "Scope"))
            inst.items = [("super", self._sequential(module, "", inst.slots))]
        else:
            inst = Instance(path, "Module", name or _class_name(block or type(body).__name__))
            inst.items = self.members(module, "", inst.slots)
            inst.forward = forward_source(body.graph, self.helpers, guard=isinstance(module, AuxHead))
        inst.key = (inst.base, inst.name, _freeze(inst.items), inst.forward)
        self.instances.append(inst)
        return inst

    def members(self, module: nn.Module, rel: str, slots: list) -> list:
        """``__init__`` items for ``module``'s own parameters and children (plain containers flattened)."""
        items = []
        if next(module.buffers(recurse=False), None) is not None:
            raise ArchError(f"cannot write {rel or 'a scope'}: a scope module holding buffers")
        for name, param in module.named_parameters(recurse=False):
            slots.append(((_join(rel, name), "shape"), tuple(param.shape)))
            items.append(("parameter", _join(rel, name), len(slots) - 1))
        for name, child in module.named_children():
            child_rel = _join(rel, name)
            if type(child) is nn.Module:  # a plain container left by an inlined scope
                items.append(("container", child_rel))
                items += self.members(child, child_rel, slots)
            else:
                items.append(("assign", child_rel, self.expression(child, child_rel, slots)))
        return items

    def expression(self, module: nn.Module, rel: str, slots: list) -> tuple:
        """The constructor expression of a child: a generated class, a Sequential, or a layer."""
        if isinstance(module, (fx.GraphModule, AuxHead)) or (
                isinstance(module, nn.Sequential) and self._is_block(module)):
            inst = self.describe(module, self._absolute[id(module)])
            start = len(slots)
            slots += [((rel, name), value) for (name, value) in inst.slots]
            return ("instance", inst, start, rel)
        if isinstance(module, nn.Sequential):
            return self._sequential(module, rel, slots)
        if type(module) is nn.Module:
            raise ArchError(f"cannot write {rel}: a plain container inside a Sequential")
        return leaf_call(module, slots, rel, self.own)

    def _sequential(self, module: nn.Sequential, rel: str, slots: list) -> tuple:
        return ("sequential", tuple((name, self.expression(child, _join(rel, name), slots))
                                    for name, child in module.named_children()))

    def _is_block(self, module: nn.Module) -> bool:
        return bool((self.scopes.get(self._absolute.get(id(module), "")) or {}).get("block"))

    def run(self, root: nn.Module, name: str) -> Instance:
        self._absolute = {id(m): p for p, m in root.named_modules(remove_duplicate=False)}
        return self.describe(root, "", name)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _class_name(name: str) -> str:
    cleaned = "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_") if part)
    return cleaned if cleaned.isidentifier() else "Scope"


def _freeze(item):
    """A hashable, value-free form of an ``__init__`` template (instances as their class key)."""
    if isinstance(item, Instance):
        return ("class", item.key)
    if isinstance(item, (list, tuple)):
        return tuple(_freeze(i) for i in item)
    if isinstance(item, Arg):
        return (item.keyword, item.slot, repr(item.default))
    return item


# ---- one class per distinct body --------------------------------------------------------------

@dataclass
class GeneratedClass:
    """A class of the file: its instances, constructor parameters and the value of every used slot.

    ``params`` are ``(name, slot)``; ``values`` maps a slot to ``("param", name)``
    or ``("const", value)``.
    """

    name: str
    instances: list
    params: list = field(default_factory=list)
    values: dict = field(default_factory=dict)


def _key(value) -> tuple:
    return (type(value).__name__, repr(value))  # True and 1, 2 and 2.0 stay apart


def _used_slots(item, classes: dict, out: list) -> list:
    """``(slot, (member, argument) or None)`` for every slot the template ``item`` writes, in order."""
    if isinstance(item, list):  # a class's items
        for sub in item:
            _used_slots(sub, classes, out)
        return out
    kind = item[0]
    if kind == "leaf":
        out += [(arg.slot, None) for arg in item[2]]
    elif kind == "parameter":
        out.append((item[2], None))
    elif kind == "instance":
        _, inst, start, rel = item
        out += [(start + slot, (rel, name)) for name, slot in classes[inst.key].params]
    elif kind == "sequential":
        for _, sub in item[1]:
            _used_slots(sub, classes, out)
    elif kind in ("assign", "super"):
        _used_slots(item[-1], classes, out)
    return out


def _finish(cls: GeneratedClass, classes: dict) -> None:
    """Choose ``cls``'s parameters: slots that differ between its instances, equal columns merged."""
    first = cls.instances[0]
    groups: dict = {}
    for slot, label in _used_slots(first.items, classes, []):
        label = label or first.slots[slot][0]
        column = tuple(_key(inst.slots[slot][1]) for inst in cls.instances)
        if len(set(column)) == 1:
            cls.values[slot] = ("const", first.slots[slot][1])
        else:
            groups.setdefault(column, []).append((slot, label))
    arguments = [members[0][1][1] for members in groups.values()]
    taken: set = set()
    for members in groups.values():
        member, argument = members[0][1]
        name = argument if arguments.count(argument) == 1 else f"{member.replace('.', '_')}_{argument}"
        name = name if is_name(name) and name != "self" else f"m{name}"
        while name in taken:
            name += "_"
        taken.add(name)
        cls.params.append((name, members[0][0]))
        for slot, _ in members:
            cls.values[slot] = ("param", name)


def generated_classes(instances: list, reserved: set) -> dict:
    """Group ``instances`` (children first) by key into classes with unique names: key → class."""
    classes: dict = {}
    for inst in instances:
        if inst.key not in classes:
            classes[inst.key] = GeneratedClass(inst.name, [])
        classes[inst.key].instances.append(inst)
    names = set(reserved)
    for cls in classes.values():  # children are finished before their parents
        base, n = cls.name, 2
        while cls.name in names:
            cls.name, n = f"{base}{n}", n + 1
        names.add(cls.name)
        _finish(cls, classes)
    return classes


# ---- rendering ---------------------------------------------------------------------------------

def _text(values: dict, slot: int) -> str:
    kind, value = values[slot]
    return value if kind == "param" else value_source(value)


def render_expression(expr: tuple, values: dict, classes: dict, indent: int) -> str:
    """Source of a constructor expression (a layer, a Sequential or a generated class)."""
    kind = expr[0]
    if kind == "leaf":
        parts = []
        for arg in expr[2]:
            form, value = values[arg.slot]
            if form == "const" and arg.keyword and _key(value) == _key(arg.default):
                continue  # the layer's own default
            text = _text(values, arg.slot)
            parts.append(text if arg.keyword is None else f"{arg.keyword}={text}")
        return f"{expr[1]}({', '.join(parts)})"
    if kind == "instance":
        _, inst, start, _ = expr
        cls = classes[inst.key]
        return f"{cls.name}({', '.join(f'{p}={_text(values, start + s)}' for p, s in cls.params)})"
    return f"nn.Sequential({_sequential_arguments(expr, values, classes, indent)})"


def _sequential_arguments(expr: tuple, values: dict, classes: dict, indent: int) -> str:
    members = expr[1]
    if not members:
        return ""
    pad, inner = "    " * indent, "    " * (indent + 1)
    texts = [render_expression(e, values, classes, indent + 1) for _, e in members]
    if [name for name, _ in members] == [str(i) for i in range(len(members))]:
        return "\n" + "".join(f"{inner}{t},\n" for t in texts) + pad
    pairs = "".join(f"{inner}({name!r}, {t}),\n" for (name, _), t in zip(members, texts))
    return f"OrderedDict([\n{pairs}{pad}])"


def _assign(rel: str, text: str, parameter: bool) -> str:
    *parents, last = rel.split(".")
    owner = attribute_source("self", parents)
    if is_name(last) and not hasattr(nn.Module, last):
        return f"{owner}.{last} = {text}"
    return f"{owner}.{'register_parameter' if parameter else 'add_module'}({last!r}, {text})"


def render_class(cls: GeneratedClass, classes: dict) -> str:
    """The source of one generated class."""
    first = cls.instances[0]
    paths = [inst.path or "the network" for inst in cls.instances]
    where = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    signature = ", ".join(["self"] + [name for name, _ in cls.params])
    doc = f"The network ({first.name})." if not first.path else f"At {where}."
    lines = [f"class {cls.name}(nn.{first.base}):", f'    """{doc}"""', "",
             f"    def __init__({signature}):"]
    for item in first.items:
        if item[0] == "super":
            lines.append(f"        super().__init__({_sequential_arguments(item[1], cls.values, classes, 2)})")
            continue
        if len(lines) == 4:
            lines.append("        super().__init__()")
        if item[0] == "parameter":
            text = f"nn.Parameter(torch.zeros({_text(cls.values, item[2])}))"
            lines.append("        " + _assign(item[1], text, True))
        elif item[0] == "container":
            lines.append("        " + _assign(item[1], "nn.Module()", False))
        else:
            lines.append("        " + _assign(item[1], render_expression(item[2], cls.values, classes, 2), False))
    if len(lines) == 4:
        lines.append("        super().__init__()")
    if first.forward:
        lines += ["", first.forward]
    return "\n".join(lines) + "\n"


# ---- the file ----------------------------------------------------------------------------------

_NETWORK_OUTPUTS = '''
class NetworkOutputs(NamedTuple):
    """Training-mode result of a network with auxiliary heads: the main output and the others by name."""

    logits: torch.Tensor
    aux: dict


def network_outputs(main, aux: dict):
    """The main output alone, or with the auxiliary outputs computed (training mode only)."""
    computed = {name: value for name, value in aux.items() if value is not None}
    if isinstance(main, dict):
        return {**main, **computed}
    return NetworkOutputs(main, computed) if computed else main
'''

_BUILD = '''
INPUT_SHAPE = {input_shape}


def build(weights=None) -> nn.Module:
    """The network ({root}); with ``weights``, a state dict file written by ``torch.save``, loaded by
    name with ``strict=True`` (read with ``weights_only=True``: no code is unpickled). Without weights
    the layers have PyTorch's default initialisation. Call ``.eval()`` for inference."""
    model = {root}()
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return model


if __name__ == "__main__":
    import sys

    model = build(sys.argv[1] if len(sys.argv) > 1 else None).eval()
    with torch.no_grad():
        out = model(torch.randn(1, *INPUT_SHAPE))
    for name, value in (out.items() if isinstance(out, dict) else [("output", out)]):
        print(name, tuple(value.shape))
'''


def python_source(module: nn.Module, arch: Architecture, version: str, source: str | None = None) -> str:
    """A standalone Python file (torch only) defining ``module``'s network as plain classes.

    ``module`` is the compiled network of ``arch`` (``arch.to_torch()``), in
    any mode; ``version`` and ``source`` (the spec's path or name) go in the
    header. The file defines one class per distinct scope body, archdsl's own
    layers, ``INPUT_SHAPE`` (C, H, W) and ``build(weights=None)``; run as a
    script it prints the output shapes of one random batch. Raises
    :class:`~archdsl.errors.ArchError` for a layer it cannot write.
    """
    describer = Describer(arch.graph.graph.get("scopes", {}))
    root = describer.run(module, _class_name(arch.name) if _class_name(arch.name) != "Scope" else "Network")
    reserved = {"build", "network_outputs", "NetworkOutputs", "INPUT_SHAPE", "OrderedDict", "NamedTuple",
                "F", "nn", "torch"} | set(describer.own) | set(describer.helpers)
    classes = generated_classes(describer.instances, reserved)
    count = sum(p.numel() for p in module.parameters())
    outputs = ", ".join(arch.outputs) if arch.returns_dict else "one tensor"
    header = (f'"""{arch.name}: a standalone PyTorch network generated by archdsl {version}'
              f'{f" from {source}" if source else ""}.\n\n'
              f"Input (N, {', '.join(map(str, arch.input_shape))}) float32; outputs: {outputs}; "
              f"{count:,} parameters.\nNeeds only torch. Module names (hence state-dict keys) are "
              "archdsl's, so its weights load by name:\n\n"
              f"    model = build(\"weights.pt\").eval()\n    y = model(torch.randn(1, *INPUT_SHAPE))\n\n"
              "Run as a script (python THIS_FILE [WEIGHTS]) it prints the output shapes of one random "
              'input.\n"""\n\n')
    parts = [inspect.getsource(cls).rstrip() + "\n" for cls in describer.own.values()]
    for name, fn in describer.helpers.items():
        parts.append(_NETWORK_OUTPUTS.strip() + "\n" if name == "network_outputs" else helper_source(fn))
    parts += [render_class(cls, classes) for cls in classes.values()]
    parts.append(_BUILD.strip().format(input_shape=tuple(arch.input_shape), root=classes[root.key].name) + "\n")
    body = "\n\n".join(parts)
    imports = ["from collections import OrderedDict"] if "OrderedDict(" in body else []
    imports += ["from typing import NamedTuple"] if "(NamedTuple)" in body else []
    imports += ([""] if imports else []) + ["import torch"] + (["import torch.nn.functional as F"] if "F." in body else [])
    return header + "\n".join(imports + ["from torch import nn", "", "", body])
