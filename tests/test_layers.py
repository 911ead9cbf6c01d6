"""The package layering: every import in archdsl/ (function-local ones too) goes downward.

errors < ir < frontend < backends < {api, published} < {scale, compare, training, models} < archdsl < cli.
The one sanctioned upward edge: ``Architecture.to_torch/summary/render`` in
``archdsl.ir.graph`` import their back end lazily.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "archdsl"

# (layer rank, group); a module may import its own group or a lower rank.
LAYERS = [
    ("archdsl.errors", 0), ("archdsl.ir", 1), ("archdsl.frontend", 2), ("archdsl.backends", 3),
    ("archdsl.api", 4), ("archdsl.published", 4), ("archdsl.scale", 5), ("archdsl.compare", 5), ("archdsl.training", 5),
    ("archdsl.models", 5), ("archdsl.export", 5),
    ("archdsl.cli", 7), ("archdsl.__main__", 8), ("archdsl", 6),
]
SANCTIONED = {("archdsl.ir.graph", "archdsl.backends.torch_fx"),
              ("archdsl.ir.graph", "archdsl.backends.table"),
              ("archdsl.ir.graph", "archdsl.backends.dot")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> tuple[str, int]:
    for prefix, rank in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return prefix, rank
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS")


def is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (PACKAGE.parent / rel / "__init__.py").is_file()


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every archdsl module ``path`` imports (module-level and function-local), with its line."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("archdsl")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("archdsl"):
                continue
            for alias in node.names:  # `from . import x` may name a submodule
                sub = f"{target}.{alias.name}"
                out.append((sub if is_module(sub) else target, node.lineno))
    return out


def import_graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        graph.add_node(source)
        for target, line in imports_of(path):
            if target != source:
                graph.add_edge(source, target, line=line)
    return graph


def test_every_import_goes_down_the_layers():
    bad = []
    for source, target, data in import_graph().edges(data=True):
        (src_group, src_rank), (dst_group, dst_rank) = layer_of(source), layer_of(target)
        if src_group == dst_group or (source, target) in SANCTIONED:
            continue
        if dst_rank >= src_rank:
            bad.append(f"{source}:{data['line']} imports {target} ({src_group} may not import {dst_group})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph = import_graph()
    graph.remove_edges_from(SANCTIONED)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_ir_and_backends_never_touch_the_front_end():
    for source, target in import_graph().edges():
        if source.startswith(("archdsl.ir", "archdsl.backends")):
            assert not target.startswith("archdsl.frontend"), f"{source} imports {target}"


@pytest.mark.parametrize("snippet, expected", [
    ("from ..frontend import parser", "archdsl.frontend.parser"),
    ("from ..errors import SpecError", "archdsl.errors"),
    ("def f():\n    from ..backends.dot import render", "archdsl.backends.dot"),
])
def test_the_checker_sees_relative_and_local_imports(tmp_path, monkeypatch, snippet, expected):
    # A file placed in archdsl/ir/ as the walker would see it (the checker itself must not be moot).
    fake = PACKAGE / "ir" / "_layer_probe.py"
    fake.write_text(snippet + "\n")
    try:
        assert expected in [t for t, _ in imports_of(fake)]
    finally:
        fake.unlink()
