"""``--precision``: train in mixed bfloat16 where the hardware multiplies bfloat16 natively.

Mixed bfloat16 (Keras' ``mixed_bfloat16`` policy) keeps every variable in float32 and computes
the layers in bfloat16; the classifier (the registry's ``"scores"`` layer) stays float32 so the
softmax and the loss keep their precision. On x86 CPUs with AMX-BF16 or AVX512-BF16, oneDNN runs
bfloat16 convolutions in hardware (``train_throughput_cifar`` measures the gain); without them
bfloat16 is emulated and slower than float32, so ``auto`` picks it only where it pays.

Training precision never reaches an artifact: the saved ``model.keras`` is rebuilt in float32
with the trained weights (:func:`as_float32`), so conversion, verification and the test
accuracy all see the float32 model that is deployed.
"""

from __future__ import annotations

from typing import Callable

# /proc/cpuinfo flags of x86 CPUs whose oneDNN kernels multiply bfloat16 natively.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
KERAS_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def resolve_precision(requested: str, *, flags: set[str], gpus: int, strategy: str) -> tuple[str, str]:
    """``(precision, reason)``: ``requested`` as given, or for ``auto`` the one that pays here.

    TPUs compute in bfloat16 natively; a GPU keeps float32 (mixed float16 is not offered);
    a CPU trains in bfloat16 only with native bfloat16 instructions.
    """
    if requested != "auto":
        return requested, "--precision " + requested
    if strategy == "tpu":
        return "bfloat16", "auto: TPUs multiply bfloat16 natively"
    if gpus:
        return "float32", "auto: float32 on GPU"
    native = [flag for flag in NATIVE_BF16_FLAGS if flag in flags]
    if native:
        return "bfloat16", f"auto: this CPU has {', '.join(native)} (native bfloat16)"
    return "float32", "auto: this CPU has no native bfloat16 (AMX-BF16 / AVX512-BF16)"


def build_in_precision(build: Callable[[], object], precision: str):
    """``build()`` under ``precision``'s Keras policy; the global policy is restored after.

    In mixed bfloat16 the ``"scores"`` layer computes in float32 (softmax and loss precision).
    """
    import keras

    if precision == "float32":
        return build()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(KERAS_POLICY[precision])
    try:
        model = build()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.get_layer("scores").dtype_policy = "float32"
    return model


def as_float32(model, build: Callable[[], object]):
    """``model`` itself if it computes in float32, else a float32 rebuild (``build()``) holding
    its weights (variables are float32 under every policy, so nothing is rounded)."""
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model.layers):
        return model
    fresh = build()
    fresh.set_weights(model.get_weights())
    return fresh
