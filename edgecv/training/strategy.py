"""tf.distribute strategies for ``--strategy default|mirrored|multiworker|tpu``.

``EDGECV_CPU_DEVICES=N`` splits the host CPU into N logical devices before TensorFlow starts,
so MirroredStrategy can be exercised (and tested) on a machine without GPUs.

``multiworker`` reads ``TF_CONFIG`` (cluster.worker = every worker's host:port, task = this
process). ``EDGECV_MULTIWORKER_TIMEOUT`` (seconds, default 300) bounds how long a worker waits
for its peers to connect before it gives up with one error line. ``tpu``: TPU detection and
the TPUStrategy live in :mod:`edgecv.runtime.tpu` (the Keras backend uses them too).
"""

from __future__ import annotations

import faulthandler
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass

from edgecv.errors import StrategyUnavailable
from edgecv.runtime.tpu import tpu_strategy

MULTIWORKER_TIMEOUT_ENV = "EDGECV_MULTIWORKER_TIMEOUT"
DEFAULT_MULTIWORKER_TIMEOUT_S = 300.0


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


@dataclass(frozen=True)
class WorkerRole:
    """This process's place in a ``TF_CONFIG`` cluster."""

    task_type: str  # "chief" or "worker"
    index: int
    chiefs: tuple[str, ...]  # host:port of the (at most one) chief
    workers: tuple[str, ...]  # host:port of every worker

    @property
    def num_workers(self) -> int:
        """Processes that train, the chief included."""
        return len(self.chiefs) + len(self.workers)

    @property
    def address(self) -> str:
        return (self.chiefs if self.task_type == "chief" else self.workers)[self.index]

    @property
    def peers(self) -> list[str]:
        return [a for a in self.chiefs + self.workers if a != self.address]

    @property
    def is_chief(self) -> bool:
        """The task that writes the run: the chief, else worker 0 (tf.distribute's rule)."""
        return self.task_type == "chief" or (not self.chiefs and self.index == 0)


EXAMPLE_TF_CONFIG = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


def multiworker_role(raw: str | None = None) -> WorkerRole:
    """Parse ``TF_CONFIG`` (or ``raw``); raise StrategyUnavailable naming what is wrong."""
    raw = os.environ.get("TF_CONFIG") if raw is None else raw
    if not raw:
        raise StrategyUnavailable(
            f"`strategy='multiworker'` needs the TF_CONFIG environment variable (e.g. "
            f"{EXAMPLE_TF_CONFIG}) on every worker."
        )
    try:
        spec = json.loads(raw)
        cluster, task = spec["cluster"], spec["task"]
        chiefs = list(cluster.get("chief", []))
        workers = list(cluster["worker"])
        task_type, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StrategyUnavailable(
            f"TF_CONFIG is not valid multi-worker JSON ({exc!r}, received {raw[:200]!r}); it needs "
            f"cluster.worker and task.type/index, e.g. {EXAMPLE_TF_CONFIG}."
        ) from exc
    members = {"worker": workers, "chief": chiefs}
    if len(chiefs) > 1 or task_type not in members or not 0 <= index < len(members[task_type]):
        raise StrategyUnavailable(
            f"TF_CONFIG task {task_type}/{index} is not in its cluster ({len(workers)} worker(s), "
            f"{len(chiefs)} chief(s)); task.type must be worker or chief and task.index below "
            "that count."
        )
    if len(set(chiefs + workers)) != len(chiefs + workers):
        raise StrategyUnavailable(f"TF_CONFIG lists an address twice: {chiefs + workers}.")
    return WorkerRole(task_type, index, tuple(chiefs), tuple(workers))


def multiworker_timeout() -> float:
    """Seconds a worker waits for its peers (``EDGECV_MULTIWORKER_TIMEOUT``, default 300)."""
    raw = os.environ.get(MULTIWORKER_TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_MULTIWORKER_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise StrategyUnavailable(
            f"{MULTIWORKER_TIMEOUT_ENV} must be a positive number of seconds, received {raw!r}.")
    return seconds


# Prints the message as soon as the faulthandler timer fires (its dump's first byte arrives on
# our stdin); a clean EOF means the workers connected in time.
_DEADLINE_REPORTER = "import sys\nif sys.stdin.buffer.read(1):\n    sys.stderr.write(sys.argv[1] + '\\n')\n"


@contextmanager
def _startup_deadline(seconds: float, message: str):
    """Exit the process with code 1 and print ``error: message`` if the block outlasts ``seconds``.

    MultiWorkerMirroredStrategy() blocks in C++ (holding the GIL, ignoring SIGTERM) until every
    peer has connected, with no timeout of its own, so neither a Python thread nor a signal
    handler can interrupt it. faulthandler's timer runs in a C thread and can: it ends the
    process with exit code 1 after writing a traceback, which goes to a tiny reporter process
    that turns it into one error line.
    """
    reporter = subprocess.Popen([sys.executable, "-c", _DEADLINE_REPORTER, f"error: {message}"],
                                stdin=subprocess.PIPE)
    faulthandler.dump_traceback_later(seconds, exit=True, file=reporter.stdin)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        reporter.stdin.close()
        reporter.wait()


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
        role = multiworker_role()
        timeout = multiworker_timeout()
        message = (f"`strategy='multiworker'`: {role.task_type} {role.index} waited {timeout:g} s "
                   f"for its peers ({', '.join(role.peers)}) to connect; start every worker with the "
                   f"same cluster in TF_CONFIG and check that the ports are open "
                   f"({MULTIWORKER_TIMEOUT_ENV} sets the wait)")
        with _startup_deadline(timeout, message):
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        return strategy, (f"multi-worker mirrored over {role.num_workers} worker(s), "
                          f"{strategy.num_replicas_in_sync} replica(s); this is "
                          f"{role.task_type} {role.index}")
    if name == "tpu":
        return tpu_strategy()
    raise ValueError(f"unknown strategy {name!r}")  # validate() guarantees this is unreachable
