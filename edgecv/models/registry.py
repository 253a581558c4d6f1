"""The model zoo: an explicit registry of edge-sized Keras CNNs.

``list_models()`` and ``get_model_info()`` never import TensorFlow; ``create_model()`` imports
the family module (and Keras) only when a model is built. Every model is a plain inference
graph built with the Functional API: float32 NHWC input that is already normalised (see
:mod:`edgecv.preprocessing`), softmax probabilities out of a layer named ``"scores"``, stable
layer names, ``model.name`` equal to the registry name, no augmentation or rescaling layers, and
it converts to full-int8 TFLite with builtin ops only (tests/test_models.py proves it for every
entry).

Adding a model: write its builder ``fn(input_shape, num_classes, **options)`` in a family module
(validate the options before ``import keras``), then add one line to ``_REGISTRY``.
"""

from __future__ import annotations

import importlib
import numbers
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from edgecv.errors import UsageError, unknown_name

__all__ = ["ModelInfo", "count_macs", "create_model", "get_model_info", "init_from_data",
           "list_models"]

# Layers whose weights are computed from the training images before the first step (by name,
# so any registry model may use them): layer name -> "module:function(layer, images, seed=)".
_DATA_INITIALISED = {"whiten": "airnet:init_whitening"}
# Images the data-initialised layers look at: enough for a 2x2 patch covariance of 12 values.
DATA_INIT_IMAGES = 5_000


@dataclass(frozen=True)
class ModelInfo:
    """What a registry entry is and its defaults: the contract that travels with the name.

    ``default_img_size`` is the side used when the user gives none, ``min_img_size`` the smallest
    side the architecture accepts, ``supports_weights`` whether a pretrained base can be loaded
    (``weights="imagenet"`` or a local file), ``overrides`` the keyword options of the builder.
    """

    name: str
    description: str
    default_img_size: int = 32
    supports_weights: bool = False
    min_img_size: int = 16
    overrides: tuple[str, ...] = ()
    recipe: Mapping = field(default_factory=lambda: MappingProxyType({}))


# name -> ("module:function" in edgecv.models, info). A plain dict, no import-time registration:
# the builder module is imported by create_model only, so listing the zoo never loads Keras.
_REGISTRY: dict[str, tuple[str, ModelInfo]] = {
    "seed_cnn": ("cnn:seed_cnn", ModelInfo(
        "seed_cnn", "conv32-pool-conv64-pool-dense64: the smallest useful CNN",
        min_img_size=4, overrides=("dropout",))),
    "lenet5": ("cnn:lenet5", ModelInfo(
        "lenet5", "LeNet-5 (LeCun 1998) with ReLU: 6/16 5x5 convs, 120/84 dense",
        min_img_size=16)),
    "mini_vgg": ("cnn:mini_vgg", ModelInfo(
        "mini_vgg", "3 VGG blocks of two 3x3 conv+BN (32/64/128 x width), global pooling",
        min_img_size=8, overrides=("width", "dropout"))),
    "mini_inception": ("inception:mini_inception", ModelInfo(
        "mini_inception", "stem conv + 3 GoogLeNet-style inception blocks, 1x1 reductions",
        min_img_size=8, overrides=("width",))),
    "resnet8": ("resnet:resnet8", ModelInfo(
        "resnet8", "ResNet-8, the MLPerf Tiny image-classification reference (16/32/64)",
        min_img_size=8, overrides=("filters",))),
    "ds_cnn": ("ds_cnn:ds_cnn", ModelInfo(
        "ds_cnn", "depthwise-separable CNN in the style of the MLPerf Tiny / ARM KWS DS-CNN",
        min_img_size=8, overrides=("filters", "blocks"))),
    "airnet": ("airnet:airnet", ModelInfo(
        "airnet", "airbench-style photo net: whitening stem, 3 conv-pool-BN blocks (64/256/256)",
        min_img_size=16, overrides=("widths", "activation", "whiten", "logit_scale", "dirac"),
        # on CIFAR-10: peak lr 0.4 picked on 3-epoch runs over 0.2 and Adam at 3e-3; 12 epochs
        # at batch 256 take about 25 minutes on 2 cores (train_photo_recipe.json). 2-pixel
        # shifts (+0.7 pp in 3 epochs), Dirac initialisation (the builder's default) and flip
        # TTA in the saved model (+0.3 pp on average for twice the MACs: tta_cifar.json) took
        # 30 minutes from 0.8948 to 0.9060 and 0.9008 (two runs), int8 within convert's budget
        # once the BatchNormalization after each pool is folded for export (converters/fuse.py)
        recipe=MappingProxyType({"optimizer": "sgd", "lr": 0.4, "label_smoothing": 0.2,
                                 "weight_decay": 5e-3, "batch_size": 256, "epochs": 12,
                                 "crop_pad": 2, "tta": "flip"}))),
    "mobilenet_v2": ("mobilenet:mobilenet_v2", ModelInfo(
        "mobilenet_v2", "keras.applications MobileNetV2 (width alpha), optional pretrained base",
        default_img_size=96, supports_weights=True, min_img_size=32,
        overrides=("alpha", "weights", "dropout"))),
}


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(_REGISTRY)


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; an unknown name suggests the closest one."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise unknown_name("model", str(name), list_models())
    return _REGISTRY[name][1]


def create_model(name: str, input_shape=(32, 32, 1), num_classes: int = 10, **overrides):
    """Build registry model ``name`` for ``input_shape`` (H, W, C) and ``num_classes`` outputs.

    Defaults: a 32x32 grayscale input and 10 classes. ``overrides`` are the entry's own options
    (``get_model_info(name).overrides``), e.g. ``alpha=0.5`` for mobilenet_v2; an override given
    as ``None`` means "the model's default", so unset CLI flags can be passed through as they are.
    Everything is validated before Keras is imported; errors are :class:`UsageError` and echo
    the value received.
    """
    info = get_model_info(name)
    shape = _check_input_shape(input_shape, info)
    if not isinstance(num_classes, numbers.Integral) or isinstance(num_classes, bool) \
            or num_classes < 2:
        raise UsageError(f"num_classes must be an integer of at least 2, "
                         f"received num_classes={num_classes!r}.")
    unknown = sorted(set(overrides) - set(info.overrides))
    if unknown:
        accepted = ", ".join(info.overrides) or "none"
        raise UsageError(f"{name} does not accept {unknown}; accepted options: {accepted}.")
    options = {key: value for key, value in overrides.items() if value is not None}
    module_name, function_name = _REGISTRY[name][0].split(":")
    module = importlib.import_module(f"edgecv.models.{module_name}")
    return getattr(module, function_name)(shape, int(num_classes), **options)


def init_from_data(model, images, seed: int = 0) -> list[str]:
    """Set the weights of ``model``'s data-initialised layers (e.g. airnet's ``"whiten"``) from
    ``images``: float (N, H, W, C) normalised as the model sees them, or a function returning
    them, called only when the model has such a layer. Returns the layers' names; a model
    without any is left as it is (an empty list)."""
    names = {layer.name for layer in model.layers}
    targets = {name: target for name, target in _DATA_INITIALISED.items() if name in names}
    if targets and callable(images):
        images = images()
    for layer_name, target in targets.items():
        module_name, function_name = target.split(":")
        module = importlib.import_module(f"edgecv.models.{module_name}")
        getattr(module, function_name)(model.get_layer(layer_name), images, seed=seed)
    return list(targets)


def _check_input_shape(input_shape, info: ModelInfo) -> tuple[int, int, int]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (shape is None or len(shape) != 3
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shape)
            or shape[2] not in (1, 3)):
        raise UsageError(
            f"input_shape must be (height, width, channels) integers with 1 or 3 channels, "
            f"received input_shape={input_shape!r}."
        )
    height, width, channels = (int(v) for v in shape)
    if min(height, width) < info.min_img_size:
        raise UsageError(
            f"{info.name} needs an input of at least {info.min_img_size}x{info.min_img_size}, "
            f"received {height}x{width} (input_shape={(height, width, channels)})."
        )
    return height, width, channels


def count_macs(model) -> int:
    """Multiply-accumulates of one inference (batch 1).

    Counted, per output element: ``Conv2D`` kh*kw*in_channels/groups, ``DepthwiseConv2D``
    kh*kw (times depth_multiplier output channels), ``SeparableConv2D`` its depthwise part plus
    its 1x1 pointwise part, ``Dense`` in_features (on any rank: every position counts).
    Nested models (e.g. mobilenet_v2's ``"base"``) are walked recursively. Everything else is
    counted as free, the usual convention for CNN MAC figures: bias adds, BatchNorm (folded into
    the conv when converted), activations, pooling, Add/Concatenate, Softmax; also any layer type
    not listed (Conv1D/3D, transposed convs). A layer called more than once in ``model`` counts
    once per call (flip test-time augmentation runs every layer twice), at its first call's
    shapes. Needs static spatial shapes (every edgecv model has them).
    """
    import keras

    if not isinstance(model, keras.Model):
        raise UsageError(f"count_macs needs a keras.Model, received {type(model).__name__}.")
    calls = _calls_per_layer(model)
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += count_macs(layer) * calls.get(layer.name, 1)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                keras.layers.SeparableConv2D, keras.layers.Dense)):
            total += _layer_macs(layer) * calls.get(layer.name, 1)
    return total


def _calls_per_layer(model) -> dict[str, int]:
    """How often each layer of a functional ``model`` is called in it (its config's inbound
    nodes); empty (one call each) for a model whose config cannot be read."""
    try:
        entries = model.get_config().get("layers", [])
    except (NotImplementedError, TypeError, ValueError):  # a custom layer without get_config
        return {}
    return {entry.get("name"): len(entry.get("inbound_nodes") or [None]) for entry in entries
            if isinstance(entry, dict)}


def _layer_macs(layer) -> int:
    import keras

    out_shape = tuple(layer.output.shape)[1:]
    in_channels = layer.input.shape[-1]
    if any(v is None for v in out_shape) or in_channels is None:
        raise UsageError(f"count_macs needs static shapes; layer '{layer.name}' has output shape "
                         f"{tuple(layer.output.shape)}. Build the model with a fixed input size.")
    positions = 1
    for v in out_shape[:-1]:
        positions *= int(v)
    out_channels, in_channels = int(out_shape[-1]), int(in_channels)
    if isinstance(layer, keras.layers.Dense):
        return positions * in_channels * out_channels
    kh, kw = layer.kernel_size
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return positions * kh * kw * out_channels  # out = in * depth_multiplier
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise_channels = in_channels * layer.depth_multiplier
        return positions * (kh * kw * depthwise_channels + depthwise_channels * out_channels)
    return positions * kh * kw * (in_channels // layer.groups) * out_channels
