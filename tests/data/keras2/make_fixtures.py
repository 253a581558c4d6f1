"""Write the Keras 2 (tf.keras 2.x) ``.h5`` fixtures of tests/test_keras2_h5.py.

Needs the ``tf_keras`` package (Keras 2, ``pip install tf-keras==<TensorFlow's version>``), which
edgecv itself does not depend on: only this script imports it. Run from the repository root:

    python tests/data/keras2/make_fixtures.py

It writes, next to this file:

- ``resnet_keras2.h5``: a Functional ResNet-style model (conv + BN + ReLU, two residual blocks
  with ``Add``, the second strided with a 1x1 projection), 32x32x3 input taking 0..255 pixels
  with a ``Rescaling(1/255)`` layer inside, 3 classes;
- ``mobilenet_keras2.h5``: a Sequential MobileNet-style model built with ``input_shape=`` on
  its first layer (so its config has ``batch_input_shape``), ``DepthwiseConv2D`` + BN +
  ``ReLU(6)``, global average pooling, 3 classes, taking 0..1 input (pixels / 255, no
  Rescaling layer);
- ``expected.npz``: ``x`` (uint8 images, N x 32 x 32 x 3, held out from training), ``y``
  (class indices), ``labels`` (class names) and, per model stem,
  the softmax scores tf_keras gives on them (``resnet_keras2`` on ``x`` as float pixels,
  ``mobilenet_keras2`` on ``x / 255``).

Both are trained with Adam for a few epochs on the airplane / automobile / bird photos of
tests/data/cifar10_mini and saved with ``model.save(path)`` (HDF5, ``include_optimizer=True``
by default), so the files also carry Keras 2 optimizer state.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
CLASSES = ["airplane", "automobile", "bird"]
MINI = HERE.parent / "cifar10_mini"
N_EXPECTED = 18  # images whose scores are recorded (6 per class, from the end of each folder)
# Keras' default 0.99 leaves the moving statistics near their initial values after the ~400
# steps these few images allow; 0.9 lets them settle, so inference matches what was learned.
BN_MOMENTUM = 0.9


def load_images():
    """(x uint8 N x 32 x 32 x 3 RGB, y int) for CLASSES, files sorted by name."""
    import cv2

    xs, ys = [], []
    for index, name in enumerate(CLASSES):
        for file in sorted((MINI / name).glob("*.jpg")):
            xs.append(cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB))
            ys.append(index)
    return np.stack(xs), np.array(ys, np.int64)


def resnet(keras):
    layers = keras.layers

    def conv_bn(x, filters, stride=1, relu=True, name=None):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                          name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x) if relu else x

    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = conv_bn(x, 8, name="stem")
    y = conv_bn(x, 8, name="b1a")
    y = conv_bn(y, 8, relu=False, name="b1b")
    x = layers.ReLU(name="b1_out")(layers.Add(name="b1_add")([x, y]))
    y = conv_bn(x, 16, stride=2, name="b2a")
    y = conv_bn(y, 16, relu=False, name="b2b")
    shortcut = layers.Conv2D(16, 1, strides=2, use_bias=False, name="b2_proj")(x)
    x = layers.ReLU(name="b2_out")(layers.Add(name="b2_add")([shortcut, y]))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(3, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="resnet_keras2")


def mobilenet(keras):
    layers = keras.layers
    model = keras.Sequential(name="mobilenet_keras2")
    model.add(layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False,
                            input_shape=(32, 32, 3), name="stem_conv"))
    model.add(layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn"))
    model.add(layers.ReLU(6.0, name="stem_relu6"))
    for i, (filters, stride) in enumerate([(16, 1), (16, 2)]):
        model.add(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                         name=f"dw{i}"))
        model.add(layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dw{i}_bn"))
        model.add(layers.ReLU(6.0, name=f"dw{i}_relu6"))
        model.add(layers.Conv2D(filters, 1, use_bias=False, name=f"pw{i}"))
        model.add(layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"pw{i}_bn"))
        model.add(layers.ReLU(6.0, name=f"pw{i}_relu6"))
    model.add(layers.GlobalAveragePooling2D(name="pool"))
    model.add(layers.Dropout(0.1, name="dropout"))
    model.add(layers.Dense(3, activation="softmax", name="scores"))
    return model


def main() -> int:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    x, y = load_images()
    held = np.concatenate([np.flatnonzero(y == c)[-N_EXPECTED // len(CLASSES):]
                           for c in range(len(CLASSES))])
    train = np.setdiff1d(np.arange(len(y)), held)
    # x / y / labels are the keys `edgecv convert --data FILE.npz` reads, so this file is
    # verification data as well as the record of tf_keras' scores.
    expected = {"x": x[held], "y": y[held], "labels": np.array(CLASSES)}
    for build, scale, epochs in [(resnet, 1.0, 40), (mobilenet, 1.0 / 255, 40)]:
        keras.utils.set_random_seed(0)
        model = build(keras)
        model.compile(optimizer=keras.optimizers.Adam(3e-3),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[train].astype("float32") * scale, y[train], epochs=epochs, batch_size=16,
                  verbose=0, shuffle=True)
        scores = model.predict(x[held].astype("float32") * scale, verbose=0)
        accuracy = float((scores.argmax(1) == y[held]).mean())
        path = HERE / f"{model.name}.h5"
        model.save(path)  # HDF5 by suffix; include_optimizer=True is the default
        expected[model.name] = scores.astype("float32")
        print(f"{path.name}: {model.count_params()} params, held-out accuracy "
              f"{accuracy:.2f} on {len(held)} images, {path.stat().st_size} bytes")
    np.savez_compressed(HERE / "expected.npz", **expected)
    print(f"tensorflow {tf.__version__}, tf_keras {keras.__version__}, "
          f"python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
