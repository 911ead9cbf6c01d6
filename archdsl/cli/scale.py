"""``archdsl scale``: set a spec's scaling parameters and report (or write) the scaled network."""

from __future__ import annotations

from pathlib import Path

from ._shared import add_spec_arguments, parse_overrides, print_json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "scale", help="scale a network: compound phi, width, depth, resolution, divisor",
        description="Scale SPEC by setting the scaling parameters it declares and re-elaborating. "
                    "On efficientnet, an integer --phi 0..7 gives the published B0..B7; any other "
                    "phi scales the published network below it by the compound formula's steps "
                    "(depth x alpha, width x beta, resolution x gamma per unit of phi); explicit "
                    "--alpha/--beta/--gamma apply the formula from B0 (depth = alpha^phi, width = "
                    "beta^phi, resolution = 224 gamma^phi), rounded by the spec's rules. "
                    "MACs count conv and linear multiply-accumulates (torchvision's convention).",
        epilog="examples: archdsl scale efficientnet --phi 3;  archdsl scale efficientnet --phi 2.5 "
               "-o b2_5.arch;  archdsl scale efficientnet --table 0..7;  archdsl scale resnet50 "
               "--width 0.5;  archdsl scale mobilenet_v2 --width 0.75 --divisor 16")
    add_spec_arguments(p, "a .arch file, a family (efficientnet) or a bundled model name")
    group = p.add_argument_group("scaling")
    group.add_argument("--phi", metavar="N", help="compound coefficient (0, 1, 2.5, 8 …)")
    group.add_argument("--alpha", metavar="A", help="depth base of the compound formula (1.2)")
    group.add_argument("--beta", metavar="B", help="width base of the compound formula (1.1)")
    group.add_argument("--gamma", metavar="G", help="resolution base of the compound formula (1.15)")
    group.add_argument("--width", metavar="W", help="width multiplier")
    group.add_argument("--depth", metavar="D", help="depth multiplier")
    group.add_argument("--resolution", metavar="R", help="input height and width")
    group.add_argument("--divisor", metavar="K", help="round channel counts to multiples of K (8)")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="OUT.arch",
                     help="write the scaled network as a spec with every number resolved")
    out.add_argument("--json", action="store_true", help="print JSON")
    out.add_argument("--table", metavar="PHI_RANGE",
                     help="one row per phi, e.g. 0..7, 0..3:0.5 or 0,2.5,8; torchvision's "
                          "published parameters and GFLOPS beside them where it has the model")
    p.set_defaults(func=run)


def _knobs(args) -> dict:
    from ..scale import KNOBS, parse_number
    return {k: parse_number(getattr(args, k), f"--{k}") for k in KNOBS
            if getattr(args, k) is not None}


def run(args) -> int:
    from ..scale import ScaleError, parse_phi_range, report, spec_text, table

    knobs = _knobs(args)
    params = parse_overrides(args.overrides)
    if args.table is not None:
        if args.output:
            raise ScaleError("--table and -o cannot be combined", hint="write one phi at a time with -o")
        extra = sorted(set(knobs) - {"alpha", "beta", "gamma", "divisor"})
        if extra:
            raise ScaleError(f"--table sets phi itself; drop {', '.join('--' + k for k in extra)}")
        rows = table(args.spec, parse_phi_range(args.table), variant=args.variant, **knobs, **params)
        if args.json:
            print_json([_public(r) for r in rows])
        else:
            _print_table(rows)
        return 0
    result = report(args.spec, variant=args.variant, **knobs, **params)
    if args.output:
        note = ", ".join(f"{k} = {_fmt(v)}" for k, v in result["coefficients"].items())
        Path(args.output).write_text(spec_text(result["arch"], note))
    if args.json:
        print_json(_public(result))
    else:
        _print_report(result)
        if args.output:
            print(f"  {'wrote':<11} {args.output}")
    return 0


def _public(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "arch"}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_report(r: dict) -> None:
    c = r["coefficients"]
    print(f"{r['name']}  ({r['source']})")
    if "phi" in c:
        coeffs = ", ".join(f"{k} = {_fmt(c[k])}" for k in ("alpha", "beta", "gamma") if k in c)
        print(f"  phi         {_fmt(c['phi'])}  ({r['rule']}{'; ' + coeffs if coeffs else ''})")
    for key, base in (("width", "beta"), ("depth", "alpha")):
        if key in c:
            how = " (set)" if key in r["set"] else (
                f" (= {base}^phi)" if r["rule"] == "compound formula" else "")
            print(f"  {key:<11} {_fmt(c[key])}{how}")
    side = r["input_shape"][1:]
    line = f"  resolution  {' x '.join(map(str, side))}"
    if "resolution" in r["set"]:
        line += " (set)"
    elif r["rule"] == "compound formula" and "resolution_formula" in r:
        line += f" (base x gamma^phi = {r['resolution_formula']:.1f}, rounded by the spec)"
    print(line)
    if "divisor" in c:
        print(f"  divisor     {c['divisor']}")
    print(f"  params      {r['params']:,}")
    print(f"  MACs        {r['macs'] / 1e9:.3f} G (conv and linear multiply-accumulates, "
          "torchvision's GFLOPS convention)")
    if r["macs_ratio"] is not None:
        against = "phi = 0" if "phi" in c else "the unscaled spec"
        growth = f"  growth      x{r['macs_ratio']:.2f} MACs vs {against}"
        if "two_to_phi" in r:
            growth += f"  (2^phi = {r['two_to_phi']:.2f}"
            if "compound_ratio" in r:
                growth += f"; (alpha beta^2 gamma^2)^phi = {r['compound_ratio']:.2f}"
            growth += ")"
        print(growth)


def _print_table(rows: list) -> None:
    head = (f"{'phi':>5} {'width':>7} {'depth':>7} {'res':>5} {'params':>13} {'GMACs':>8} "
            f"{'xphi0':>6} {'2^phi':>6}  {'torchvision':<16} {'tv params':>13} {'tv GFLOPS':>9}")
    print(head)
    notes = []
    for r in rows:
        c = r["coefficients"]
        tv = r.get("torchvision") or {}
        line = (f"{_fmt(c['phi']):>5} {c.get('width', 1.0):>7.4g} {c.get('depth', 1.0):>7.4g} "
                f"{r['input_shape'][1]:>5} {r['params']:>13,} {r['macs'] / 1e9:>8.3f} "
                f"{r['macs_ratio']:>6.2f} {r['two_to_phi']:>6.2f}  ")
        if tv:
            line += (f"{tv['name']:<16} {tv['params'] or 0:>13,} {tv['gflops'] or 0:>9.3f}")
            if tv.get("crop") and tv["crop"] != r["input_shape"][1] and tv.get("macs_at_crop"):
                notes.append(f"{tv['name']}: torchvision's GFLOPS are at its weights' crop "
                             f"{tv['crop']}; archdsl counts {tv['macs_at_crop'] / 1e9:.3f} G there")
        else:
            line += f"{'-':<16} {'-':>13} {'-':>9}"
        print(line.rstrip())
    print("GMACs: conv and linear multiply-accumulates (torchvision's GFLOPS convention); "
          "xphi0: MACs relative to phi = 0.")
    for note in notes:
        print(note)
