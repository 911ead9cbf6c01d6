"""archdsl: convolutional network architectures as short ``.arch`` specs.

    >>> import archdsl
    >>> arch = archdsl.load("resnet50")          # elaborate: IR graph, shapes, params
    >>> model = archdsl.build("resnet50")        # compile: a torch.fx.GraphModule
    >>> model = archdsl.create_model("resnet50", num_classes=10)   # timm's interface

The package is the pipeline: ``frontend`` (text → IR), ``ir`` (graph, op
registry, passes), ``backends`` (torch, weights, diagram, summary table,
``.arch`` printer), ``api`` (the public stages), the tools built on them
(``scale``, ``compare``, ``training``) and ``cli``.

The names below are imported on first use, so ``import archdsl`` (and the
command line's ``--help`` and ``list``) loads neither networkx nor the parser.
"""

import importlib as _importlib
import importlib.util as _util
import sys as _sys

__version__ = "0.1.0"

_EXPORTS = {
    "build": ".api", "compile_package": ".api", "load_package": ".api", "elaborate_spec": ".api", "load": ".api", "loads": ".api",
    "create_model": ".models", "list_models": ".models", "transforms": ".published",
    "parse_spec": ".api", "spec_path": ".api", "scale": ".scale", "Architecture": ".ir.graph",
    "ArchError": ".errors", "ShapeError": ".errors", "SpecError": ".errors", "SpecNotFoundError": ".errors",
    "SpecSyntaxError": ".errors", "WeightsError": ".errors",
}
# Module paths documented before the pipeline packages existed keep working.
_ALIASES = {__name__ + ".render": __name__ + ".backends.dot", __name__ + ".summary": __name__ + ".backends.table"}

__all__ = [
    "load", "loads", "build", "compile_package", "load_package", "scale", "list_models", "create_model", "transforms", "parse_spec",
    "elaborate_spec", "spec_path",
    "Architecture", "ArchError", "SpecError", "SpecSyntaxError", "ShapeError", "SpecNotFoundError",
    "WeightsError",
]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    if f"{__name__}.{name}" in _ALIASES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


class _AliasFinder:  # a meta path finder and loader (importlib.abc would cost 20 ms of start-up)
    """Makes ``import archdsl.render`` give ``archdsl.backends.dot`` (and summary → table)."""

    def find_spec(self, fullname, path=None, target=None):
        return _util.spec_from_loader(fullname, self) if fullname in _ALIASES else None

    def create_module(self, spec):
        module = _importlib.import_module(_ALIASES[spec.name])
        _sys.modules[spec.name] = module
        return module

    def exec_module(self, module):
        pass


if not any(isinstance(f, _AliasFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_AliasFinder())
