"""mobilenet_v2: keras.applications MobileNetV2 as a nested "base" plus a small softmax head.

The base is a nested model named ``"base"`` so training code can freeze and unfreeze it with
``model.get_layer("base").trainable``; local weights files hold the base only
(``model.get_layer("base").save_weights("base.weights.h5")`` writes one).
"""

from __future__ import annotations

import os
import urllib.error
import warnings
from pathlib import Path

from edgecv.errors import EdgecvError, UsageError, first_line
from edgecv.models._checks import fraction, positive_number

# The widths keras.applications publishes ImageNet weights for.
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
WEIGHTS_SUFFIXES = (".h5", ".keras")  # .weights.h5 ends in .h5


def mobilenet_v2(input_shape, num_classes, alpha: float = 0.35, weights: str | None = None,
                 dropout: float = 0.2):
    """MobileNetV2 of width ``alpha`` (default 0.35) without its top, global average pooling,
    dropout (default 0.2) and a Dense softmax named "scores".

    ``weights``: None (default, random init), "imagenet" (downloaded by Keras into
    ~/.keras/models/ on first use; needs 3 channels and an alpha in ``IMAGENET_ALPHAS``) or the
    path of a local ``.weights.h5``/``.h5``/``.keras`` file with base weights (3 channels).
    """
    alpha = positive_number("alpha", alpha)
    dropout = fraction("dropout", dropout)
    local = _check_weights(weights, input_shape, alpha)
    import keras
    from keras import layers

    def build_base(base_weights):
        return keras.applications.MobileNetV2(input_shape=tuple(input_shape), alpha=alpha,
                                              include_top=False, weights=base_weights,
                                              pooling="avg", name="base")

    if weights == "imagenet":
        try:
            base = build_base("imagenet")
        except Exception as exc:
            if not _is_download_failure(exc):
                raise
            reason = first_line(exc)
            raise EdgecvError(
                f"could not download ImageNet weights for mobilenet_v2 ({reason}). This machine "
                "looks offline: download them once with internet access (they are cached in "
                "~/.keras/models/) or pass `weights` PATH to a local weights file."
            ) from exc
    else:
        base = build_base(None)
        if local is not None:
            try:
                with warnings.catch_warnings():
                    # Keras 3.15 warns "Skipping nested container at '_operations_by_depth/...'"
                    # ~70 times while loading a file it has just written: a false positive (those
                    # containers mirror `layers`, which load), keras-team/keras#23021, fixed by
                    # #23022. tests/test_models.py checks that every base weight round-trips.
                    warnings.filterwarnings("ignore", category=UserWarning,
                                            message="Skipping nested container at "
                                                    "'_operations_by_depth/")
                    base.load_weights(str(local))
            except (ValueError, OSError, KeyError) as exc:
                raise UsageError(
                    f"cannot load mobilenet_v2 base weights from '{weights}' into a base of "
                    f"alpha={alpha}, input_shape={tuple(input_shape)}: {exc}"[:400]
                ) from exc

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


def _check_weights(weights, input_shape, alpha: float) -> Path | None:
    """Validate ``weights`` without TensorFlow; return the local file, if one was given."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise UsageError(f"weights must be None, 'imagenet' or a file path, "
                         f"received weights={weights!r}.")
    if input_shape[2] != 3:
        raise UsageError(f"pretrained mobilenet_v2 weights need 3 channels (RGB), received "
                         f"input_shape={tuple(input_shape)}; use `channels=3`.")
    if weights == "imagenet":
        if alpha not in IMAGENET_ALPHAS:
            raise UsageError(f"ImageNet mobilenet_v2 weights exist for alpha in "
                             f"{list(IMAGENET_ALPHAS)}, received alpha={alpha}.")
        return None
    path = Path(weights)
    if not path.is_file():
        raise UsageError(f"weights file '{weights}' does not exist; "
                         f"give 'imagenet' or the path of a base weights file.")
    if not path.name.endswith(WEIGHTS_SUFFIXES):
        raise UsageError(f"weights file '{weights}' must end in .weights.h5, .h5 or .keras "
                         f"(saved with model.get_layer('base').save_weights).")
    return path


def _is_download_failure(exc: BaseException) -> bool:
    # keras.utils.get_file re-raises urllib errors as a bare Exception("URL fetch failure on ...").
    return (isinstance(exc, (urllib.error.URLError, ConnectionError, TimeoutError))
            or "URL fetch failure" in str(exc))
