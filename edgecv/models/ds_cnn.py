"""ds_cnn: depthwise-separable CNN in the style of the MLPerf Tiny / ARM keyword-spotting DS-CNN."""

from __future__ import annotations

from edgecv.errors import UsageError


def ds_cnn(input_shape, num_classes, filters: int = 64, blocks: int = 4):
    """A strided 3x3 conv, then ``blocks`` x (depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN +
    ReLU), global pooling, softmax. Defaults: 64 filters, 4 blocks."""
    import keras
    from keras import layers

    if int(filters) < 1 or int(blocks) < 1:
        raise UsageError(f"filters and blocks must be positive, received filters={filters}, "
                         f"blocks={blocks}.")
    inputs = keras.Input(input_shape, name="input")
    x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(momentum=0.9, name="conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    for block in range(1, int(blocks) + 1):
        name = f"block{block}"
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
        x = layers.ReLU(name=f"{name}_dw_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_pw_bn")(x)
        x = layers.ReLU(name=f"{name}_pw_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")
