"""Bundled specs: resolving ``resnet50`` to ``specs/resnet.arch`` (variant ``resnet50``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from .errors import SpecNotFoundError
from .expr import suggest


def _specs_dir() -> Path:
    packaged = Path(__file__).parent / "specs"  # inside an installed wheel
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "specs"  # a source checkout


SPECS_DIR = _specs_dir()


@dataclass(frozen=True)
class ZooEntry:
    name: str
    path: Path
    variant: str | None
    family: str


@functools.lru_cache(maxsize=None)
def entries() -> dict[str, ZooEntry]:
    """Every bundled name: each variant of each spec, and each family without variants."""
    from .parser import parse_file

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


def resolve(spec: str) -> tuple[Path, str | None]:
    """A path or a bundled name → (spec file, variant or None)."""
    path = Path(spec)
    if path.suffix == ".arch" or path.exists():
        if path.is_file():
            return path, None
        raise SpecNotFoundError(f"no such spec file: {spec}")
    table = entries()
    if spec in table:
        return table[spec].path, table[spec].variant
    by_stem = SPECS_DIR / f"{spec}.arch"
    if by_stem.is_file():
        return by_stem, None
    hint = suggest(spec, table)
    raise SpecNotFoundError(f"{spec!r} is neither a spec file nor a bundled model"
                            + (f"; {hint}" if hint else "; `archdsl list` shows the bundled names"))
