"""Scaling: set a spec's scaling parameters, re-elaborate, and report what changed.

``archdsl scale`` never scales anything itself: a family spec declares its
scaling parameters (``phi``, ``alpha``/``beta``/``gamma``, ``width``,
``depth``, ``resolution``, ``divisor``) and writes the rounding rules in its
own arithmetic, so ``scale("efficientnet", phi=3)`` is EfficientNet-B3 because
``efficientnet.arch`` says so. This module validates the values, checks the
spec declares what is asked of it, elaborates, and measures: parameters, MACs
and their growth against ``phi = 0`` (EfficientNet's compound scaling aims at
MACs ≈ 2^phi).
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

from .api import elaborate_spec, parse_spec
from .errors import SpecError
from .published import published
from .ir.graph import Architecture

KNOBS = ("phi", "alpha", "beta", "gamma", "width", "depth", "resolution", "divisor")
COEFFICIENTS = ("alpha", "beta", "gamma")
# what each knob multiplies, for "width = beta ** phi" in reports


class ScaleError(SpecError):
    """A scaling request that cannot be met (bad value, undeclared parameter)."""


# ---- validation ---------------------------------------------------------------------

def parse_number(text: str, option: str):
    """Command-line text → int or float, or a :class:`ScaleError` naming the option."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise ScaleError(f"{option} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ScaleError(f"{option} must be a finite number, got {text!r}")
    return value


def _check(name: str, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScaleError(f"{name} must be a number, got {value!r}")
    if name == "phi":
        if value < 0:
            raise ScaleError(f"phi must be 0 or more, got {value!r}",
                             expected="a non-negative compound coefficient, e.g. 0…7 for B0…B7")
        return value
    if name in ("resolution", "divisor"):
        if value != int(value) or value < 1:
            raise ScaleError(f"{name} must be a positive integer, got {value!r}")
        return int(value)
    if value <= 0:
        raise ScaleError(f"{name} must be positive, got {value!r}")
    return value


def _knobs(phi, alpha, beta, gamma, width, depth, resolution, divisor) -> dict:
    given = dict(phi=phi, alpha=alpha, beta=beta, gamma=gamma, width=width, depth=depth,
                 resolution=resolution, divisor=divisor)
    return {k: _check(k, v) for k, v in given.items() if v is not None}


class _Plan:
    """A parsed spec plus the parameter overrides one scaling request turns into."""

    def __init__(self, spec: str, knobs: dict, params: dict, variant: str | None = None,
                 parsed: tuple | None = None):
        self.spec = spec
        self.parsed = parsed or parse_spec(spec)
        self.module, self.path, implied = self.parsed
        self.variant = variant or implied
        self.declared = [p.name for p in self.module.params]
        self.knobs = knobs
        self.params = dict(params)
        missing = [k for k in knobs if k not in self.declared]
        if missing:
            raise ScaleError(
                f"{Path(self.path).name} cannot be scaled by {' or '.join(missing)}: it declares "
                f"no parameter {' or '.join(repr(k) for k in missing)}",
                expected="its parameters: " + (", ".join(self.declared) or "(none)"))

    def overrides(self, **changes) -> dict:
        values = {**self.params, **self.knobs}
        # explicit coefficients ask for the formula even where a published entry exists
        if any(k in values for k in COEFFICIENTS) and "compound" in self.declared \
                and "compound" not in self.params:
            values["compound"] = True
        values.update(changes)
        return values

    def load(self, **changes) -> Architecture:
        return elaborate_spec(self.module, self.path, self.variant, self.overrides(**changes))

    def baseline(self) -> Architecture:
        """phi = 0 with the same coefficients, or the unscaled spec when it has no phi."""
        if "phi" in self.declared:
            keep = {k: v for k, v in self.knobs.items() if k in COEFFICIENTS + ("divisor",)}
            return self.derive({**keep, "phi": 0}).load()
        return elaborate_spec(self.module, self.path, self.variant, dict(self.params))

    def derive(self, knobs: dict, variant: str | None = None) -> "_Plan":
        """The same spec and extra parameters with other scaling knobs."""
        return _Plan(self.spec, knobs, self.params, variant or self.variant, self.parsed)

    def variants(self) -> dict[str, dict]:
        """Each variant's resolved parameters (with the same extra params), to name a match."""
        out = {}
        for v in self.module.variants:
            try:
                out[v.name] = elaborate_spec(self.module, self.path, v.name, dict(self.params)).params
            except SpecError:
                continue
        return out


# ---- the API ----------------------------------------------------------------------

def scale(spec: str, phi=None, alpha=None, beta=None, gamma=None, width=None, depth=None,
          resolution=None, divisor=None, variant: str | None = None, **params) -> Architecture:
    """Elaborate ``spec`` with its scaling parameters set; returns what :func:`archdsl.load` does.

    ``phi`` is EfficientNet's compound coefficient: on ``efficientnet`` an
    integer 0…7 gives the published B0…B7; any other phi scales the published
    network below it by the compound formula's steps (depth × alpha, width ×
    beta, resolution × gamma per unit of phi); explicit ``alpha``/``beta``/
    ``gamma`` apply the formula from B0. The spec's rules do the rounding.
    ``width``/``depth``/``resolution``/``divisor`` set those parameters on any
    spec that declares them; other keywords override parameters as in
    :func:`archdsl.load`. Raises :class:`ScaleError` for a bad value or a
    parameter the spec does not declare.
    """
    plan = _Plan(spec, _knobs(phi, alpha, beta, gamma, width, depth, resolution, divisor), params,
                 variant)
    return plan.load()


def report(spec: str, phi=None, alpha=None, beta=None, gamma=None, width=None, depth=None,
           resolution=None, divisor=None, variant: str | None = None, **params) -> dict:
    """Scale ``spec`` (as :func:`scale`) and measure it; the dict ``archdsl scale --json`` prints.

    Keys: ``name``, ``family``, ``source``, ``input_shape``, ``output_shape``,
    ``params``, ``macs``, ``coefficients`` (every scaling parameter the spec
    declares, resolved), ``rule`` (published entry, compound formula or the
    spec's rules), ``set`` (the knobs given explicitly), ``baseline_macs`` and
    ``macs_ratio`` (against phi = 0, or the unscaled spec), ``matches`` (a
    bundled variant with identical parameters, if any); with a phi also
    ``two_to_phi``, ``compound_ratio`` ((alpha beta^2 gamma^2)^phi) and
    ``resolution_formula`` (base resolution x gamma^phi, before rounding).
    ``arch`` holds the :class:`Architecture` (not JSON).
    """
    knobs = _knobs(phi, alpha, beta, gamma, width, depth, resolution, divisor)
    plan = _Plan(spec, knobs, params, variant)
    arch = plan.load()
    return _measure(plan, arch, plan.baseline(), plan.variants())


def _rule(arch: Architecture, knobs: dict, matches: str | None) -> str:
    """How the spec reached its width/depth/resolution, in words."""
    values = arch.params
    if matches:
        return f"same parameters as the bundled {matches}"
    if "phi" not in values or not all(k in values for k in COEFFICIENTS) or \
            any(k in knobs for k in ("width", "depth", "resolution")):
        return "the spec's rules"
    base = values.get("scaled_from", 0)
    if base == 0:
        return "compound formula"
    return f"compound formula from the published phi = {base} by phi - {base} = {values['phi'] - base:g}"


def _measure(plan: _Plan, arch: Architecture, baseline: Architecture, variants: dict) -> dict:
    coefficients = {k: arch.params[k] for k in KNOBS if k in arch.params}
    macs, base = arch.macs(), baseline.macs()
    matches = next((name for name, p in variants.items() if p == arch.params), None)
    out = {
        "name": matches or arch.name, "family": arch.family, "source": arch.source,
        "input_shape": list(arch.input_shape), "output_shape": list(arch.output_shape),
        "params": arch.parameter_count(), "macs": macs, "coefficients": coefficients,
        "rule": _rule(arch, plan.knobs, matches), "set": sorted(plan.knobs), "baseline_macs": base,
        "macs_ratio": macs / base if base else None, "matches": matches,
    }
    if "phi" in arch.params:
        out["two_to_phi"] = 2.0 ** arch.params["phi"]
        if all(k in arch.params for k in COEFFICIENTS):
            a, b, g = (arch.params[k] for k in COEFFICIENTS)
            out["compound_ratio"] = (a * b * b * g * g) ** arch.params["phi"]
            if "resolution" in arch.params:  # what gamma^phi asks for, before the spec rounds it
                base = arch.params.get("scaled_from", 0)
                start = plan.derive({**plan.knobs, "phi": base}).load().params["resolution"] \
                    if base else baseline.params["resolution"]
                out["resolution_formula"] = start * g ** (arch.params["phi"] - base)
    out["arch"] = arch
    return out


# ---- tables ---------------------------------------------------------------------------

def parse_phi_range(text: str) -> list:
    """``"0..7"`` → 0…7; ``"0..2:0.5"`` → 0, 0.5, … 2; ``"0,2.5,8"`` → those; ranges inclusive."""
    values: list = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(.+?)\.\.(.+?)(?::(.+))?", part)
        if not match:
            values.append(_check("phi", parse_number(part, "--table")))
            continue
        lo, hi = (_check("phi", parse_number(t, "--table")) for t in match.group(1, 2))
        step = _check("step", parse_number(match.group(3), "--table")) if match.group(3) else 1
        if hi < lo:
            raise ScaleError(f"--table range {part!r} runs backwards", expected="LOW..HIGH[:STEP]")
        count = int(math.floor((hi - lo) / step + 1e-9)) + 1
        if count > 1000:
            raise ScaleError(f"--table range {part!r} has {count} rows (at most 1000)")
        values += [_tidy(lo + i * step) for i in range(count)]
    if not values:
        raise ScaleError("--table needs at least one phi", expected="e.g. 0..7 or 0,2.5,8")
    return values


def _tidy(value):
    value = round(value, 10)
    return int(value) if float(value).is_integer() else value


def table(spec: str, phis, alpha=None, beta=None, gamma=None, divisor=None,
          variant: str | None = None, **params) -> list[dict]:
    """One :func:`report` per phi, each with torchvision's published figures where it has them.

    A row that equals a bundled variant (``efficientnet_b3``) carries
    ``torchvision``: ``{"params", "gflops", "crop", "macs_at_crop"}`` read
    from ``torchvision.models.get_model_weights(name).DEFAULT.meta`` as recorded in
    :mod:`archdsl.published`'s data file (None when it has no such model). ``gflops`` follow the MAC
    convention, at the weights' crop size; ``macs_at_crop`` is archdsl's count there.
    """
    knobs = _knobs(None, alpha, beta, gamma, None, None, None, divisor)
    first = _Plan(spec, knobs, params, variant)
    if "phi" not in first.declared:
        raise ScaleError(f"{Path(first.path).name} declares no parameter 'phi', so it has no "
                         "compound-scaling table",
                         expected="its parameters: " + ", ".join(first.declared),
                         hint="use --width/--depth/--resolution for this family")
    variants = first.variants()
    baseline = first.derive({**knobs, "phi": 0}).load()
    rows = []
    for phi in phis:
        plan = first.derive({**knobs, "phi": _check("phi", phi)})
        arch = plan.load()
        row = _measure(plan, arch, baseline, variants)
        row["torchvision"] = _torchvision_meta(row["matches"], plan) if row["matches"] else None
        rows.append(row)
    return rows


def _torchvision_meta(name: str, plan: _Plan) -> dict | None:
    facts = published(name)
    if facts is None:
        return None
    crop = facts["crop"]
    out = {"name": name, "params": facts["params"], "gflops": facts["gflops"], "crop": crop,
           "macs_at_crop": None}
    if crop is not None and "resolution" in plan.declared:
        out["macs_at_crop"] = plan.derive({}, variant=name).load(resolution=crop).macs()
    return out


# ---- writing the scaled spec ------------------------------------------------------------

def spec_text(arch: Architecture, note: str = "") -> str:
    """The scaled network as ``.arch`` text, every number resolved; checked to round-trip.

    The header keeps the source spec's leading comment (its citation) and says
    how the text was produced. Raises AssertionError if compiling the text would
    not give the same IR (a printer bug, never a user error).
    """
    from .api import loads
    from .backends.arch_text import signature, to_arch

    header = _leading_comment(arch.source)
    header += [""] + textwrap.wrap(f"Generated by `archdsl scale` from {Path(arch.source).name}"
                                   + (f" ({note})" if note else "") + "; every number is resolved.",
                                   width=90)
    text = to_arch(arch, header)
    again = loads(text, path=f"<scaled {arch.family}>")
    if signature(again) != signature(arch) or again.aux_outputs != arch.aux_outputs:
        raise AssertionError("the printed spec does not reproduce the network")
    return text


def _leading_comment(path: str) -> list[str]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        if not line.startswith("#"):
            break
        out.append(line[1:].removeprefix(" "))
    return out
