"""mobilenet_v2: keras.applications MobileNetV2 as a nested "base" plus a small softmax head."""

from __future__ import annotations

from pathlib import Path

from edgecv.errors import EdgecvError, UsageError

IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def mobilenet_v2(input_shape, num_classes, alpha: float = 0.35, weights: str | None = None,
                 dropout: float = 0.2):
    """MobileNetV2 (width ``alpha``, default 0.35) without its top, global average pooling,
    dropout (0.2) and a Dense softmax. ``weights``: None (random), "imagenet" (downloaded by
    Keras) or a path to a local base weights file. The base is the layer named "base"."""
    import keras
    from keras import layers

    if alpha <= 0:
        raise UsageError(f"alpha must be positive, received alpha={alpha}.")
    if not 0 <= dropout < 1:
        raise UsageError(f"dropout must be in [0, 1), received dropout={dropout}.")
    if weights is not None:
        if input_shape[2] != 3:
            raise UsageError(f"pretrained mobilenet_v2 weights need 3 channels, received "
                             f"input_shape={tuple(input_shape)}; use --channels 3.")
        if alpha not in IMAGENET_ALPHAS:
            raise UsageError(f"pretrained mobilenet_v2 weights exist for alpha in "
                             f"{list(IMAGENET_ALPHAS)}, received alpha={alpha}.")
    local = weights not in (None, "imagenet")
    if local and not Path(weights).is_file():
        raise UsageError(f"weights file '{weights}' does not exist.")

    def build_base(base_weights):
        return keras.applications.MobileNetV2(input_shape=tuple(input_shape), alpha=alpha,
                                              include_top=False, weights=base_weights,
                                              pooling="avg", name="base")

    if weights == "imagenet":
        try:
            base = build_base("imagenet")
        except Exception as exc:  # keras.utils.get_file wraps every download failure in Exception
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise EdgecvError(
                f"could not download ImageNet weights for mobilenet_v2 ({reason}). This machine "
                "looks offline: download them once with internet access (Keras caches them in "
                "~/.keras/models/) or pass --weights PATH to a local weights file."
            ) from exc
    else:
        base = build_base(None)
        if local:
            try:
                base.load_weights(str(weights))
            except (ValueError, OSError) as exc:
                raise UsageError(f"cannot load base weights from '{weights}': {exc}"[:300]) from exc

    if weights is None:
        # keras.applications uses BatchNorm momentum 0.999: on edge-sized datasets (tens of steps
        # per epoch) the moving statistics used at inference lag far behind training, and the
        # model predicts garbage after a short run. 0.9 tracks them; pretrained bases keep theirs.
        for layer in base.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = 0.9
    inputs = keras.Input(input_shape, name="input")
    x = base(inputs)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2")
