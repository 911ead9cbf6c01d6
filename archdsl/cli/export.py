"""``archdsl export``: write a compiled network as TorchScript, a torch.export program, ONNX, a
standalone Python file or an AOTInductor package, verified against eager."""

from __future__ import annotations

import argparse

from ..errors import ArchError
from ._shared import add_spec_arguments, input_arg, load_from_args, print_json

_FORMATS_HELP = """formats (each is read back and compared with eager on a random batch):
  torchscript        OUT: a TorchScript archive (torch.jit.trace), loaded with torch.jit.load
  exported-program   OUT: a torch.export program (.pt2), loaded with torch.export.load
  onnx               OUT: an ONNX model, run with onnxruntime (needs 'archdsl[export]': onnx, onnxruntime)
  python             OUT.py: a standalone PyTorch file needing only torch (plain nn.Module classes,
                     state-dict keys as archdsl's, build(weights=None)); with --weights, also
                     OUT.pt next to it: the plain state dict (torch.save; torch.load(weights_only=True))
  aoti               OUT.pt2: an AOTInductor package, compiled ahead of time (a C++ compiler, minutes
                     on a small CPU), loaded in about a second with archdsl.load_package or
                     torch._inductor.aoti_load_package; usually with --optimize inference

--optimize inference exports the network after the inference passes (BatchNorm folded into convs,
dropout and auxiliary heads removed, activations fused): eval-only, fewer ops, same outputs within 1e-4."""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a network (TorchScript, exported program, ONNX, standalone Python, AOTInductor), "
                       "checked against eager",
        description="Compile SPEC (with --weights if given), export it, load the result back and "
                    "compare its outputs, every one, with the eager module's on a random batch.",
        epilog=_FORMATS_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_spec_arguments(p)
    p.add_argument("--format", required=True, choices=["torchscript", "exported-program", "onnx", "python", "aoti"],
                   help="what to write (see below)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the file to write")
    p.add_argument("--weights", metavar="W", help="a state dict file (.pth, .safetensors) to load first")
    p.add_argument("--dynamic-batch", action="store_true", help="let the batch size vary (exported-program, onnx)")
    p.add_argument("--input", type=input_arg, metavar="CxHxW", help="export at this input shape")
    p.add_argument("--batch", type=int, default=2, metavar="N",
                   help="the example batch (the only batch size accepted without --dynamic-batch; default 2)")
    p.add_argument("--optimize", choices=["inference"],
                   help="export the eval-only network after the inference passes (not for --format python)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..api import build
    from ..export import export

    arch = load_from_args(args)
    if args.optimize and args.format == "python":
        raise ArchError("--optimize inference is for the compiled formats; a Python export keeps the "
                        "network as written (its weights load by name)")
    if args.optimize:
        from ..backends.inference import compile_inference, optimise, reference_state
        model = compile_inference(optimise(arch), reference_state(arch, args.weights), onednn=False)
    else:
        model = build(arch, weights=args.weights)
    report = export(model, tuple(arch.input_shape), args.output, args.format, args.dynamic_batch,
                    arch=arch, write_weights=args.weights is not None, source=args.spec, batch=args.batch)
    if args.json:
        print_json(vars(report))
        return 0
    diff = "not compared" if report.max_abs_diff is None else f"max abs diff {report.max_abs_diff:.2e}"
    weights = f" and its weights {report.weights}" if report.weights else ""
    print(f"wrote {report.path}{weights} ({report.format}); checked with {report.checked_with}: {diff}")
    return 0
