"""The bundled zoo's index: every name's spec, variant, family, parameter count and input shape.

``specs/index.json`` is generated (``python -m archdsl.frontend.index``) by
parsing and elaborating every bundled name, and records a digest of each spec
file it read. :func:`read_index` returns it only while every digest still
matches the files (else None, and callers parse and elaborate as before), so
``archdsl list`` prints fifty networks without elaborating one, and resolving
a bundled name parses one spec file instead of all of them. A test checks the
file equals live elaboration.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path


def _specs_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    packaged = package / "specs"  # inside an installed wheel
    return packaged if packaged.is_dir() else package.parent / "specs"  # or a source checkout


SPECS_DIR = _specs_dir()
INDEX = SPECS_DIR / "index.json"


def digests() -> dict:
    """``{spec file name: sha256 of its bytes}`` for every bundled ``.arch`` file."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(SPECS_DIR.glob("*.arch"))}


@functools.lru_cache(maxsize=1)
def read_index() -> dict | None:
    """``{name: {"spec", "variant", "family", "params", "input_shape"}}``, or None when stale or absent."""
    try:
        data = json.loads(INDEX.read_text())
    except (OSError, ValueError):
        return None
    if data.get("digests") != digests():
        return None
    return data["models"]


def build_index() -> dict:
    """The index's content, by parsing and elaborating every bundled name (slow: seconds)."""
    from .elaborate import elaborate
    from .parser import parse_file
    from .resolve import scan_entries

    models = {}
    for name, entry in sorted(scan_entries().items()):
        arch = elaborate(parse_file(entry.path), str(entry.path), entry.variant, {}, None)
        models[name] = {"spec": entry.path.name, "variant": entry.variant, "family": entry.family,
                        "params": arch.parameter_count(), "input_shape": list(arch.input_shape)}
    return {"digests": digests(), "models": models}


if __name__ == "__main__":  # python -m archdsl.frontend.index  (rewrites specs/index.json)
    INDEX.write_text(json.dumps(build_index(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {INDEX}", file=sys.stderr)
