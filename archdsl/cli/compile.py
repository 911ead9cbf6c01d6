"""``archdsl compile``: elaborate a spec, build the PyTorch module, report its size."""

from __future__ import annotations

from ..errors import shape_text
from ._shared import add_spec_arguments, load_from_args, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("compile", help="compile a spec to a PyTorch module and report it",
                              description="Parse, elaborate and compile SPEC to a torch.nn.Module; "
                                          "print its name, input and output shapes and parameter count.")
    add_spec_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--max-params", type=int, metavar="N",
                   help="refuse, before allocating, a network with more than N parameters and "
                        "buffers (default 2^31 = 2,147,483,648, about 8.6 GB in float32)")
    p.add_argument("--emit", choices=["ast", "ir", "passes", "code"],
                   help="print a pipeline stage instead: the AST, the IR graph (after the passes), "
                        "each IR pass and what it changed, or the generated forward() of each module")
    p.add_argument("--optimize", choices=["inference"],
                   help="also run the inference passes (fold BatchNorm, drop dropout and aux heads, "
                        "fuse conv + activation, channels_last) and build the eval-only module")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.emit == "ast":
        from ..api import parse_spec
        module, _, _ = parse_spec(args.spec)
        print(_format_ast(module))
        return 0
    if args.emit == "passes":
        return _emit_passes(args)
    arch = load_from_args(args)
    if args.optimize:
        from ..ir.passes import INFERENCE_PIPELINE, run_pipeline
        arch = run_pipeline(arch, INFERENCE_PIPELINE)
    if args.emit == "ir":
        for node, data in arch.ops():
            ins = ", ".join(shape_text(s) for s in data["in_shapes"])
            attrs = ", ".join(f"{k}={v}" for k, v in data["attrs"].items())
            mark = "  [in place]" if data.get("inplace") else ""
            mark += f"  [+{data['activation']}]" if data.get("activation") else ""
            print(f"{data['name']:<40} {data['op']}({attrs})  {ins} -> {shape_text(data['shape'])}{mark}")
        return 0
    from ..api import check_allocatable
    check_allocatable(arch, args.max_params)
    if args.optimize:
        from ..backends.inference import compile_inference, reference_state
        module = compile_inference(arch, reference_state(load_from_args(args)))
    else:
        module = arch.to_torch()
    if args.emit == "code":
        from ..backends.torch_fx import generated_code
        print(generated_code(module))
        return 0
    report = arch.report()
    report["params"] = sum(t.numel() for t in module.state_dict().values()
                           if t.is_floating_point()) if args.optimize else \
        sum(p.numel() for p in module.parameters())
    if args.json:
        print_json(report)
    else:
        shape = lambda s: " x ".join(map(str, s))  # noqa: E731
        print(f"{report['name']}  ({arch.source})")
        for name, dims in arch.inputs.items():
            print(f"  input   {shape(dims)}" + (f"  ({name})" if len(arch.inputs) > 1 else ""))
        for key, dims in arch.output_shapes.items():
            print(f"  output  {shape(dims)}" + (f"  ({key!r})" if arch.returns_dict else ""))
        print(f"  params  {report['params']:,}")
        print(f"  MACs    {report['macs'] / 1e9:.3f} G (convs and linears, torchvision convention)")
        if arch.aux_outputs:
            print(f"  aux     {', '.join(sorted(arch.aux_outputs))} (training mode only)")
    return 0


def _emit_passes(args) -> int:
    from ..api import elaborate_spec, parse_spec
    from ..ir.passes import changes
    from ._shared import parse_overrides

    shown = []

    def show(p, before, after):
        if not shown:
            print(f"elaboration: {sum(1 for _ in before.ops())} ops")
        shown.append(p.name)
        lines = changes(before, after)
        print(f"pass {p.name}: {p.doc} ({len(lines)} nodes changed)")
        for line in lines:
            print(f"    {line}")

    module, path, implied = parse_spec(args.spec)
    arch = elaborate_spec(module, path, args.variant or implied, parse_overrides(args.overrides), on_pass=show)
    if args.optimize:
        from ..ir.passes import INFERENCE_PIPELINE, run_pipeline
        print("inference pipeline:")
        run_pipeline(arch, INFERENCE_PIPELINE, on_pass=show)
    return 0


def _format_ast(node, indent: int = 0) -> str:
    import dataclasses

    pad = "  " * indent
    if dataclasses.is_dataclass(node):
        fields = [f for f in dataclasses.fields(node) if f.name != "span"]
        simple = all(not dataclasses.is_dataclass(getattr(node, f.name))
                     and not isinstance(getattr(node, f.name), tuple) for f in fields)
        if simple:
            inner = ", ".join(f"{f.name}={getattr(node, f.name)!r}" for f in fields)
            return f"{pad}{type(node).__name__}({inner})"
        lines = [f"{pad}{type(node).__name__}"]
        for f in fields:
            value = getattr(node, f.name)
            if value is None or value == ():
                continue
            lines.append(f"{pad}  {f.name}:")
            lines.append(_format_ast(value, indent + 2))
        return "\n".join(lines)
    if isinstance(node, tuple):
        return "\n".join(_format_ast(v, indent) for v in node)
    return f"{pad}{node!r}"
