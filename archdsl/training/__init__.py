"""Training and evaluating any spec: ``archdsl train`` / ``archdsl eval`` as a Python API.

    >>> from archdsl.training import TrainConfig, train
    >>> summary = train(TrainConfig(spec="examples/small_resnet.arch", data="fashion-mnist",
    ...                             epochs=5, out="runs/fmnist"))

Importing this package imports torch; ``archdsl`` itself does not.
"""

from .checkpoint import Checkpoint, CheckpointError, latest_checkpoint, read_checkpoint
from .config import TrainConfig
from .data import DataError, load_dataset
from .loop import Trainer, train

__all__ = ["TrainConfig", "train", "Trainer", "Checkpoint", "CheckpointError", "read_checkpoint",
           "latest_checkpoint", "DataError", "load_dataset"]
