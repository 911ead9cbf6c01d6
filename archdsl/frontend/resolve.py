"""Resolution: bundled names and spec files, imports, parameters and variants, the input.

``resolve("resnet50")`` finds ``specs/resnet.arch`` (variant ``resnet50``);
:func:`load_library` follows a spec's imports; :func:`resolve_params` applies a
variant and overrides to the declared parameters.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from . import ast
from ..errors import SpecError, SpecNotFoundError, is_int, suggest
from ..ir.ops import REGISTRY
from .expr import Env, Evaluator, UserFunction, bind_target
from .parser import parse_file

# Structural words a block may not be named after.
GROUP_KINDS = ("branch", "seq")


from .index import SPECS_DIR, entries

# The README's example specs: shipped in the wheel as archdsl/examples, so
# `archdsl train examples/small_resnet.arch` works from an installed package too.
EXAMPLES_DIR = SPECS_DIR.parent / "examples"


def resolve(spec: str) -> tuple[Path, str | None]:
    """A path or a bundled name → (spec file, variant or None)."""
    path = Path(spec)
    if path.suffix == ".arch" or path.exists():
        if path.is_file():
            return path, None
        shipped = EXAMPLES_DIR / path.name
        if path.parent == Path("examples") and shipped.is_file():
            return shipped, None
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


@dataclass
class Library:
    """Everything a spec (and its imports) defines at top level."""
    blocks: dict = field(default_factory=dict)
    functions: list = field(default_factory=list)
    lets: list = field(default_factory=list)


# ---- imports: only .arch files inside the import roots --------------------------------

_spec_path: list = []


def set_spec_path(directories) -> None:
    """Directories (besides ``ARCHDSL_SPEC_PATH``'s) that imports may read from (``--spec-path``)."""
    _spec_path[:] = [Path(d) for d in directories]


def import_roots(path: str) -> list:
    """The directories imports of the spec at ``path`` may read: its own directory tree, the
    ``--spec-path`` and ``ARCHDSL_SPEC_PATH`` directories, and the bundled library."""
    own = [Path(path).parent] if Path(path).is_file() else []  # text given as a string has none
    listed = [Path(d) for d in os.environ.get("ARCHDSL_SPEC_PATH", "").split(os.pathsep) if d]
    roots = []
    for root in own + _spec_path + listed + [SPECS_DIR]:
        resolved = root.resolve()
        if resolved.is_dir() and resolved not in roots:
            roots.append(resolved)
    return roots


def load_library(module: ast.Module, path: str) -> Library:
    """The blocks, functions and lets of ``module`` and everything it imports.

    Imports resolve only inside :func:`import_roots`; a file imported along
    several paths (a diamond) is loaded once. Raises :class:`SpecError` at the
    ``import`` line for a path that is absolute, climbs with ``..``, is not a
    ``.arch`` file, leaves the roots (through a symlink too) or is missing, for
    a cycle or an imported network spec; and at a block defined twice or named
    like a built-in op.
    """
    library = Library()
    roots = import_roots(path)
    _load_into(library, module, path, (str(Path(path).resolve()),), roots, set())
    return library


def _load_into(library: Library, module: ast.Module, path: str, stack: tuple, roots: list,
               loaded: set) -> None:
    for imp in module.imports:
        target = _resolve_import(imp, path, roots)
        if str(target) in stack:
            raise SpecError(f"import cycle: {' → '.join(Path(p).name for p in stack + (str(target),))}",
                            imp.span)
        if str(target) in loaded:
            continue
        loaded.add(str(target))
        shown = shown_path(target, path)
        imported = parse_file(shown)
        if imported.network is not None or imported.params:
            raise SpecError(f"{imp.path} is a network spec; only libraries of blocks, functions "
                            "and lets can be imported", imp.span)
        _load_into(library, imported, shown, stack + (str(target),), roots, loaded)
    for block in module.blocks:
        if block.name in library.blocks:
            other = library.blocks[block.name].span
            raise SpecError(f"block {block.name!r} is defined twice (first at {other.location})",
                            block.span)
        if block.name in REGISTRY or block.name in GROUP_KINDS:
            raise SpecError(f"block {block.name!r} has the name of a built-in op", block.span,
                            hint="choose another name")
        library.blocks[block.name] = block
    library.functions.extend(module.functions)
    library.lets.extend(module.lets)

def shown_path(target: Path, importer: str) -> str:
    """How an imported file is named in messages. When the importing spec was named relatively
    (as the user typed it), a file below its directory is named from that name
    (``../net.arch`` imports ``../lib/x.arch``), else a file below the working directory
    relative to it; otherwise the absolute path."""
    if not Path(importer).is_absolute():
        bases = ((Path(importer).parent.resolve(), Path(importer).parent), (Path.cwd().resolve(), None))
        for base, shown in bases:
            if base in target.parents:
                rel = target.relative_to(base)
                return str(rel if shown is None else shown / rel)
    return str(target)


def _roots_text(roots: list) -> str:
    return ", ".join(shown_path(r, ".") if r != Path.cwd().resolve() else "." for r in roots)


def _check_import_text(imp: ast.Import) -> None:
    text = imp.path
    refuse = None
    if not text or "\x00" in text:
        refuse = "it is not a file name"
    elif PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() \
            or PureWindowsPath(text).drive or text.startswith("~"):
        refuse = "an import path must be relative"
    elif ".." in PurePosixPath(text.replace("\\", "/")).parts:
        refuse = "an import path may not climb out of its directory with '..'"
    elif not text.endswith(".arch"):
        refuse = "only .arch files can be imported"
    if refuse:
        raise SpecError(f"cannot import {text!r}: {refuse}", imp.span,
                        expected="a relative path to a .arch file, e.g. \"blocks/common.arch\"")


def _within(path: Path, roots: list) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _resolve_import(imp: ast.Import, path: str, roots: list) -> Path:
    """The file an ``import`` names: beside the importing spec, else in each root in turn."""
    _check_import_text(imp)
    here = Path(path).parent.resolve()
    bases = ([here] if _within(here, roots) else []) + [r for r in roots if r != here]
    for base in bases:
        candidate = base / imp.path
        if not os.path.lexists(candidate):
            continue
        target = candidate.resolve()
        if not _within(target, roots):
            raise SpecError(f"cannot import {imp.path!r}: it leads outside the import roots "
                            "(through a symbolic link)", imp.span,
                            expected="a file inside " + _roots_text(roots))
        try:
            regular = stat.S_ISREG(target.stat().st_mode)
        except OSError:
            regular = False
        if not regular:
            raise SpecError(f"cannot import {imp.path!r}: it is not a regular file", imp.span)
        return target
    raise SpecError(f"cannot import {imp.path!r}: no such file", imp.span,
                    expected="a file inside " + _roots_text(roots),
                    hint="add its directory with --spec-path or ARCHDSL_SPEC_PATH")


def check_declarations(module: ast.Module) -> None:
    """A :class:`SpecError` at a parameter or variant declared twice, or a variant setting an
    undeclared parameter (every variant is checked, selected or not)."""
    for kind, items in (("parameter", module.params), ("variant", module.variants)):
        first: dict = {}
        for item in items:
            if item.name in first:
                raise SpecError(f"{kind} {item.name!r} is declared twice (first at "
                                f"{first[item.name].location})", item.span)
            first[item.name] = item.span
    declared = [p.name for p in module.params]
    for chosen in module.variants:
        seen = set()
        for kw in chosen.assignments:
            if kw.name not in declared:
                raise SpecError(f"variant {chosen.name} sets {kw.name!r}, which is not a parameter",
                                kw.span, expected="one of: " + (", ".join(declared) or "(none declared)"),
                                hint=suggest(kw.name, declared))
            if kw.name in seen:
                raise SpecError(f"variant {chosen.name} sets {kw.name!r} twice", kw.span)
            seen.add(kw.name)

def resolve_params(module: ast.Module, library: Library, path: str, variant: str | None,
                   overrides: dict) -> tuple[Env, dict]:
    """The global environment (functions, parameters, lets) and the resolved parameter values.

    A variant's assignments apply first, then ``overrides``; each must name a
    declared parameter. Raises :class:`SpecError`.
    """
    check_declarations(module)
    declared = {p.name: p for p in module.params}
    assigned: dict = {}
    if variant is not None:
        chosen = next((v for v in module.variants if v.name == variant), None)
        if chosen is None:
            names = [v.name for v in module.variants]
            raise SpecError(f"{path} has no variant {variant!r}", None,
                            expected=", ".join(names) if names else "no variants are declared",
                            hint=suggest(variant, names))
        for kw in chosen.assignments:
            if kw.name not in declared:
                raise SpecError(f"variant {chosen.name} sets {kw.name!r}, which is not a parameter",
                                kw.span, expected="one of: " + ", ".join(declared),
                                hint=suggest(kw.name, declared))
            assigned[kw.name] = ("expr", kw.value)
    for key, value in overrides.items():
        if key not in declared:
            raise SpecError(f"{Path(path).name} has no parameter {key!r}", None,
                            expected="one of: " + (", ".join(declared) or "(none declared)"),
                            hint=suggest(key, declared))
        assigned[key] = ("value", value)
    env = Env()
    for fn in library.functions:
        if fn.name in env.values:
            raise SpecError(f"function {fn.name!r} is defined twice", fn.span)
        env.values[fn.name] = UserFunction(fn, env)
    values = {}
    for param in module.params:
        kind, value = assigned.get(param.name, ("expr", param.value))
        if kind == "expr":
            value = Evaluator(env)(value)
        env.values[param.name] = values[param.name] = value
    for let in library.lets:
        bind_target(let.target, Evaluator(env)(let.value), env)
    return env, values

def declared_input(module: ast.Module, env: Env, decl: ast.InputDecl | None = None) -> tuple:
    """The spec's ``input C x H x W`` (or ``decl``, one of several) evaluated in ``env``.

    Raises :class:`SpecError`.
    """
    decl = decl or module.input
    if decl is None:
        raise SpecError("the spec declares no input", module.span,
                        expected="a line like: input 3 x 224 x 224")
    dims = []
    for dim in decl.dims:
        value = Evaluator(env)(dim)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not is_int(value) or value <= 0:
            raise SpecError(f"an input dimension must be a positive integer, got {value!r}", dim.span)
        dims.append(value)
    return tuple(dims)
