"""``archdsl check``: static checks only (parse, elaborate, shapes); no module is built."""

from __future__ import annotations

from ._shared import add_spec_arguments, load_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("check", help="check a spec without building a module",
                              description="Parse and elaborate SPEC, checking every shape; "
                                          "allocates no weights.")
    add_spec_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    arch = load_from_args(args)
    ops = sum(1 for _ in arch.ops())
    if arch.returns_dict:
        outs = "outputs " + ", ".join(f"{k!r} {'x'.join(map(str, v))}" for k, v in arch.output_shapes.items())
    else:
        outs = f"output {'x'.join(map(str, arch.output_shape))}"
    print(f"{arch.source}: ok ({arch.name}: {ops} ops, {arch.parameter_count():,} parameters, {outs})")
    return 0
