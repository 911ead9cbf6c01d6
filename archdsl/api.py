"""The Python API: each pipeline stage, and the one-call ``load`` / ``build``."""

from __future__ import annotations

from pathlib import Path

from . import ast
from .elaborate import elaborate
from .ir import Architecture
from .parser import parse, parse_file
from .zoo import entries, resolve

_ALLOWED = (int, float, bool, str, list, tuple, type(None))


def _check_value(key, value):
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_value(key, v)
    elif not isinstance(value, _ALLOWED):
        raise TypeError(f"parameter {key!r}: {type(value).__name__} is not a spec value")


def parse_spec(spec: str) -> tuple[ast.Module, str, str | None]:
    """Parse a spec path or bundled name; returns (AST, path, variant implied by the name)."""
    path, variant = resolve(spec)
    return parse_file(path), str(path), variant


def load(spec: str, variant: str | None = None, **params) -> Architecture:
    """Parse and elaborate ``spec`` (a ``.arch`` path or a bundled name such as ``resnet50``).

    ``variant`` picks one of the spec's variants; keyword arguments override its
    parameters (``load("resnet50", num_classes=10)``). Returns the
    :class:`~archdsl.ir.Architecture`, whose ``.graph`` is the networkx IR.
    """
    for key, value in params.items():
        _check_value(key, value)
    module, path, implied = parse_spec(spec)
    return elaborate(module, path, variant or implied, params)


def loads(text: str, variant: str | None = None, path: str = "<string>", **params) -> Architecture:
    """Like :func:`load`, for spec text held in a string."""
    return elaborate(parse(text, path), path, variant, params)


def build(spec, variant: str | None = None, weights=None, **params):
    """Compile ``spec`` to a ``torch.nn.Module`` (a ``torch.fx.GraphModule``).

    ``spec`` is a path, a bundled name or an :class:`Architecture`. ``weights``
    is a state dict or a ``.safetensors`` / ``.pth`` file in torchvision's
    layout; it is loaded into the module before it is returned.
    """
    arch = spec if isinstance(spec, Architecture) else load(spec, variant, **params)
    module = arch.to_torch()
    if weights is not None:
        from .weights import load_weights
        load_weights(module, weights)
    return module


def list_models() -> list[str]:
    """The bundled model names, sorted."""
    return sorted(entries())


def spec_path(name: str) -> Path:
    """The file a bundled name (or path) resolves to."""
    return resolve(name)[0]
