"""The Python API: one function per pipeline stage, and the one-call ``load`` / ``build``.

Stages: :func:`parse_spec` (text → AST), :func:`elaborate_spec` (AST → IR,
then the IR pass pipeline), ``Architecture.to_torch()`` (IR → module). Every
way into the compiler — ``load``, ``loads``, ``scale``, ``summary --input``,
training — goes through :func:`elaborate_spec`.
"""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path

from .frontend import ast
from .errors import ArchError
from .frontend import limits
from .frontend.elaborate import elaborate
from .frontend.parser import parse, parse_file
from .frontend.resolve import entries, resolve
from .ir.graph import Architecture
from .ir.passes import run_pipeline

_ALLOWED = (int, float, bool, str, list, tuple, type(None))


def _check_value(key, value):
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_value(key, v)
    elif not isinstance(value, _ALLOWED):
        raise TypeError(f"parameter {key!r}: {type(value).__name__} is not a spec value")
    elif isinstance(value, int) and value.bit_length() > limits.current().max_int_bits:
        raise SizeError(f"parameter {key!r}: an integer of {value.bit_length():,} bits is too large "
                        f"(limit {limits.current().max_int_bits} bits)")


class SizeError(ArchError):
    """A network (or value) too large to build within the limits of :mod:`archdsl.frontend.limits`."""


def check_allocatable(arch: Architecture, max_params: int | None = None) -> None:
    """Refuse, before any allocation, a network holding more than ``max_params`` parameters and
    buffers (default: the ``max_params`` limit, 2^31); raises :class:`SizeError` with the count and
    the bytes it would take in float32."""
    limit = limits.current().max_params if max_params is None else max_params
    count = arch.parameter_count() + arch.buffer_count()
    if count > limit:
        raise SizeError(f"{arch.name} has {count:,} parameters and buffers "
                        f"({limits.byte_text(4 * count)} in float32), more than the limit of "
                        f"{limit:,} ({limits.byte_text(4 * limit)}); nothing was allocated. "
                        "Raise the limit with --max-params or build(max_params=...)")


def parse_spec(spec: str) -> tuple[ast.Module, str, str | None]:
    """Parse a spec path or bundled name; returns (AST, path, variant implied by the name).

    Raises :class:`~archdsl.SpecNotFoundError` or :class:`~archdsl.SpecSyntaxError`.
    """
    path, variant = resolve(spec)
    return parse_file(path), str(path), variant


def elaborate_spec(module: ast.Module, path: str, variant: str | None = None, params: dict | None = None,
                   input_shape: tuple | None = None, on_pass=None) -> Architecture:
    """Elaborate a parsed spec to the IR and run the pass pipeline.

    ``input_shape`` (``(C, H, W)``, or ``(H, W)`` keeping the spec's channels)
    replaces the spec's declared input; a spec that declares a ``resolution``
    parameter gets it set too for square inputs, so everything it derives from
    the resolution stays consistent. ``on_pass(pass_, before, after)`` sees each
    IR pass (``--emit passes``). Raises :class:`~archdsl.SpecError`.
    """
    params = dict(params or {})
    for key, value in params.items():
        _check_value(key, value)
    if input_shape is not None:
        input_shape = tuple(input_shape)
        height, width = input_shape[-2:]
        if height == width and "resolution" not in params and any(p.name == "resolution" for p in module.params):
            params["resolution"] = height
    with _no_gc():
        arch = elaborate(module, path, variant, params, input_shape)
    return run_pipeline(arch, on_pass=on_pass)


@contextlib.contextmanager
def _no_gc():
    """Elaboration and code generation allocate many objects and free none: the cyclic GC would only rescan
    them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load(spec: str, variant: str | None = None, *, input_shape: tuple | None = None, **params) -> Architecture:
    """Parse and elaborate ``spec`` (a ``.arch`` path or a bundled name such as ``resnet50``).

    ``variant`` picks one of the spec's variants; keyword arguments override its
    parameters (``load("resnet50", num_classes=10)``); ``input_shape`` builds it
    at another input (``load("resnet50", input_shape=(3, 320, 320))``). Returns
    the :class:`~archdsl.ir.graph.Architecture`, whose ``.graph`` is the networkx IR.
    """
    module, path, implied = parse_spec(spec)
    return elaborate_spec(module, path, variant or implied, params, input_shape)


def loads(text: str, variant: str | None = None, path: str = "<string>", *,
          input_shape: tuple | None = None, **params) -> Architecture:
    """Like :func:`load`, for spec text held in a string (``path`` names it in messages)."""
    return elaborate_spec(parse(text, path), path, variant, params, input_shape)


def build(spec, variant: str | None = None, weights=None, *, strict: bool = False,
          max_params: int | None = None, optimize: str | None = None, compile: bool = False,
          **params):
    """Compile ``spec`` to a ``torch.nn.Module`` (a ``torch.fx.GraphModule``).

    ``spec`` is a path, a bundled name or an :class:`Architecture`. A network
    with more than ``max_params`` parameters and buffers (default 2^31) is
    refused with :class:`SizeError` before anything is allocated. ``weights``
    is a state dict, a ``.safetensors`` file (an archdsl checkpoint's checksum
    is verified) or a ``.pth`` file in torchvision's layout; it is loaded into
    the module before it is returned, by name (``strict=True``: only by name;
    otherwise a checkpoint whose names differ is matched by order and shape,
    with a warning saying how many tensors were). Raises
    :class:`~archdsl.WeightsError` when the weights do not fit.

    ``optimize="inference"`` returns an eval-only module built from the IR
    after the inference passes (BatchNorm folded into convs, dropout and
    auxiliary heads removed, conv + bias + activation fused, channels_last,
    weights pre-packed for the CPU), its tensors derived from ``weights`` (or
    from a random initialisation). ``compile=True`` wraps the result in
    ``torch.compile`` (with ``optimize="inference"``: inductor with freezing,
    on the already-optimised graph).
    """
    if optimize not in (None, "inference"):
        raise ValueError(f"optimize must be None or 'inference', got {optimize!r}")
    arch = spec if isinstance(spec, Architecture) else load(spec, variant, **params)
    check_allocatable(arch, max_params)
    if optimize == "inference":
        from .backends.inference import build_inference, reference_state
        return build_inference(arch, reference_state(arch, weights), compile=compile)
    with _no_gc():  # thousands of modules and fx nodes, none freed: a collection would only rescan them
        module = arch.to_torch()
    if weights is not None:
        from .backends.weights import load_weights
        load_weights(module, weights, strict=strict)
    if compile:
        import torch
        return torch.compile(module)
    return module


def compile_package(spec, path, weights=None, *, batch: int = 1, variant: str | None = None, **params):
    """Compile ``spec`` ahead of time for inference: an AOTInductor package (``.pt2``) at ``path``.

    The network goes through the inference passes (as ``optimize="inference"``),
    ``torch.export`` and AOTInductor with freezing; the package takes float32
    inputs of shape ``(batch, C, H, W)`` at the spec's input size and holds its
    weights (from ``weights``, as :func:`build` reads them, else a random
    initialisation). Compiling needs a C++ compiler and takes as long as
    ``torch.compile`` (minutes on a small CPU); :func:`load_package` then loads
    it in about a second. Returns the package path.
    """
    from .backends.inference import export_package, reference_state
    if Path(path).suffix != ".pt2":
        raise ArchError(f"an AOTInductor package is a .pt2 file; got {str(path)!r}")
    arch = spec if isinstance(spec, Architecture) else load(spec, variant, **params)
    check_allocatable(arch, None)
    return export_package(arch, reference_state(arch, weights), Path(path), batch=batch)


def load_package(path):
    """A callable running a package :func:`compile_package` wrote: ``model(x)`` → the network's output.

    Loading compiles nothing (about a second). The package is a zip of compiled
    kernels and weights: load only packages you made or trust, as you would a
    shared library.
    """
    from .backends.inference import load_package as load
    return load(path)


def list_models() -> list[str]:
    """The bundled model names, sorted."""
    return sorted(entries())


def zoo_index() -> dict:
    """The zoo index's content (``specs/index.json``), by parsing and elaborating every bundled name.

    ``{"digests": {spec file: sha256}, "models": {name: {"spec", "variant",
    "family", "params", "input_shape"}}}``; slow (seconds). ``archdsl list
    --write-index`` writes it.
    """
    from .frontend.index import digests
    from .frontend.index import scan_entries

    models = {}
    for name, entry in sorted(scan_entries().items()):
        arch = elaborate_spec(parse_file(entry.path), str(entry.path), entry.variant)
        models[name] = {"spec": entry.path.name, "variant": entry.variant, "family": entry.family,
                        "params": arch.parameter_count(), "input_shape": list(arch.input_shape)}
    return {"digests": digests(), "models": models}


def spec_path(name: str) -> Path:
    """The file a bundled name (or path) resolves to."""
    return resolve(name)[0]


def load_with_input(spec: str, variant: str | None = None, input_shape: tuple | None = None,
                    **params) -> Architecture:
    """``load(spec, variant, input_shape=input_shape, **params)`` (the older spelling)."""
    return load(spec, variant, input_shape=input_shape, **params)
