"""Test-time augmentation that the deployed model computes itself.

``flip_tta(model)`` returns a model that scores an image and its mirror image with the same
layers and averages the two score vectors: airbench's flip test-time augmentation (Jordan 2024),
but inside the graph, so the ``.tflite`` and ``.onnx`` files, the bench's latency and every
accuracy figure include it (twice the MACs and the latency of the plain model, no new weights).

Built from Keras builtin layers only, so ``model.keras`` loads in safe mode and converts with
builtin TFLite ops: the mirror is a frozen 1x1 ``Conv2D`` over the columns (the width axis
moved to the channels) holding the reversal permutation (TRANSPOSE, CONV_2D, TRANSPOSE in TFLite,
no shape arithmetic, so TFLite Micro runs it too; 0/1 weights), and the model's own layers are
called a second time (one set of weights, a flat graph: no nested model). Models saved with the
earlier mirror, a ``Dense`` on the 4-D tensor, still load.
"""
from __future__ import annotations

from edgecv.errors import UsageError

TTA_MODES = ("none", "flip")
MIRROR, AVERAGE = "tta_mirror", "tta_average"  # the layers flip_tta adds, by name


def flip_tta(model):
    """``model`` (a functional Keras model with one NHWC image input and one score output)
    wrapped so that its output is the mean of its scores on the input and on the input mirrored
    left-right. The result has the same input and output shapes and the same weights."""
    import keras
    import numpy as np
    from keras import layers

    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(model.input_shape) != 4:
        raise UsageError(f"flip test-time augmentation needs a model with one image input "
                         f"(N, H, W, C) and one output; '{model.name}' has input shape "
                         f"{model.input_shape}.")
    height, width, channels = model.input_shape[1:]
    if width is None:
        raise UsageError(f"flip test-time augmentation needs a fixed input width; '{model.name}' "
                         f"has input shape {model.input_shape}.")
    inputs = keras.Input(model.input_shape[1:], name=model.inputs[0].name)
    columns = layers.Permute((1, 3, 2), name="tta_columns")(inputs)  # (H, C, W)
    # the columns as channels, reversed by a frozen 1x1 convolution: it lowers to one CONV_2D
    # (a Dense on the 4-D tensor lowers with shape arithmetic, REDUCE_PROD among it, which
    # TFLite Micro has no kernel for)
    mirror = layers.Conv2D(width, 1, use_bias=False, trainable=False, name=MIRROR)
    mirrored = layers.Permute((1, 3, 2), name="tta_mirrored")(mirror(columns))
    mirror.set_weights([np.eye(width, dtype="float32")[::-1].reshape(1, 1, width, width)])
    # Model.call (not __call__) runs the model's own layers on the new tensors: a flat graph whose
    # layers are each called twice, rather than a nested model.
    scores = layers.Average(name=AVERAGE)([model.call(inputs), model.call(mirrored)])
    return keras.Model(inputs, scores, name=model.name)


def plain_and_flip(model) -> tuple[object, object]:
    """``(plain, with_flip_tta)`` of ``model``: a model saved by ``--tta flip`` (it has the
    mirror) and its plain half (the average's first input: the image through the same layers,
    without the mirror), else ``model`` and :func:`flip_tta` of it."""
    import keras

    if any(layer.name == MIRROR for layer in model.layers):
        return keras.Model(model.inputs, model.get_layer(AVERAGE).input[0]), model
    return model, flip_tta(model)
