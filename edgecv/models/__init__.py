"""The model zoo: an explicit registry of edge-sized Keras CNNs.

``list_models()`` and ``get_model_info()`` never import TensorFlow; ``create_model()`` imports
the family module (and Keras) only when a model is built. Every model is a plain inference
graph: float32 NHWC input that is already normalised (see :mod:`edgecv.preprocessing`), softmax
probabilities out, stable layer names, no augmentation or rescaling layers, and it converts to
full-int8 TFLite with builtin ops only (tests/test_models.py proves it for every entry).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from edgecv.errors import UsageError, unknown_name


@dataclass(frozen=True)
class ModelInfo:
    """What a registry entry is, and its defaults."""

    name: str
    description: str
    default_img_size: int = 32
    min_img_size: int = 16
    supports_weights: bool = False  # a pretrained base (--weights imagenet|PATH)
    overrides: tuple[str, ...] = ()  # keyword arguments create_model accepts for this entry


# name -> (module:function, info). A plain dict: adding a model is one line here.
_REGISTRY: dict[str, tuple[str, ModelInfo]] = {
    "seed_cnn": ("cnn:seed_cnn", ModelInfo(
        "seed_cnn", "conv32-pool-conv64-pool-dense: the smallest useful CNN",
        overrides=("dropout",))),
    "lenet5": ("cnn:lenet5", ModelInfo(
        "lenet5", "LeNet-5: 6/16 5x5 convs, 120/84 dense", min_img_size=20)),
    "mini_vgg": ("cnn:mini_vgg", ModelInfo(
        "mini_vgg", "3 VGG blocks of two 3x3 conv+BN (32/64/128), global pooling",
        overrides=("width", "dropout"))),
    "mini_inception": ("inception:mini_inception", ModelInfo(
        "mini_inception", "GoogLeNet-style blocks with 1x1 reductions", overrides=("width",))),
    "resnet8": ("resnet:resnet8", ModelInfo(
        "resnet8", "ResNet-8, the MLPerf Tiny image-classification reference (16/32/64)",
        overrides=("filters",))),
    "ds_cnn": ("ds_cnn:ds_cnn", ModelInfo(
        "ds_cnn", "depthwise-separable CNN (MLPerf Tiny DS-CNN style)",
        overrides=("filters", "blocks"))),
    "mobilenet_v2": ("mobilenet:mobilenet_v2", ModelInfo(
        "mobilenet_v2", "keras.applications MobileNetV2 (width alpha), optional pretrained base",
        default_img_size=96, min_img_size=32, supports_weights=True,
        overrides=("alpha", "weights", "dropout"))),
}


def list_models() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(_REGISTRY)


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; an unknown name suggests the closest one."""
    if name not in _REGISTRY:
        raise unknown_name("model", name, list_models())
    return _REGISTRY[name][1]


def create_model(name: str, input_shape=(32, 32, 1), num_classes: int = 10, **overrides):
    """Build registry model ``name`` for ``input_shape`` (H, W, C) and ``num_classes`` outputs.

    Defaults: a 32x32 grayscale input and 10 classes. ``overrides`` are the entry's own options
    (see ``ModelInfo.overrides``), e.g. ``alpha=0.5`` for mobilenet_v2.
    """
    info = get_model_info(name)
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise UsageError(
            f"input_shape must be (height, width, channels) with 1 or 3 channels, "
            f"received input_shape={tuple(input_shape)}."
        )
    if min(shape[:2]) < info.min_img_size:
        raise UsageError(
            f"{name} needs an input of at least {info.min_img_size}x{info.min_img_size}, "
            f"received {shape[0]}x{shape[1]}."
        )
    if int(num_classes) < 2:
        raise UsageError(f"num_classes must be at least 2, received num_classes={num_classes}.")
    unknown = sorted(set(overrides) - set(info.overrides))
    if unknown:
        accepted = ", ".join(info.overrides) or "none"
        raise UsageError(f"{name} does not accept {unknown}; accepted options: {accepted}.")
    module_name, function_name = _REGISTRY[name][0].split(":")
    module = importlib.import_module(f"edgecv.models.{module_name}")
    return getattr(module, function_name)(shape, int(num_classes), **overrides)


# Layers whose multiply-accumulates count_macs adds up; everything else (pooling, BN, activations,
# adds) is treated as free, which is the usual convention for MAC figures of CNNs.
_MAC_LAYERS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")


def count_macs(model) -> int:
    """Multiply-accumulates of one inference (batch 1) in Conv2D, DepthwiseConv2D,
    SeparableConv2D and Dense layers, recursing into nested models."""
    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.__class__.__name__ in ("Functional", "Sequential",
                                                                      "Model"):
            total += count_macs(layer)
            continue
        kind = layer.__class__.__name__
        if kind not in _MAC_LAYERS:
            continue
        out_shape = layer.output.shape
        in_channels = int(layer.input.shape[-1])
        if kind == "Dense":
            total += in_channels * int(out_shape[-1])
            continue
        out_pixels = int(out_shape[1]) * int(out_shape[2])
        kh, kw = layer.kernel_size
        if kind == "Conv2D":
            total += out_pixels * kh * kw * in_channels * int(out_shape[-1]) // layer.groups
        elif kind == "DepthwiseConv2D":
            total += out_pixels * kh * kw * in_channels * layer.depth_multiplier
        else:  # SeparableConv2D: depthwise then 1x1 pointwise
            total += out_pixels * (kh * kw * in_channels * layer.depth_multiplier
                                   + in_channels * layer.depth_multiplier * int(out_shape[-1]))
    return total
