"""Named IR → IR passes, run in one explicit pipeline with ``verify()`` after each.

Elaboration builds the IR; anything that rewrites or annotates it afterwards
is a :class:`Pass` here. :data:`PIPELINE` is what :func:`archdsl.load` runs;
``archdsl compile --emit passes`` prints each pass and what it changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..graph import Architecture, verify
from .inplace import mark_inplace


@dataclass(frozen=True)
class Pass:
    """A named pure function ``Architecture → Architecture``."""

    name: str
    doc: str
    run: Callable[[Architecture], Architecture]


PIPELINE: tuple[Pass, ...] = (
    Pass("inplace", "mark activations and residual adds that may overwrite their input", mark_inplace),
)


def run_pipeline(arch: Architecture, passes: tuple[Pass, ...] = PIPELINE,
                 on_pass: Callable[[Pass, Architecture, Architecture], None] | None = None) -> Architecture:
    """Run ``passes`` in order, verifying the IR after each.

    ``on_pass(pass_, before, after)`` is called after each pass (``--emit passes``
    uses it to show what changed). Raises :class:`~archdsl.ir.graph.IRError` if a
    pass leaves an invalid graph.
    """
    for p in passes:
        after = p.run(arch)
        verify(after.graph, after=f"pass {p.name!r}")
        if on_pass is not None:
            on_pass(p, arch, after)
        arch = after
    return arch


def changes(before: Architecture, after: Architecture) -> list[str]:
    """Human-readable lines naming each node whose annotations a pass changed."""
    lines = []
    for node, data in after.graph.nodes(data=True):
        old = before.graph.nodes[node] if node in before.graph else {}
        diff = {k: v for k, v in data.items() if old.get(k, None) != v}
        if diff:
            lines.append(f"{data['name']} ({data['op']}): "
                         + ", ".join(f"{k}={v!r}" for k, v in sorted(diff.items())))
    return lines
