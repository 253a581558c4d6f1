"""airnet: a photo classifier that learns a lot per CPU-minute, after airbench (Jordan 2024).

Keller Jordan's "94% on CIFAR-10 in 3.29 seconds on a single GPU" trains a small VGG-like net
to 94% in ten epochs. Its facts carried over here, written afresh in Keras (the paper's code is
PyTorch):

- a **whitening stem**: a frozen 2x2 convolution (no padding) whose filters are the eigenvectors
  of the training images' 2x2 patch covariance, scaled by 1/sqrt(eigenvalue) and used with both
  signs; :func:`init_whitening` sets them from the training data before the first step (the
  trainer calls it for any model with a layer named ``"whiten"``);
- three blocks of conv3x3 -> max-pool 2 -> BatchNorm -> activation -> conv3x3 -> BatchNorm ->
  activation, widths 64/256/256, convs without bias, BatchNorm without a learned scale (the
  conv before it makes the scale redundant) and with a fast moving average (momentum 0.6);
- global max pooling and a bias-free classifier whose logits are scaled down (airbench: 1/9;
  David Page's ResNet-9 recipe: 1/8, the default here).

With the defaults at 32x32x3 and 10 classes: 1.97 M parameters and 0.12 G MACs. Every op is a
TFLite builtin with an int8 kernel (CONV_2D, MAX_POOL_2D, GELU or RELU, REDUCE_MAX, MUL,
FULLY_CONNECTED, SOFTMAX).
"""

from __future__ import annotations

from edgecv.errors import UsageError
from edgecv.models._checks import positive_ints, positive_number

ACTIVATIONS = ("gelu", "relu")
WHITEN_KERNEL = 2


def airnet(input_shape, num_classes, widths=(64, 256, 256), activation: str = "relu",
           whiten: bool = True, logit_scale: float = 0.125, dirac: bool = True):
    """airnet with ``widths`` per block (3 positive integers, default (64, 256, 256)),
    ``activation`` ``relu`` (default) or ``gelu`` (airbench's; its exact form, which
    tf2onnx exports as an Erfc op ONNX does not have), the whitening stem (``whiten=True``) or
    a plain trainable 3x3 stem conv of the same width in its place, and the pooled features
    multiplied by ``logit_scale`` (default 0.125) before the classifier: the logits' scale, which
    also divides the classifier's effective learning rate by its square (1 for none).
    ``dirac=True`` starts each block conv's first ``in_channels`` filters as the identity
    (airbench's Dirac initialisation, the default; the other filters keep Keras' default).
    Its identity channels keep some BatchNormalization variances small: the int8 file then
    needs the BatchNormalization after each pool folded into the conv before it, which
    ``edgecv convert`` does (:mod:`edgecv.converters.fuse`; unfolded, a 30-minute CIFAR-10
    run's int8 file lost 3.5 pp)."""
    widths = positive_ints("widths", widths, 3, "block")
    if activation not in ACTIVATIONS:
        raise UsageError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                         f"received activation={activation!r}.")
    logit_scale = positive_number("logit_scale", logit_scale)
    for name, value in (("whiten", whiten), ("dirac", dirac)):
        if not isinstance(value, bool):
            raise UsageError(f"{name} must be True or False, received {name}={value!r}.")
    import keras
    from keras import layers

    channels = input_shape[-1]
    stem_width = 2 * WHITEN_KERNEL * WHITEN_KERNEL * channels

    def act(x, name):
        if activation == "gelu":
            return layers.Activation("gelu", name=name)(x)
        return layers.ReLU(name=name)(x)

    def conv(x, width, name):
        return layers.Conv2D(width, 3, padding="same", use_bias=False, name=name)(x)

    def bn(x, name):
        # Keras' momentum is the weight of the old average: PyTorch's 0.6 is Keras' 0.4.
        return layers.BatchNormalization(momentum=0.4, epsilon=1e-5, scale=False, name=name)(x)

    inputs = keras.Input(input_shape, name="input")
    if whiten:
        x = layers.Conv2D(stem_width, WHITEN_KERNEL, padding="valid", use_bias=False,
                          trainable=False, name="whiten")(inputs)
    else:
        x = conv(inputs, stem_width, "stem")
    x = act(x, "stem_act")
    for block, width in enumerate(widths, start=1):
        name = f"block{block}"
        x = conv(x, width, f"{name}_conv1")
        x = layers.MaxPooling2D(name=f"{name}_pool")(x)
        x = act(bn(x, f"{name}_bn1"), f"{name}_act1")
        x = conv(x, width, f"{name}_conv2")
        x = act(bn(x, f"{name}_bn2"), f"{name}_act2")
    x = layers.GlobalMaxPooling2D(name="gmp")(x)
    if logit_scale != 1.0:
        x = layers.Rescaling(logit_scale, name="logit_scale")(x)
    outputs = layers.Dense(num_classes, activation="softmax", use_bias=False, name="scores")(x)
    model = keras.Model(inputs, outputs, name="airnet")
    if dirac:
        for block in range(1, len(widths) + 1):
            for index in (1, 2):
                set_dirac(model.get_layer(f"block{block}_conv{index}"))
    return model


def set_dirac(conv) -> None:
    """Make the first ``in_channels`` filters of a 'same'-padded odd-sized ``conv`` pass their
    own input channel through unchanged (a Dirac delta at the kernel's centre)."""
    import numpy as np

    kernel = conv.get_weights()[0]  # (kh, kw, in, out)
    kh, kw, channels, filters = kernel.shape
    identity = min(channels, filters)
    kernel[:, :, :, :identity] = 0.0
    kernel[kh // 2, kw // 2, np.arange(identity), np.arange(identity)] = 1.0
    conv.set_weights([kernel])


def init_whitening(layer, images, *, max_patches: int = 200_000, eps: float = 5e-4,
                   seed: int = 0) -> None:
    """Set the frozen ``"whiten"`` conv's filters from ``images`` (N, H, W, C float, normalised as
    the model sees them): the eigenvectors of the 2x2 patch covariance over at most
    ``max_patches`` random patches, divided by sqrt(eigenvalue + ``eps``), with both signs, so
    its outputs are decorrelated with unit variance (before the activation)."""
    import numpy as np

    images = np.asarray(images, dtype=np.float32)
    k = WHITEN_KERNEL
    n, height, width, channels = images.shape
    rng = np.random.default_rng(seed)
    count = min(max_patches, n * (height - k + 1) * (width - k + 1))
    idx = rng.integers(0, n, count)
    rows = rng.integers(0, height - k + 1, count)
    cols = rng.integers(0, width - k + 1, count)
    offsets = np.arange(k)
    patches = images[idx[:, None, None], rows[:, None, None] + offsets[None, :, None],
                     cols[:, None, None] + offsets[None, None, :]]  # (count, k, k, C)
    patches = patches.reshape(count, -1).astype(np.float64)
    patches -= patches.mean(axis=0)
    covariance = patches.T @ patches / count
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    filters = eigenvectors / np.sqrt(np.maximum(eigenvalues, 0.0) + eps)  # columns
    filters = np.concatenate([filters, -filters], axis=1)  # (k*k*C, 2*k*k*C)
    kernel = filters.reshape(k, k, channels, 2 * k * k * channels).astype(np.float32)
    layer.set_weights([kernel])
