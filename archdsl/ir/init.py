"""Initialisation as data: what a spec says about how a fresh network's tensors start.

An :class:`Init` is one initialiser with its arguments (``kaiming_normal(mode =
"fan_out")``, ``trunc_normal(std = 0.02)``, ``zeros``…). The elaborator records
on each IR node the initialisers that apply to its tensors, by role
(``{"weight": Init, "bias": Init}``; the roles an op has are its
:attr:`~archdsl.ir.registry.OpDef.inits`); the torch back end
(:mod:`archdsl.backends.init`) applies them after building the modules.
A tensor without one keeps torch's default for its module. Nothing here
imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .registry import Arg, ArgKind, ArgProblem, value_text

K = ArgKind

_NONLINEARITIES = ("linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")

# name → (doc, arguments); each mirrors the torch.nn.init function of that name.
INITIALIZERS: dict[str, tuple[str, tuple]] = {
    "default": ("torch's default for the module (nothing is re-initialised)", ()),
    "zeros": ("all zeros", ()),
    "ones": ("all ones", ()),
    "constant": ("every element equal to value", (Arg("value", K.NUMBER, "the value"),)),
    "uniform": ("uniform on [a, b)", (Arg("a", K.NUMBER, "lower bound", 0.0),
                                      Arg("b", K.NUMBER, "upper bound", 1.0))),
    "normal": ("normal distribution", (Arg("mean", K.NUMBER, "mean", 0.0),
                                       Arg("std", K.NUMBER, "standard deviation", 1.0))),
    "trunc_normal": ("normal redrawn outside [a, b] (absolute bounds, as torch.nn.init.trunc_normal_)",
                     (Arg("mean", K.NUMBER, "mean", 0.0), Arg("std", K.NUMBER, "standard deviation", 1.0),
                      Arg("a", K.NUMBER, "lower bound", -2.0), Arg("b", K.NUMBER, "upper bound", 2.0))),
    "kaiming_normal": ("He et al.: normal, std gain / sqrt(fan)", (
        Arg("a", K.NUMBER, "negative slope of the rectifier after it (leaky_relu)", 0.0),
        Arg("mode", K.CHOICE, "which fan keeps its variance", "fan_in", ("fan_in", "fan_out")),
        Arg("nonlinearity", K.CHOICE, "the nonlinearity whose gain is used", "leaky_relu", _NONLINEARITIES))),
    "kaiming_uniform": ("He et al.: uniform, bound gain * sqrt(3 / fan)", (
        Arg("a", K.NUMBER, "negative slope of the rectifier after it (leaky_relu)", 0.0),
        Arg("mode", K.CHOICE, "which fan keeps its variance", "fan_in", ("fan_in", "fan_out")),
        Arg("nonlinearity", K.CHOICE, "the nonlinearity whose gain is used", "leaky_relu", _NONLINEARITIES))),
    "xavier_uniform": ("Glorot & Bengio: uniform, bound gain * sqrt(6 / (fan_in + fan_out))",
                       (Arg("gain", K.NUMBER, "scale", 1.0),)),
    "xavier_normal": ("Glorot & Bengio: normal, std gain * sqrt(2 / (fan_in + fan_out))",
                      (Arg("gain", K.NUMBER, "scale", 1.0),)),
}

# Initialisers that take no arguments are written as plain names (``zeros``), the rest as calls.
CONSTANT_NAMES = ("default", "zeros", "ones")


@dataclass(frozen=True)
class Init:
    """One initialiser: its name and its arguments in declaration order (all given)."""

    kind: str
    args: tuple = ()  # ((name, value), ...)
    kind_text = "an initialiser"

    @property
    def kwargs(self) -> dict:
        return dict(self.args)

    def text(self) -> str:
        """As spec text: ``kaiming_normal(mode = "fan_out")``, arguments at their default left out."""
        if not INITIALIZERS[self.kind][1]:
            return self.kind
        defaults = {a.name: a.default for a in INITIALIZERS[self.kind][1]}
        shown = [f"{k} = {value_text(v)}" for k, v in self.args if v != defaults[k]]
        return f"{self.kind}({', '.join(shown)})" if shown else self.kind

    __str__ = text


def make_init(kind: str, args: list, kwargs: dict) -> Init:
    """Validate a call of initialiser ``kind``; raises :class:`ArgProblem` naming the argument."""
    spec = INITIALIZERS[kind][1]
    if len(args) > len(spec):
        raise ArgProblem(f"{kind} takes at most {len(spec)} arguments, got {len(args)}", len(spec))
    bound = dict(zip((a.name for a in spec), args))
    for key, value in kwargs.items():
        if key not in {a.name for a in spec}:
            raise ArgProblem(f"{kind} has no argument {key!r}", key)
        if key in bound:
            raise ArgProblem(f"{kind} got two values for {key!r}", key)
        bound[key] = value
    values = []
    for arg in spec:
        if arg.name in bound:
            values.append((arg.name, arg.check(bound[arg.name])))
        elif arg.required:
            raise ArgProblem(f"{kind} is missing the argument {arg.name!r}")
        else:
            values.append((arg.name, arg.default))
    if kind in ("uniform", "trunc_normal") and values[-2][1] >= values[-1][1]:
        raise ArgProblem(f"{kind} needs a < b, got a={values[-2][1]:g}, b={values[-1][1]:g}", "b")
    return Init(kind, tuple(values))


def signature(kind: str) -> str:
    """``trunc_normal(mean=0.0, std=1.0, a=-2.0, b=2.0)``, for messages and docs."""
    spec = INITIALIZERS[kind][1]
    if not spec:
        return kind
    return f"{kind}(" + ", ".join(a.name if a.required else f"{a.name}={value_text(a.default)}"
                                  for a in spec) + ")"
