"""A Keras model's int8 form: the weights of its convolutions on the image put on the int8 grid by
rounding chosen for the data, not to nearest.

Per-channel int8 keeps each output channel's weights as ``scale * k``, ``k`` an integer up to
127, ``scale = max|w| / 127``. Rounding each weight to nearest leaves an error ``d = w - scale *
k`` whose effect on the channel's output is ``d . x`` for an input patch ``x``. On a convolution
that reads the image itself, ``x`` is pixels: large, mostly their mean, so ``d . x`` is large next
to the small outputs of a filter that responds to detail. airnet's whitening stem is the extreme
case: its filters are the eigenvectors of the patch covariance divided by sqrt(eigenvalue), and
on a 30-minute CIFAR-10 model its weights rounded to nearest alone cost 1.7% top-1 agreement
while every other layer's weights together cost 0.16%.

Here each such channel's integers are chosen to minimise ``E[(d . x)^2] = d' C d`` over the
calibration images' patches (``C`` their second moment, mean included): from the nearest
integers, one step of one weight at a time, the best step each time, while the error falls (the
largest weight stays at 127 so the converter computes the same scale). The float weights handed
to the converter are ``scale * k``: it rounds them to exactly those integers. Nagel et al.
("Up or down? Adaptive rounding for post-training quantization", 2020) optimise the rounding of
every layer against its outputs; this is the closed form of that for one linear layer, used where
measured to matter. Only the int8 files use it (TFLite int8, int16x8's int8 weights, the Edge TPU
and the microcontroller export): the float files keep the weights as trained.
"""

from __future__ import annotations

import numpy as np

# a convolution "reads the image" when its input has at most this many channels (gray, RGB, RGBA)
IMAGE_CHANNELS = 4
MAX_PATCHES = 200_000  # patches the second moment is estimated from (random, seed 0)
MAX_STEPS = 10_000  # one-weight steps per layer at most (each is one step of every channel)


def int8_form(model, calibration: np.ndarray) -> tuple[object, list[str]]:
    """``(model, lines)``: a copy of ``model`` whose convolutions on the image (``Conv2D`` with at
    most :data:`IMAGE_CHANNELS` input channels, no groups or dilation) hold weights on the int8
    grid chosen for ``calibration`` (normalised images), and one line per layer saying by how
    much the output error fell; ``(model, [])`` as it is when none qualifies or the model is
    not a Keras model Keras can copy."""
    import keras

    if not hasattr(model, "get_config") or not hasattr(model, "layers"):
        return model, []
    stems = [layer for layer in model.layers if _reads_the_image(keras, layer)]
    if not stems:
        return model, []
    # keras.models.clone_model, not fuse._graph_copy: the committed int8 results were made from the
    # patches of the stem's first call in the clone's trace; on a --tta flip model that is not
    # the config's first call (the whitening error differs in the third digit), so changing it
    # means re-measuring int8_cifar_airnet.json, stem_int8.json, mcu_zoo.json's airnet row and
    # bench_cifar_airnet.json
    try:
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001  (subclassed, custom objects: left as it is)
        return model, []
    lines = []
    for layer in stems:
        inputs = _layer_inputs(keras, copy, layer.name, calibration)
        if inputs is None:
            continue
        weights = layer.get_weights()
        kernel, before, after = rounded_kernel(weights[0], _patches(layer, inputs))
        if after >= before:
            continue
        copy.get_layer(layer.name).set_weights([kernel, *weights[1:]])
        lines.append(f"{layer.name}: int8 weights rounded for the data (output error on the "
                     f"calibration patches {before:.3g} -> {after:.3g})")
    return (copy, lines) if lines else (model, [])


def rounded_kernel(kernel: np.ndarray, patches: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``(kernel on the int8 grid, error rounded to nearest, error chosen)``: ``kernel`` (h, w,
    in, out) as ``scale * k`` per output channel, ``k`` chosen to minimise the mean squared
    output error over ``patches`` (n, h*w*in); the errors are means over the channels."""
    shape = kernel.shape
    w = kernel.reshape(-1, shape[-1]).astype(np.float64)  # (d, out)
    scale = np.abs(w).max(axis=0) / 127
    live = scale > 0
    scale = np.where(live, scale, 1.0)
    p = np.asarray(patches, np.float64)
    second = p.T @ p / max(len(p), 1)  # (d, d)
    k = np.round(w / scale)
    fixed = np.abs(w).argmax(axis=0)  # the largest weight keeps |k| = 127: the same scale
    columns = np.arange(w.shape[1])

    def errors(k):
        d = w - scale * k
        return np.einsum("jc,jk,kc->c", d, second, d)

    before = errors(k)
    d = w - scale * k
    g = second @ d  # (d, out): the error's gradient, halved
    curvature = np.diag(second)[:, None] * scale ** 2
    for _ in range(MAX_STEPS):
        # the change of d'Cd for k_j -> k_j + t: -2 t scale g_j + scale^2 C_jj
        gain_up = -2 * scale * g + curvature
        gain_down = 2 * scale * g + curvature
        gain_up[(k + 1 > 127)] = np.inf
        gain_down[(k - 1 < -127)] = np.inf
        gain_up[fixed, columns] = gain_down[fixed, columns] = np.inf
        up, down = gain_up.min(axis=0), gain_down.min(axis=0)
        step = np.where(up <= down, 1, -1)
        best = np.minimum(up, down)
        moving = live & (best < -1e-12 * np.maximum(before, 1e-30))
        if not moving.any():
            break
        j = np.where(step > 0, gain_up.argmin(axis=0), gain_down.argmin(axis=0))[moving]
        c = columns[moving]
        t = step[moving]
        k[j, c] += t
        g[:, c] -= second[:, j] * (scale[c] * t)
    after = errors(k)
    k[:, ~live] = 0
    rounded = (scale * k).astype(np.float32).reshape(shape)
    return rounded, float(before[live].mean()), float(after[live].mean())


def _reads_the_image(keras, layer) -> bool:
    if type(layer) is not keras.layers.Conv2D or not layer.get_weights():
        return False
    config = layer.get_config()
    return (config.get("groups", 1) == 1 and tuple(config.get("dilation_rate", (1, 1))) == (1, 1)
            and config.get("data_format", "channels_last") == "channels_last"
            and layer.get_weights()[0].shape[2] <= IMAGE_CHANNELS)


def _layer_inputs(keras, model, name: str, calibration: np.ndarray) -> np.ndarray | None:
    """What the layer's first call reads, on ``calibration`` (``model``: a copy whose layers were
    first called in its own graph); None where Keras cannot say."""
    try:
        reader = keras.Model(model.inputs, model.get_layer(name).input)
        return np.asarray(reader.predict(calibration, batch_size=256, verbose=0))
    except (ValueError, AttributeError, TypeError):  # a call outside this graph, several inputs
        return None


def _patches(layer, inputs: np.ndarray) -> np.ndarray:
    """The convolution's input patches (n, h*w*in, in the kernel's order), at most
    :data:`MAX_PATCHES` of them, with the zeros ``same`` padding adds."""
    kh, kw = layer.kernel_size
    sh, sw = layer.strides
    x = inputs
    if layer.padding == "same":
        pads = []
        for size, k, s in ((x.shape[1], kh, sh), (x.shape[2], kw, sw)):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    windows = windows[:, ::sh, ::sw]  # (n, oh, ow, in, kh, kw)
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * x.shape[3])
    if len(patches) > MAX_PATCHES:
        patches = patches[np.random.default_rng(0).choice(len(patches), MAX_PATCHES,
                                                          replace=False)]
    return patches
