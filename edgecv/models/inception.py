"""mini_inception: GoogLeNet-style inception blocks with 1x1 reductions, sized for 32x32 inputs."""

from __future__ import annotations

from edgecv.models._checks import positive_number


def _conv_bn(x, filters, kernel, name):
    from keras import layers

    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _inception(x, name, f1, f3r, f3, f5r, f5, fpool):
    """Four parallel branches, concatenated: 1x1 | 1x1->3x3 | 1x1->3x3->3x3 | maxpool->1x1.

    The 5x5 branch is two stacked 3x3 convs (same receptive field, fewer MACs, as in
    Inception-v2); int8 TFLite runs both the same way."""
    from keras import layers

    b1 = _conv_bn(x, f1, 1, f"{name}_1x1")
    b3 = _conv_bn(_conv_bn(x, f3r, 1, f"{name}_3x3_reduce"), f3, 3, f"{name}_3x3")
    b5 = _conv_bn(x, f5r, 1, f"{name}_5x5_reduce")
    b5 = _conv_bn(_conv_bn(b5, f5, 3, f"{name}_5x5a"), f5, 3, f"{name}_5x5b")
    bp = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    bp = _conv_bn(bp, fpool, 1, f"{name}_pool_proj")
    return layers.Concatenate(name=f"{name}_concat")([b1, b3, b5, bp])


def mini_inception(input_shape, num_classes, width: float = 1.0):
    """Stem 3x3 conv (32), inception blocks inc1 and inc2, a stride-2 max pool, inc3, global
    average pooling and softmax. ``width`` (default 1.0) multiplies every filter count."""
    width = positive_number("width", width)
    import keras
    from keras import layers

    def w(filters):
        return max(4, int(round(filters * width)))

    inputs = keras.Input(input_shape, name="input")
    x = _conv_bn(inputs, w(32), 3, "stem")
    #                   1x1    3x3 red  3x3    5x5 red  5x5    pool proj   -> out channels
    x = _inception(x, "inc1", w(16), w(16), w(24), w(4), w(8), w(8))     # 56
    x = _inception(x, "inc2", w(24), w(24), w(32), w(8), w(16), w(16))   # 88
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    x = _inception(x, "inc3", w(32), w(32), w(48), w(8), w(16), w(16))   # 112
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="mini_inception")
