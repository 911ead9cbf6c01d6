"""``archdsl summary``: a per-layer table of shapes, parameters and MACs, from the IR only."""

from __future__ import annotations

import argparse

from ._shared import add_spec_arguments, parse_overrides, print_json


def depth_arg(text: str) -> int:
    """argparse type for ``--depth``: a positive integer (bad values exit 2 with usage)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def input_arg(text: str) -> tuple:
    """argparse type for ``--input``: ``CxHxW``, ``HxW`` or one side."""
    from ..errors import SpecError
    from ..summary import parse_input
    try:
        return parse_input(text)
    except SpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


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
    from ..summary import load_with_input, summarize

    arch = load_with_input(args.spec, args.variant, args.input, **parse_overrides(args.overrides))
    result = summarize(arch, args.depth)
    if args.json:
        print_json(result.to_dict())
    else:
        print(result)
    return 0
