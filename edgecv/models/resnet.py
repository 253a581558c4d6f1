"""resnet8: the MLPerf Tiny image-classification reference model (ResNet-8 for CIFAR-10).

Follows mlcommons/tiny ``benchmark/training/image_classification/keras_model.py``: stem conv
3x3 + BN + ReLU, then three residual stacks (filters 16/32/64, strides 1/2/2) of two 3x3
conv+BN each, a 1x1 projection shortcut (no BN) where the shape changes, add + ReLU, global
average pooling and a softmax classifier; he_normal init, L2 1e-4 on the conv kernels, convs
with biases. With the defaults at 32x32x3 and 10 classes it has the reference's 78,666
parameters and 12.5 M MACs (tests/test_models.py checks both).

One deliberate difference: BatchNorm momentum 0.9 instead of Keras' 0.99. Small edge datasets
give few steps per epoch, and 0.99 leaves the moving statistics (used at validation and after
conversion) lagging for many epochs.
"""

from __future__ import annotations

from edgecv.models._checks import positive_ints


def resnet8(input_shape, num_classes, filters=(16, 32, 64)):
    """ResNet-8 with ``filters`` per stack (3 positive integers, default (16, 32, 64))."""
    filters = positive_ints("filters", filters, 3, "stack")
    import keras
    from keras import layers, regularizers

    def conv(x, f, kernel, strides, name):
        return layers.Conv2D(f, kernel, strides=strides, padding="same",
                             kernel_initializer="he_normal",
                             kernel_regularizer=regularizers.l2(1e-4), name=name)(x)

    def bn(x, name):
        return layers.BatchNormalization(momentum=0.9, name=name)(x)

    inputs = keras.Input(input_shape, name="input")
    x = layers.ReLU(name="stem_relu")(bn(conv(inputs, filters[0], 3, 1, "stem_conv"), "stem_bn"))
    for stack, (f, strides) in enumerate(zip(filters, (1, 2, 2)), start=1):
        name = f"stack{stack}"
        y = layers.ReLU(name=f"{name}_relu1")(bn(conv(x, f, 3, strides, f"{name}_conv1"),
                                                  f"{name}_bn1"))
        y = bn(conv(y, f, 3, 1, f"{name}_conv2"), f"{name}_bn2")
        if strides != 1 or x.shape[-1] != f:
            x = conv(x, f, 1, strides, f"{name}_shortcut")
        x = layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([x, y]))
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_initializer="he_normal",
                           name="scores")(x)
    return keras.Model(inputs, outputs, name="resnet8")
