"""``archdsl export``: write a compiled network as TorchScript, a torch.export program or ONNX, verified."""

from __future__ import annotations

from ._shared import add_spec_arguments, input_arg, load_from_args, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a network (TorchScript, exported program, ONNX), checked against eager",
        description="Compile SPEC (with --weights if given), export it, load the result back and "
                    "compare its outputs with the eager module's on a random batch (ONNX: with "
                    "onnxruntime when installed).")
    add_spec_arguments(p)
    p.add_argument("--format", required=True, choices=["torchscript", "exported-program", "onnx"])
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the file to write")
    p.add_argument("--weights", metavar="W", help="a state dict file (.pth, .safetensors) to load first")
    p.add_argument("--dynamic-batch", action="store_true", help="let the batch size vary (exported-program, onnx)")
    p.add_argument("--input", type=input_arg, metavar="CxHxW", help="export at this input shape")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..api import build
    from ..export import export

    arch = load_from_args(args)
    model = build(arch, weights=args.weights)
    report = export(model, tuple(arch.input_shape), args.output, args.format, args.dynamic_batch)
    if args.json:
        print_json(vars(report))
        return 0
    diff = "not compared" if report.max_abs_diff is None else f"max abs diff {report.max_abs_diff:.2e}"
    print(f"wrote {report.path} ({report.format}); checked with {report.checked_with}: {diff}")
    return 0
