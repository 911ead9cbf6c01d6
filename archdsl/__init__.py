"""archdsl: convolutional network architectures as short ``.arch`` specs.

    >>> import archdsl
    >>> arch = archdsl.load("resnet50")          # elaborate: IR graph, shapes, params
    >>> model = archdsl.build("resnet50")        # compile: a torch.fx.GraphModule
    >>> model = archdsl.create_model("resnet50", num_classes=10)   # timm's interface

The package is the pipeline: ``frontend`` (text → IR), ``ir`` (graph, op
registry, passes), ``backends`` (torch, weights, diagram, summary table,
``.arch`` printer), ``api`` (the public stages), the tools built on them
(``scale``, ``compare``, ``training``) and ``cli``.
"""

import sys as _sys

from .api import build, elaborate_spec, load, loads, parse_spec, spec_path
from .backends import dot as _dot
from .backends import table as _table
from .errors import ArchError, ShapeError, SpecError, SpecNotFoundError, SpecSyntaxError, WeightsError
from .ir.graph import Architecture
from .published import transforms
from .scale import scale

# Module paths documented before the pipeline packages existed keep working.
_sys.modules[__name__ + ".render"] = _dot
_sys.modules[__name__ + ".summary"] = _table

__all__ = [
    "load", "loads", "build", "scale", "list_models", "create_model", "transforms", "parse_spec",
    "elaborate_spec", "spec_path",
    "Architecture", "ArchError", "SpecError", "SpecSyntaxError", "ShapeError", "SpecNotFoundError",
    "WeightsError",
]
__version__ = "0.1.0"


def __getattr__(name):
    # timm's interface needs torch; `import archdsl` alone must not load it (summary, check stay light).
    if name in ("create_model", "list_models"):
        from . import models
        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
