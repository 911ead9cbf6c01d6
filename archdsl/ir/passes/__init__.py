"""Named IR → IR passes, run in one explicit pipeline with ``verify()`` after each.

Elaboration builds the IR; anything that rewrites or annotates it afterwards
is a :class:`Pass` here. :data:`PIPELINE` is what :func:`archdsl.load` runs;
:data:`INFERENCE_PIPELINE` (eval-only rewrites: folding, fusion, layout) is
what ``archdsl.build(..., optimize="inference")`` runs on top of it.
``archdsl compile --emit passes`` prints each pass and what it changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..graph import Architecture, verify
from .fold import fold_batchnorm, fold_input_affine
from .inference import choose_layout, eval_mode, fuse_activation, mark_prepack, simplify
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

INFERENCE_PIPELINE: tuple[Pass, ...] = (
    Pass("eval_mode", "drop dropout, stochastic depth and auxiliary heads (training only)", eval_mode),
    Pass("simplify", "remove ops that are identities at their known shapes", simplify),
    Pass("fold_input_affine", "fold a fixed input affine into the padding-free conv reading it",
         fold_input_affine),
    Pass("fold_batchnorm", "fold BatchNorm into the conv or linear before it", fold_batchnorm),
    Pass("fuse_activation", "compute an activation inside the conv before it", fuse_activation),
    Pass("inplace", "mark activations and residual adds that may overwrite their input", mark_inplace),
    Pass("layout", "choose the memory layout (channels_last where convs do the work)", choose_layout),
    Pass("prepack", "mark conv weights to reorder once for the CPU kernels", mark_prepack),
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
        verify(after.ir, after=f"pass {p.name!r}")
        if on_pass is not None:
            on_pass(p, arch, after)
        arch = after
    return arch


def changes(before: Architecture, after: Architecture) -> list[str]:
    """Human-readable lines naming each node a pass changed or removed, and changed graph facts."""
    lines = [f"{data['name']} ({data['op']}): removed" for node, data in before.graph.nodes(data=True)
             if node not in after.graph]
    for key, value in after.graph.graph.items():
        if key != "derivations" and before.graph.graph.get(key) != value and key != "scopes":
            lines.append(f"graph: {key}={value!r}")
    added = after.graph.graph.get("derivations", [])[len(before.graph.graph.get("derivations", [])):]
    lines += [f"{step['key']}: derived by {step['rule']}" for step in added]
    for node, data in after.graph.nodes(data=True):
        old = before.graph.nodes[node] if node in before.graph else {}
        diff = {k: v for k, v in data.items() if old.get(k, None) != v}
        if diff:
            lines.append(f"{data['name']} ({data['op']}): "
                         + ", ".join(f"{k}={v!r}" for k, v in sorted(diff.items())))
    return lines
