"""``archdsl list``: the bundled model names, with family and parameter count."""

from __future__ import annotations

from ._shared import print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("list", help="list the bundled models",
                              description="List the bundled model names matching PATTERN with their family, "
                                          "spec file and parameter count.")
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN",
                   help="shell-style name pattern, e.g. 'resnet*' (default: all)")
    p.add_argument("--pretrained", action="store_true",
                   help="only names with published weights (torchvision's weights metadata)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--names", action="store_true", help="print only the names, one per line")
    p.add_argument("--write-index", action="store_true",
                   help="regenerate specs/index.json by elaborating every bundled name (after "
                        "adding or changing a bundled spec)")
    p.set_defaults(func=run)


def run(args) -> int:
    from fnmatch import fnmatchcase

    from ..frontend.index import entries, read_index
    from ..published import weight_entry

    if args.write_index:
        from ..api import zoo_index
        from ..frontend.index import INDEX, write_index
        write_index(zoo_index())
        entries.cache_clear()
        print(f"wrote {INDEX}")
        return 0
    table = {name: entry for name, entry in entries().items() if fnmatchcase(name, args.pattern)
             and (not args.pretrained or weight_entry(name, missing_ok=True) is not None)}
    if args.names:
        print("\n".join(sorted(table)))
        return 0
    index = read_index() or {}  # current index: nothing to elaborate
    rows = []
    for name in sorted(table, key=lambda n: (table[n].family, n)):
        entry = table[name]
        facts = index.get(name) or _elaborated(entry)
        rows.append({"name": name, "family": entry.family, "spec": entry.path.name,
                     "params": facts["params"], "input_shape": list(facts["input_shape"])})
    if args.json:
        print_json(rows)
        return 0
    print(f"{'name':<24} {'family':<16} {'spec':<22} {'params':>13}  input")
    for r in rows:
        print(f"{r['name']:<24} {r['family']:<16} {r['spec']:<22} {r['params']:>13,}  "
              f"{'x'.join(map(str, r['input_shape']))}")
    return 0


def _elaborated(entry) -> dict:
    """Parameter count and input shape by elaboration (the index is stale or lacks the name)."""
    from ..api import load

    arch = load(str(entry.path), entry.variant)
    return {"params": arch.parameter_count(), "input_shape": arch.input_shape}
