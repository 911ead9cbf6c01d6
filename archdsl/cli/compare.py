"""``archdsl compare``: a table (and optional bubble chart) of several networks."""

from __future__ import annotations

import sys

from ..errors import ArchError
from ._shared import print_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare networks: parameters, MACs, input size, published top-1",
        description="Tabulate parameters, MACs (at each network's own input size) and, for "
                    "bundled names torchvision has weights for, the ImageNet-1K top-1 accuracy "
                    "from torchvision's weights metadata. No weights are allocated.")
    p.add_argument("specs", nargs="+", metavar="SPEC", help=".arch files or bundled model names")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw a bubble chart: MACs (log x), top-1 (y), area ∝ parameters")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..compare import PLOT_NEEDS, compare, format_table, plot

    if args.plot:
        try:  # before the table is computed: a chart that cannot be drawn fails first
            import matplotlib  # noqa: F401
        except ImportError:
            raise ArchError(PLOT_NEEDS) from None
    rows = compare(args.specs)
    if args.json:
        print_json(rows)
    else:
        print(format_table(rows))
    if args.plot:
        missing = plot(rows, args.plot)
        if missing:
            print(f"note: {', '.join(missing)} left out of the chart (no published top-1)", file=sys.stderr)
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0
