"""``archdsl summary``: a per-layer table of shapes, parameters and MACs, from the IR only."""

from __future__ import annotations

from ._shared import add_spec_arguments, depth_arg, input_arg, load_from_args, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "summary", help="per-layer shapes, parameters, MACs and memory (no weights allocated)",
        description="Print one row per op (or per block with --depth) with its output shape, "
                    "parameters and MACs, then the totals. Computed from the IR: no weights are "
                    "allocated. MACs count convolutions and linear layers (torchvision's _ops "
                    "convention); FLOPs are often quoted as 2 x MACs.")
    add_spec_arguments(p)
    p.add_argument("--depth", type=depth_arg, metavar="N",
                   help="one row per scope N levels deep (1: layer1, 2: layer1.0, …) instead of per op")
    p.add_argument("--input", type=input_arg, metavar="CxHxW",
                   help="elaborate at this input shape (e.g. 3x320x320, or 320 for a square input "
                        "with the spec's channels); sets the spec's `resolution` parameter if it has one")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..backends.table import summarize

    arch = load_from_args(args)
    result = summarize(arch, args.depth)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result)
    return 0
