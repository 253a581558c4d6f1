"""A model trained elsewhere, on CIFAR-10 photos: a tf.keras 2 (``tf_keras``) Sequential
MobileNet-style network, saved as a Keras 2 whole-model ``.h5``, for int8_cifar's ``--model-file``
(what a user brings: Keras 2 layer configs, ``Rescaling`` inside, saved optimizer state).

    python benchmarks/experiments/keras2_cifar_model.py --data cifar10_train.tar.xz \\
        --out mobilenet_keras2_cifar.h5 [--epochs 15]

The network takes 0..255 pixels: ``Rescaling(1/127.5, offset=-1)`` first (the [-1, 1] input of
Keras' MobileNets), then a stem convolution and five depthwise-separable blocks (DepthwiseConv2D
+ BN + ReLU6 + 1x1 Conv2D + BN + ReLU6; strides 2 in the second and fourth), global average
pooling, dropout 0.2 and a softmax Dense. It trains on the TRAIN split of edgecv's own seeded
split of ``--data`` (seed 0, 15% validation, 15% test: the split ``edgecv convert MODEL --data``
makes), with random crop (4-pixel padding) and flip, Adam 2e-3 cosine-decayed to 0, batch 64,
so the test split that verifies the conversion was never seen. Needs ``tf_keras`` (the ``qat``
extra); it runs in a child process with ``TF_USE_LEGACY_KERAS=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def build(keras):
    layers = keras.layers
    model = keras.Sequential(name="mobilenet_keras2_cifar")
    model.add(layers.InputLayer(input_shape=(32, 32, 3), name="image"))
    model.add(layers.Rescaling(1 / 127.5, offset=-1.0, name="pixels"))
    model.add(layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem"))
    model.add(layers.BatchNormalization())
    model.add(layers.ReLU(6.0))
    for index, (filters, stride) in enumerate([(64, 1), (128, 2), (128, 1), (256, 2), (256, 1)]):
        model.add(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                         name=f"dw{index}"))
        model.add(layers.BatchNormalization())
        model.add(layers.ReLU(6.0))
        model.add(layers.Conv2D(filters, 1, use_bias=False, name=f"pw{index}"))
        model.add(layers.BatchNormalization())
        model.add(layers.ReLU(6.0))
    model.add(layers.GlobalAveragePooling2D())
    model.add(layers.Dropout(0.2))
    model.add(layers.Dense(10, activation="softmax", name="scores"))
    return model


def child(data: str, out: str, epochs: int) -> int:
    """Train and save (runs with TF_USE_LEGACY_KERAS=1)."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    from edgecv.data import load_dataset

    dataset = load_dataset(data, 32, 32, 3, seed=0)
    keras.utils.set_random_seed(0)
    model = build(keras)
    steps = len(dataset.train) // 64
    model.compile(optimizer=keras.optimizers.Adam(
                      keras.optimizers.schedules.CosineDecay(2e-3, epochs * steps)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    def augment(x, y):
        x = tf.image.random_flip_left_right(tf.cast(x, tf.float32))
        x = tf.image.random_crop(tf.pad(x, [[4, 4], [4, 4], [0, 0]], mode="REFLECT"),
                                 (32, 32, 3))
        return x, y

    train = (tf.data.Dataset.from_tensor_slices((dataset.train.x, dataset.train.y))
             .shuffle(len(dataset.train), seed=0).map(augment, num_parallel_calls=tf.data.AUTOTUNE)
             .batch(64, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    val = (dataset.val.x.astype(np.float32), dataset.val.y)
    start = time.perf_counter()
    history = model.fit(train, epochs=epochs, validation_data=val, verbose=2)
    seconds = time.perf_counter() - start
    test_accuracy = float((model.predict(dataset.test.x.astype(np.float32), verbose=0).argmax(1)
                           == dataset.test.y).mean())
    model.save(out)  # HDF5 by the .h5 suffix, optimizer state included
    print(json.dumps({"model": out, "params": int(model.count_params()), "epochs": epochs,
                      "train_images": len(dataset.train), "val_accuracy":
                      round(float(history.history["val_accuracy"][-1]), 4),
                      "test_accuracy": round(test_accuracy, 4),
                      "training_s": round(seconds, 1), "tf_keras": keras.__version__}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 class folders or archive")
    parser.add_argument("--out", required=True, help="the .h5 file to write")
    parser.add_argument("--epochs", type=int, default=15, help="default 15")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.out.endswith(".h5"):
        parser.error("--out must end in .h5 (a Keras 2 whole-model file)")
    if args.child:
        return child(args.data, args.out, args.epochs)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.call([sys.executable, __file__,
                            "--data", args.data, "--out", str(Path(args.out)),
                            "--epochs", str(args.epochs), "--child"], env=env)


if __name__ == "__main__":
    sys.exit(main())
