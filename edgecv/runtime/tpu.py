"""Is there a Cloud TPU here, and a TPUStrategy on it (TensorFlow imported only to connect).

A TPU is assumed only on evidence TensorFlow can use: ``TPU_NAME`` / ``COLAB_TPU_ADDR``, or a TPU
VM's device nodes (or ``TPU_ACCELERATOR_TYPE``) *together with* libtpu. A device node alone is
not a TPU: ``/dev/accel*`` and ``/dev/vfio/N`` exist for other accelerators and any PCI
passthrough, and on such a machine ``bench`` must report the target unavailable, not fail.
Used by the Keras backend (``--target tpu``) and by training (``--strategy tpu``).
"""

from __future__ import annotations

import glob
import importlib.util
import os

from edgecv.errors import StrategyUnavailable, first_line

# Device nodes a Cloud TPU VM exposes (v2-v4: /dev/accel*, v5e and later: /dev/vfio/N). Neither
# is TPU-specific on its own (vfio passes through any PCI device), so they count only together
# with libtpu, the runtime TensorFlow needs to drive a local TPU at all.
TPU_DEVICE_PATTERNS = ("/dev/accel*", "/dev/vfio/[0-9]*")


def libtpu_installed() -> bool:
    """True if the TPU runtime is there: the ``libtpu`` package (what ``tensorflow-tpu``
    depends on) or a ``TPU_LIBRARY_PATH`` naming an existing file."""
    library = os.environ.get("TPU_LIBRARY_PATH")
    if library and os.path.isfile(library):
        return True
    try:
        return importlib.util.find_spec("libtpu") is not None
    except (ImportError, ValueError):
        return False


def _tpu_devices() -> list[str]:
    return sorted(path for pattern in TPU_DEVICE_PATTERNS for path in glob.glob(pattern))


def _tpu_evidence() -> tuple[str | None, str]:
    """``(address, why)``: the TPU to connect to, or None and the reason no TPU is assumed."""
    for variable in ("TPU_NAME", "COLAB_TPU_ADDR"):
        if os.environ.get(variable):
            return os.environ[variable], f"{variable} is set"
    devices = _tpu_devices()
    # TPU_ACCELERATOR_TYPE: set by GKE / the TPU VM images next to the metadata server's entry.
    accelerator = os.environ.get("TPU_ACCELERATOR_TYPE")
    if devices or accelerator:
        seen = ", ".join(devices[:3]) if devices else f"TPU_ACCELERATOR_TYPE={accelerator}"
        if libtpu_installed():
            return "local", f"{seen} with libtpu"
        return None, (f"no TPU found: {seen} exists but libtpu is not installed, so it is not a "
                      "TPU TensorFlow can use (on a Cloud TPU VM: pip install tensorflow-tpu)")
    return None, ("no TPU found: TPU_NAME and COLAB_TPU_ADDR are unset and there is no TPU device "
                  "(/dev/accel*, /dev/vfio/N with libtpu); run on a Cloud TPU VM")


def tpu_address() -> str | None:
    """Where a TPU would be: TPU_NAME / COLAB_TPU_ADDR, "local" on a TPU VM (a TPU device node or
    TPU_ACCELERATOR_TYPE, *and* libtpu installed), else None.

    Checked before touching TPUClusterResolver, which otherwise probes the GCE metadata
    server over the network on machines that have no TPU at all.
    """
    return _tpu_evidence()[0]


def tpu_missing_reason() -> str | None:
    """Why :func:`tpu_address` found no TPU (one line), or None when it found one."""
    address, why = _tpu_evidence()
    return None if address else why


def tpu_strategy():
    """Connect to the TPU and return ``(TPUStrategy, description)``; raise StrategyUnavailable
    (``--strategy tpu: ...``) when there is none or it cannot be initialised."""
    import tensorflow as tf

    tpu_name, why = _tpu_evidence()
    if tpu_name is None:
        raise StrategyUnavailable(
            f"`strategy='tpu'`: {why}. Set TPU_NAME to a reachable TPU, or use `strategy` "
            "default on CPU/GPU."
        )
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_name)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:
        reason = first_line(exc)
        raise StrategyUnavailable(
            f"`strategy='tpu'`: the TPU '{tpu_name}' could not be initialised ({reason})."
        ) from exc
    strategy = tf.distribute.TPUStrategy(resolver)
    return strategy, f"TPU with {strategy.num_replicas_in_sync} core(s)"
