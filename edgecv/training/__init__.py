"""The training side of edgecv (needs the [train] extra: TensorFlow, scikit-learn, matplotlib).

Importing this package does not import TensorFlow; :func:`train` does, when called.
"""

from edgecv.training.config import TrainConfig
from edgecv.training.trainer import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
