"""The model zoo: an explicit registry of edge-sized Keras CNNs (:mod:`edgecv.models.registry`),
one module per family (:mod:`~edgecv.models.resnet`, :mod:`~edgecv.models.mobilenet`, ...).
Listing and describing models never imports TensorFlow; building one does."""

from edgecv.models.registry import (ModelInfo, count_macs, create_model, get_model_info,
                                    init_from_data, list_models)

__all__ = ["ModelInfo", "count_macs", "create_model", "get_model_info", "init_from_data",
           "list_models"]
