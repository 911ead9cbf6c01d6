"""The bundled zoo's index: every name's spec, variant, family, parameter count and input shape.

``specs/index.json`` is generated (``archdsl list --write-index``, which
calls :func:`archdsl.api.zoo_index`) by parsing and elaborating every bundled name, and records a digest of each spec
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
from dataclasses import dataclass
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


def write_index(content: dict) -> None:
    """Write ``content`` (from :func:`archdsl.api.zoo_index`) as the index file."""
    INDEX.write_text(json.dumps(content, indent=1, sort_keys=True) + "\n")
    read_index.cache_clear()


@dataclass(frozen=True)
class ZooEntry:
    name: str
    path: Path
    variant: str | None
    family: str


@functools.lru_cache(maxsize=None)
def entries() -> dict[str, ZooEntry]:
    """Every bundled name: each variant of each spec, and each family without variants.

    Read from the zoo index while it is current (no spec is parsed), else
    found by parsing every spec file (:func:`scan_entries`).
    """
    index = read_index()
    if index is None:
        return scan_entries()
    return {name: ZooEntry(name, SPECS_DIR / e["spec"], e["variant"], e["family"]) for name, e in index.items()}


def scan_entries() -> dict[str, ZooEntry]:
    """:func:`entries` found by parsing every bundled spec file."""
    from .parser import parse_file  # only here: listing from the index never loads the parser

    out: dict[str, ZooEntry] = {}
    for path in sorted(SPECS_DIR.glob("*.arch")):
        module = parse_file(path)
        if module.network is None:
            continue  # a library of blocks
        family = module.arch_name or path.stem
        if module.variants:
            for variant in module.variants:
                out[variant.name] = ZooEntry(variant.name, path, variant.name, family)
        else:
            out[family] = ZooEntry(family, path, None, family)
    return out
