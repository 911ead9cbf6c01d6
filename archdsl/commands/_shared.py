"""Options and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json

from ..errors import Source, SpecError
from ..expr import Env, Evaluator
from ..parser import parse_expression

def add_spec_arguments(parser: argparse.ArgumentParser,
                       spec_help: str = "a .arch file or a bundled model name, e.g. resnet50") -> None:
    """SPEC, --variant and --set, as every command that elaborates a spec takes them."""
    parser.add_argument("spec", metavar="SPEC", help=spec_help)
    parser.add_argument("--variant", help="one of the spec's variants (a bundled name implies it)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a spec parameter; VALUE is a spec expression "
                             "(e.g. --set num_classes=10 --set 'layers=[2, 2, 2, 2]')")


def parse_overrides(items: list[str]) -> dict:
    """``["k=v", …]`` → ``{k: value}``, each value parsed and evaluated as a spec expression."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SpecError(f"--set expects KEY=VALUE, got {item!r}")
        source = Source(f"--set {key}", text)
        out[key] = Evaluator(Env())(parse_expression(text, source))
    return out


def load_from_args(args):
    from ..api import load
    return load(args.spec, args.variant, **parse_overrides(args.overrides))


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2))
