"""Export a compiled network to TorchScript, a ``torch.export`` program or ONNX, checked against eager.

Each format is written, read back, run on the same random input as the eager
module in eval mode, and compared (max abs difference ≤ ``tol``); ONNX files
are run with onnxruntime when it is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ArchError

FORMATS = ("torchscript", "exported-program", "onnx")


@dataclass(frozen=True)
class ExportReport:
    """What was written and how it compared: ``max_abs_diff`` is None when nothing could run it."""

    path: str
    format: str
    max_abs_diff: float | None
    checked_with: str


def _missing(package: str, extra: str) -> ArchError:
    return ArchError(f"this export needs {package}: pip install {package} (or 'archdsl[{extra}]')")


def export(module: torch.nn.Module, input_shape: tuple, out: str | Path, fmt: str,
           dynamic_batch: bool = False, tol: float = 1e-4) -> ExportReport:
    """Write ``module`` (eval mode, input ``(N, *input_shape)``) to ``out`` in ``fmt``; verify it.

    Raises :class:`~archdsl.ArchError` when the format's package is missing or
    the exported program's outputs differ from eager by more than ``tol``.
    """
    if fmt not in FORMATS:
        raise ArchError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    module = module.eval()
    x = torch.randn(2, *input_shape)
    with torch.no_grad():
        expected = module(x)
    out = Path(out)
    if fmt == "torchscript":
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(module, x), str(out))
        got, how = torch.jit.load(str(out))(x), "torch.jit.load"
    elif fmt == "exported-program":
        dims = {"x": {0: torch.export.Dim("batch", min=1)}} if dynamic_batch else None
        torch.export.save(torch.export.export(module, (x,), dynamic_shapes=dims), str(out))
        got, how = torch.export.load(str(out)).module()(x), "torch.export.load"
    else:
        got, how = _onnx(module, x, out, dynamic_batch)
    diff = None if got is None else (torch.as_tensor(got) - expected).abs().max().item()
    if diff is not None and diff > tol:
        raise ArchError(f"{out}: the exported program differs from eager by {diff:.2e} (> {tol:g})")
    return ExportReport(str(out), fmt, diff, how)


def _onnx(module, x, out: Path, dynamic_batch: bool):
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ModuleNotFoundError:
        raise _missing("onnx", "export") from None
    axes = {"x": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(module, (x,), str(out), input_names=["x"], output_names=["logits"],
                      dynamic_axes=axes, dynamo=False)
    try:
        import onnxruntime
    except ModuleNotFoundError:
        return None, "not run (onnxruntime is not installed)"
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"x": x.numpy()})[0]), "onnxruntime"
