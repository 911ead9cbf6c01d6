"""archdsl: convolutional network architectures as short ``.arch`` specs.

    >>> import archdsl
    >>> arch = archdsl.load("resnet50")          # elaborate: IR graph, shapes, params
    >>> model = archdsl.build("resnet50")        # compile: a torch.fx.GraphModule
"""

from .api import build, list_models, load, loads, parse_spec, spec_path
from .errors import ArchError, ShapeError, SpecError, SpecNotFoundError, SpecSyntaxError, WeightsError
from .ir import Architecture
from .scale import scale

__all__ = [
    "load", "loads", "build", "scale", "list_models", "parse_spec", "spec_path", "Architecture",
    "ArchError", "SpecError", "SpecSyntaxError", "ShapeError", "SpecNotFoundError", "WeightsError",
]
__version__ = "0.1.0"
