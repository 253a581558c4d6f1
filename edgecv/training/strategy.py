"""tf.distribute strategies for ``--strategy default|mirrored|multiworker|tpu``.

``EDGECV_CPU_DEVICES=N`` splits the host CPU into N logical devices before TensorFlow starts,
so MirroredStrategy can be exercised (and tested) on a machine without GPUs.
"""

from __future__ import annotations

import glob
import json
import os

from edgecv.errors import StrategyUnavailable


def _split_cpu(tf) -> None:
    wanted = os.environ.get("EDGECV_CPU_DEVICES")
    if not wanted:
        return
    count = int(wanted)
    cpus = tf.config.list_physical_devices("CPU")
    if count > 1 and cpus:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )


def tpu_address() -> str | None:
    """Where a TPU would be: TPU_NAME / COLAB_TPU_ADDR, "local" on a TPU VM, else None.

    Checked before touching TPUClusterResolver, which otherwise probes the GCE metadata
    server over the network on machines that have no TPU at all.
    """
    for variable in ("TPU_NAME", "COLAB_TPU_ADDR"):
        if os.environ.get(variable):
            return os.environ[variable]
    if glob.glob("/dev/accel*") or glob.glob("/dev/vfio/[0-9]*"):
        return "local"
    return None


def make_strategy(name: str):
    """Return ``(strategy, description)``; raise StrategyUnavailable when it cannot run here."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy(), "default (single device)"
    if name == "mirrored":
        _split_cpu(tf)
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return strategy, f"mirrored over {strategy.num_replicas_in_sync} device(s): {', '.join(devices)}"
    if name == "multiworker":
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            raise StrategyUnavailable(
                "--strategy multiworker needs the TF_CONFIG environment variable "
                '(e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}) on every worker.'
            )
        try:
            cluster = json.loads(raw)["cluster"]["worker"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StrategyUnavailable(
                f"TF_CONFIG is not valid multi-worker JSON ({exc!r}); it needs cluster.worker "
                "and task.type/index."
            ) from exc
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return strategy, f"multi-worker mirrored over {len(cluster)} worker(s)"
    if name == "tpu":
        tpu_name = tpu_address()
        if tpu_name is None:
            raise StrategyUnavailable(
                "--strategy tpu: no TPU found (TPU_NAME and COLAB_TPU_ADDR are unset and there is "
                "no /dev/accel* device). Run on a Cloud TPU VM or set TPU_NAME to a reachable TPU; "
                "use --strategy default on CPU/GPU."
            )
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_name)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise StrategyUnavailable(
                f"--strategy tpu: the TPU '{tpu_name}' could not be initialised ({reason})."
            ) from exc
        strategy = tf.distribute.TPUStrategy(resolver)
        return strategy, f"TPU with {strategy.num_replicas_in_sync} core(s)"
    raise ValueError(f"unknown strategy {name!r}")  # validate() guarantees this is unreachable
