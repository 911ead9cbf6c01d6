"""``archdsl ops``: every primitive op with its arguments and doc, from the registry."""

from __future__ import annotations

from ._shared import print_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ops", help="list the primitive ops a spec can use, with their arguments",
        description="List every primitive op of the .arch language (from the op registry) with "
                    "its category, arguments, defaults and what each accepts.")
    p.add_argument("name", nargs="?", metavar="OP", help="show only this op")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--markdown", action="store_true",
                   help="print the op table of docs/ops.md (the docs are generated with this)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ArchError, suggest
    from ..ir.ops import REGISTRY

    ops = list(REGISTRY.values())
    if args.name is not None:
        if args.name not in REGISTRY:
            hint = suggest(args.name, REGISTRY)
            raise ArchError(f"no op named {args.name!r}" + (f"; {hint}" if hint else "")
                            + " (`archdsl ops` lists them all)")
        ops = [REGISTRY[args.name]]
    if args.json:
        print_json([op.describe() for op in ops])
    elif args.markdown:
        print(markdown(ops), end="")
    else:
        print(text(ops))
    return 0


def _default(arg) -> str:
    from ..ir.registry import value_text
    return "" if arg.required else f" = {value_text(arg.default)}"


def text(ops) -> str:
    """Plain-text listing: one paragraph per op."""
    lines = []
    for op in ops:
        lines.append(f"{op.signature()}    [{op.category.value}]")
        lines.append(f"    {op.doc}")
        for arg in op.args:
            lines.append(f"    {arg.name}{_default(arg)}: {arg.doc} ({arg.describe()})")
        lines.append("")
    return "\n".join(lines).rstrip()


def markdown(ops) -> str:
    """The Markdown op table of ``docs/ops.md``, grouped by category."""
    out = ["# Primitive ops", "",
           "Generated from the op registry by `archdsl ops --markdown`; a test keeps it in sync.",
           "Input channels and features are always inferred; no op takes them.", ""]
    categories = []
    for op in ops:
        if op.category not in categories:
            categories.append(op.category)
    for category in categories:
        out += [f"## {category.value}", "", "| op | arguments | what it does |", "|---|---|---|"]
        for op in (o for o in ops if o.category is category):
            args = "<br>".join(f"`{a.name}{_default(a)}`: {a.doc} ({a.describe()})".replace("|", "\\|")
                               for a in op.args) or "—"
            out.append(f"| `{op.name}` | {args} | {op.doc} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
