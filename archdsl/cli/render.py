"""``archdsl render``: draw a spec as a Graphviz diagram (SVG or PNG), from the IR only."""

from __future__ import annotations

from ._shared import add_spec_arguments, depth_arg, input_arg, load_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "render", help="draw the network as an SVG or PNG diagram (Graphviz)",
        description="Draw SPEC with Graphviz: ops with their key arguments, tensor shapes on the "
                    "edges, blocks as labelled clusters. Needs Graphviz's `dot` "
                    "(apt-get install graphviz, or pip install graphviz-pure).")
    add_spec_arguments(p)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="output file; the suffix picks the format: .svg, .png, .pdf or .dot (source)")
    p.add_argument("--depth", type=depth_arg, metavar="N",
                   help="draw scopes N levels deep as single boxes (1: layer1, 2: layer1.0, …)")
    p.add_argument("--collapse-repeats", action="store_true",
                   help="draw a run of identical consecutive blocks once, marked × N")
    p.add_argument("--direction", choices=["TB", "LR"], default="TB",
                   help="TB: top to bottom (default); LR: left to right")
    p.add_argument("--input", type=input_arg, metavar="CxHxW", help="elaborate at this input shape (as in summary)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..backends.dot import render

    arch = load_from_args(args)
    path = render(arch, args.output, depth=args.depth, collapse_repeats=args.collapse_repeats,
                  direction=args.direction)
    print(f"wrote {path}")
    return 0
