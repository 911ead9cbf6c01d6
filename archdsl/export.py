"""Export a compiled network — TorchScript, a ``torch.export`` program, ONNX, standalone Python or an
AOTInductor package — checked against eager.

Each format is written, read back, run on the same random input as the eager
module in eval mode, and compared output by output (max abs difference ≤
``tol``; 1e-5 for Python source, which runs the same torch ops). ONNX files
are run with onnxruntime. The Python format writes a ``.py`` file that needs
only torch (:mod:`archdsl.backends.python_source`) and, when asked, the
weights next to it as a plain state dict (``torch.save``), readable with
``torch.load(weights_only=True)``: no archdsl, no extra package, no code
unpickled. The ``aoti`` format compiles the network ahead of time (``torch.export`` +
AOTInductor with freezing, a C++ compiler and minutes on a small CPU) into a
``.pt2`` package that :func:`archdsl.load_package` loads in about a second.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import uuid
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ArchError
from .ir.graph import Architecture

FORMATS = ("torchscript", "exported-program", "onnx", "python", "aoti")
PYTHON_TOL = 1e-5


@dataclass(frozen=True)
class ExportReport:
    """What was written and how it compared.

    ``max_abs_diff`` is the largest difference over every output (None when
    nothing could run it); ``weights`` is the state-dict file written next to
    a Python export, if any.
    """

    path: str
    format: str
    max_abs_diff: float | None
    checked_with: str
    weights: str | None = None


def _missing(package: str, extra: str) -> ArchError:
    return ArchError(f"this export needs {package}: pip install {package} (or 'archdsl[{extra}]')")


def flat_outputs(result) -> list:
    """A network's outputs as a list of tensors: a tensor, a dict's values in order, a tuple's items."""
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, dict):
        return [t for v in result.values() for t in flat_outputs(v)]
    if isinstance(result, (tuple, list)):
        return [t for v in result for t in flat_outputs(v)]
    raise ArchError(f"cannot compare an output of type {type(result).__name__}")


def output_names(result) -> list[str]:
    """Names for the flattened outputs: a dict's keys (``output_0`` for a key such as ``0``, which ONNX
    refuses), else ``logits`` (``output_i`` for several)."""
    if isinstance(result, dict) and all(isinstance(v, torch.Tensor) for v in result.values()):
        return [str(k) if str(k).isidentifier() else f"output_{k}" for k in result]
    count = len(flat_outputs(result))
    return ["logits"] if count == 1 else [f"output_{i}" for i in range(count)]


def max_difference(got, expected) -> float:
    """The largest absolute difference over all outputs; ArchError when their number or shapes differ."""
    got, expected = flat_outputs(got), flat_outputs(expected)
    if len(got) != len(expected):
        raise ArchError(f"the export returns {len(got)} outputs, eager {len(expected)}")
    diff = 0.0
    for g, e in zip(got, expected):
        g = torch.as_tensor(g)
        if g.shape != e.shape:
            raise ArchError(f"an exported output has shape {tuple(g.shape)}, eager {tuple(e.shape)}")
        diff = max(diff, (g - e).abs().max().item() if e.numel() else 0.0)
    return diff


def export(module: torch.nn.Module, input_shape: tuple, out: str | Path, fmt: str,
           dynamic_batch: bool = False, tol: float = 1e-4, arch: Architecture | None = None,
           write_weights: bool = False, source: str | None = None, batch: int = 2) -> ExportReport:
    """Write ``module`` (eval mode, input ``(N, *input_shape)``) to ``out`` in ``fmt``; verify it.

    ``fmt="python"`` needs the network's ``arch`` (class names, header); it
    writes ``out`` (``.py`` appended when missing) and, with
    ``write_weights``, the module's state dict next to it (same stem,
    ``.pt``). ``batch`` is the example batch size, which is also the only one
    a non-dynamic exported program, ONNX model or AOTInductor package accepts.
    Raises :class:`~archdsl.ArchError` when the format's package is
    missing or the exported program's outputs differ from eager by more than
    ``tol`` (``PYTHON_TOL`` for Python source).
    """
    if fmt not in FORMATS:
        raise ArchError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    module = module.eval()
    if batch < 1 or (dynamic_batch and batch < 2):
        raise ArchError(f"batch must be ≥ 1 (≥ 2 with a dynamic batch, which torch.export would fix at 1); "
                        f"got {batch}")
    x = torch.randn(batch, *input_shape)
    with torch.no_grad():
        expected = module(x)
    out = Path(out)
    weights, tol = None, (min(tol, PYTHON_TOL) if fmt == "python" else tol)
    if fmt == "torchscript":
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(module, x, strict=False), str(out))
        got, how = torch.jit.load(str(out))(x), "torch.jit.load"
    elif fmt == "exported-program":
        dims = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
        torch.export.save(torch.export.export(module, (x,), dynamic_shapes=dims), str(out))
        got, how = torch.export.load(str(out)).module()(x), "torch.export.load"
    elif fmt == "onnx":
        got, how = _onnx(module, x, expected, out, dynamic_batch)
    elif fmt == "aoti":
        got, how = _aoti(module, x, out, dynamic_batch)
    else:
        out, weights = _python(module, arch, out, write_weights, source)
        with torch.no_grad():
            got, how = run_python_export(out, weights, module.state_dict(), x), "the written file, imported"
    diff = max_difference(got, expected)
    if diff > tol:
        raise ArchError(f"{out}: the exported program differs from eager by {diff:.2e} (> {tol:g})")
    return ExportReport(str(out), fmt, diff, how, None if weights is None else str(weights))


def _onnx(module, x, expected, out: Path, dynamic_batch: bool):
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ModuleNotFoundError:
        raise _missing("onnx", "export") from None
    try:
        import onnxruntime
    except ModuleNotFoundError:
        raise _missing("onnxruntime", "export") from None
    names = output_names(expected)
    axes = {name: {0: "batch"} for name in ["x", *names]} if dynamic_batch else None
    torch.onnx.export(module, (x,), str(out), input_names=["x"], output_names=names,
                      dynamic_axes=axes, dynamo=False)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return [torch.from_numpy(a) for a in session.run(None, {"x": x.numpy()})], "onnxruntime"


def _aoti(module, x, out: Path, dynamic_batch: bool):
    if out.suffix != ".pt2":
        raise ArchError(f"an AOTInductor package is a .pt2 file; got {str(out)!r}")
    from .backends.inference import load_package, package_module

    try:
        package_module(module, x, out, dynamic_batch)
    except Exception as err:  # noqa: BLE001 — inductor's C++ build fails in many ways; say which
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArchError(f"AOTInductor could not compile the package (it needs a C++ compiler such as "
                        f"g++): {detail}") from err
    with torch.no_grad():
        return load_package(out)(x), "torch._inductor.aoti_load_package"


def _python(module, arch: Architecture | None, out: Path, write_weights: bool, source: str | None):
    from .backends.python_source import python_source

    if arch is None:
        raise ArchError("a Python export needs the network's architecture (pass arch=)")
    if out.suffix != ".py":
        out = out.with_name(out.name + ".py")
    if not out.stem.isidentifier():
        raise ArchError(f"{out}: a Python export's file name must be a module name (letters, digits, _)")
    out.write_text(python_source(module, arch, _version(), source))
    weights = None
    if write_weights:
        weights = out.with_suffix(".pt")
        torch.save({k: v.detach().clone() for k, v in module.state_dict().items()}, weights)
    return out, weights


def _version() -> str:
    try:
        return importlib.metadata.version("archdsl")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


def run_python_export(path: Path, weights: Path | None, state: dict, x: torch.Tensor):
    """Import the written file fresh, load ``weights`` (or ``state``) by name, strict; run ``x`` in eval mode."""
    spec = importlib.util.spec_from_file_location(f"archdsl_export_{uuid.uuid4().hex}", path)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    if weights is not None:
        net = generated.build(str(weights))
    else:
        net = generated.build()
        net.load_state_dict(state, strict=True)
    return net.eval()(x)
