"""``archdsl check``: static checks only (parse, elaborate, shapes); no module is built."""

from __future__ import annotations

from ..errors import shape_text
from ._shared import add_spec_arguments, load_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("check", help="check a spec without building a module",
                              description="Parse and elaborate SPEC, checking every shape; "
                                          "allocates no weights. A spec file with variants is "
                                          "checked with its defaults and with every variant; "
                                          "--variant (or a bundled name) checks one.")
    add_spec_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..api import parse_spec

    module, _, implied = parse_spec(args.spec)
    chosen = [args.variant or implied]
    if chosen == [None]:
        chosen += [v.name for v in module.variants]
    for variant in chosen:
        arch = load_from_args(args, variant)
        ops = sum(1 for _ in arch.ops())
        if arch.returns_dict:
            outs = "outputs " + ", ".join(f"{k!r} {shape_text(v)}" for k, v in arch.output_shapes.items())
        else:
            outs = f"output {shape_text(arch.output_shape)}"
        print(f"{arch.source}: ok ({arch.name}: {ops} ops, {arch.parameter_count():,} parameters, {outs})")
    return 0
