"""Options and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json

from ..errors import Source, SpecError


def add_spec_arguments(parser: argparse.ArgumentParser,
                       spec_help: str = "a .arch file or a bundled model name, e.g. resnet50") -> None:
    """SPEC, --variant and --set, as every command that elaborates a spec takes them."""
    parser.add_argument("spec", metavar="SPEC", help=spec_help)
    parser.add_argument("--variant", help="one of the spec's variants (a bundled name implies it)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec parameter; VALUE is a spec expression "
                             "(e.g. --set num_classes=10 --set 'layers=[2, 2, 2, 2]')")
    parser.add_argument("--spec-path", action="append", default=[], metavar="DIR",
                        help="a directory imports may read from, besides the spec's own directory "
                             "tree, ARCHDSL_SPEC_PATH's and the bundled library (repeatable)")


def parse_overrides(items: list[str]) -> dict:
    """``["k=v", …]`` → ``{k: value}``, each value parsed and evaluated as a spec expression."""
    if not items:
        return {}
    # imported here: the parser costs a grammar build, which --help and list never need
    from ..frontend.expr import Env, Evaluator
    from ..frontend.parser import parse_expression

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SpecError(f"--set expects KEY=VALUE, got {item!r}")
        source = Source(f"--set {key}", text)
        out[key] = Evaluator(Env())(parse_expression(text, source))
    return out


def load_from_args(args, variant: str | None = None):
    """Elaborate ``args.spec`` with ``--variant`` (or ``variant``), ``--set`` and (where the command
    has it) ``--input``."""
    from ..api import load
    return load(args.spec, variant or args.variant, input_shape=getattr(args, "input", None),
                **parse_overrides(args.overrides))


def parse_input(text: str) -> tuple:
    """``"3x224x224"`` → ``(3, 224, 224)``; ``"320"`` → ``(320, 320)``, keeping the spec's channels.

    Two numbers are refused: ``3x224`` could be channels and a side, or a
    height and a width, and is never guessed.
    """
    parts = text.lower().replace("×", "x").replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) == 2 and all(d > 0 for d in dims):
        raise SpecError(f"--input {text!r} is ambiguous: write CxHxW (e.g. 3x{dims[0]}x{dims[1]} or "
                        f"{dims[0]}x{dims[1]}x{dims[1]}) or one side in pixels")
    if len(dims) not in (1, 3) or any(d <= 0 for d in dims):
        raise SpecError(f"--input expects CxHxW or a side in pixels (e.g. 3x224x224 or 224), all positive; "
                        f"got {text!r}")
    return (dims[0], dims[0]) if len(dims) == 1 else dims


def positive_int(what: str = "a positive integer"):
    """An argparse type: a positive integer, else exit 2 with usage saying ``expected {what}``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


# argparse type for ``--depth``
depth_arg = positive_int()


def input_arg(text: str) -> tuple:
    """argparse type for ``--input``: ``CxHxW`` or one side."""
    try:
        return parse_input(text)
    except SpecError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2))
