"""Plain CNNs: seed_cnn, lenet5, mini_vgg."""

from __future__ import annotations

from edgecv.models._checks import fraction, positive_number


def seed_cnn(input_shape, num_classes, dropout: float = 0.3):
    """conv32-pool-conv64-pool-flatten-dense64-dropout-softmax, 3x3 'same' convs. dropout 0.3."""
    dropout = fraction("dropout", dropout)
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="input")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


def lenet5(input_shape, num_classes):
    """LeNet-5 with ReLU and max pooling: conv6 5x5 - pool - conv16 5x5 - pool - 120 - 84.

    Both convs are 'valid' as in the paper, so a 32x32 input gives its exact geometry
    (28 -> 14 -> 10 -> 5, 400 features, 61,706 parameters for 1 channel and 10 classes).
    """
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="input")
    x = layers.Conv2D(6, 5, activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(16, 5, activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(120, activation="relu", name="fc1")(x)
    x = layers.Dense(84, activation="relu", name="fc2")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="lenet5")


def mini_vgg(input_shape, num_classes, width: float = 1.0, dropout: float = 0.3):
    """Three VGG blocks (two 3x3 conv+BN+ReLU, 2x2 max pool) of 32/64/128 filters times
    ``width`` (default 1.0, at least 8 filters), global average pooling, dropout (0.3), softmax."""
    width = positive_number("width", width)
    dropout = fraction("dropout", dropout)
    import keras
    from keras import layers

    inputs = keras.Input(input_shape, name="input")
    x = inputs
    for block, filters in enumerate((32, 64, 128), start=1):
        filters = max(8, int(round(filters * width)))
        for conv in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                              name=f"block{block}_conv{conv}")(x)
            # momentum 0.9: edge datasets give few steps per epoch; 0.99 lags (see resnet.py)
            x = layers.BatchNormalization(momentum=0.9, name=f"block{block}_bn{conv}")(x)
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="mini_vgg")
