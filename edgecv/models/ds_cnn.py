"""ds_cnn: depthwise-separable CNN in the style of the MLPerf Tiny / ARM keyword-spotting DS-CNN.

The reference (mlcommons/tiny keyword_spotting, after Zhang et al. 2017 "Hello Edge") is a
strided regular conv + BN + ReLU + dropout 0.2, four blocks of DepthwiseConv2D 3x3 + BN + ReLU +
Conv2D 1x1 + BN + ReLU with 64 filters and L2 1e-4, dropout 0.4, global average pooling and a
softmax Dense. Its stem kernel is 10x4 for 49x10 MFCC spectrograms; images get a 3x3 stem.
Convs followed by BN have no bias (BN's offset replaces it; int8 conversion folds both).
"""

from __future__ import annotations

from edgecv.models._checks import positive_int


def ds_cnn(input_shape, num_classes, filters: int = 64, blocks: int = 4):
    """Stride-2 3x3 conv, ``blocks`` (default 4) depthwise-separable blocks of ``filters``
    (default 64) channels, global average pooling, softmax."""
    filters = positive_int("filters", filters)
    blocks = positive_int("blocks", blocks)
    import keras
    from keras import layers, regularizers

    def l2():
        return regularizers.l2(1e-4)

    inputs = keras.Input(input_shape, name="input")
    x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False,
                      kernel_regularizer=l2(), name="conv1")(inputs)
    x = layers.BatchNormalization(momentum=0.9, name="conv1_bn")(x)
    x = layers.ReLU(name="conv1_relu")(x)
    x = layers.Dropout(0.2, name="conv1_dropout")(x)
    for block in range(1, blocks + 1):
        name = f"block{block}"
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False,
                                   depthwise_regularizer=l2(), name=f"{name}_dw")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
        x = layers.ReLU(name=f"{name}_dw_relu")(x)
        x = layers.Conv2D(filters, 1, use_bias=False, kernel_regularizer=l2(),
                          name=f"{name}_pw")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_pw_bn")(x)
        x = layers.ReLU(name=f"{name}_pw_relu")(x)
    x = layers.Dropout(0.4, name="dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")
