"""The Keras reference: the trained model itself, run by TensorFlow (training side only).

This is what every artifact is compared with, in accuracy and in speed. Loading goes through
``edgecv.modelfile.keras_file.load_keras_model`` (``safe_mode=True``: code stored in the file
never runs). ``run`` is a plain model call, ``model(x, training=False)``, what a Keras user deploys
without edgecv, in one ``tf.function`` traced once for every batch size. Targets: ``cpu``,
``gpu`` (TensorFlow's first GPU) and ``tpu`` (the model built under ``TPUStrategy`` and run with
``predict_on_batch``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgecv.card import ModelCard
from edgecv.io import size_on_disk
from edgecv.preprocessing import Preprocessing
from edgecv.rundir import RunDir
from edgecv.errors import BackendUnavailable
from edgecv.runtime.base import Backend


def run_card(path: Path) -> ModelCard | None:
    """The card of a run's ``model.keras``, from the ``config.json`` written beside it."""
    config_path = RunDir(Path(path).parent).config
    if not config_path.is_file():
        return None
    try:
        config = json.loads(config_path.read_text())
        return ModelCard(labels=list(config["labels"]),
                         preprocessing=Preprocessing.from_dict(config["preprocessing"]),
                         format="keras", source_run=str(Path(path).parent.resolve()))
    except (ValueError, KeyError, TypeError):
        return None


class KerasBackend(Backend):
    """A Keras model (``.keras``, ``.h5``, ``.json`` + ``weights``) or a SavedModel directory on
    TensorFlow (``threads`` sets TF's intra-op threads, only before TensorFlow first runs an op;
    ``custom_objects`` is a ``FILE.py[:Names]`` spec)."""

    name = "keras"

    def __init__(self, path: Path, *, threads: int | None = None, target: str = "cpu",
                 card: ModelCard | None = None, custom_objects: str | None = None,
                 weights: str | None = None):
        from edgecv.modelfile.keras_file import load_keras_model
        from edgecv.modelfile.kinds import is_saved_model
        from edgecv.runtime.targets import probe
        from edgecv.tf_import import import_tensorflow

        reason = probe(target, "keras")
        if reason:
            raise BackendUnavailable(f"Keras on {target}", reason)
        tf = import_tensorflow()
        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # TensorFlow already started; its thread pools are fixed
                pass
        objects = None
        if custom_objects:
            from edgecv.modelfile.keras_file import load_custom_objects

            objects = load_custom_objects(custom_objects)
        self._tf = tf
        self._strategy = None
        def load():
            if is_saved_model(Path(path)):  # its serving signature, with a Keras-like predict
                from edgecv.modelfile.saved_model import load_saved_model

                return load_saved_model(path)
            return load_keras_model(path, objects, weights=weights)

        if target == "tpu":
            from edgecv.runtime.tpu import tpu_strategy

            self._strategy, _ = tpu_strategy()
            with self._strategy.scope():
                self.model = load()
        else:
            with tf.device("/GPU:0" if target == "gpu" else "/CPU:0"):
                self.model = load()
        super().__init__(Path(path), card or run_card(Path(path)), target=target, threads=threads)
        self.size_bytes = size_on_disk(path) + (size_on_disk(weights) if weights else 0)
        self._saved_model = is_saved_model(Path(path))
        self._device = "/GPU:0" if target == "gpu" else "/CPU:0"
        self._predict = None
        if not self._saved_model and self._strategy is None:
            self._predict = _predict_function(tf, self.model)

    @property
    def input_shape(self) -> tuple[int, ...]:
        self.check_open()
        return tuple(-1 if d is None else int(d) for d in self.model.input_shape)

    def io_details(self) -> list[tuple[str, str]]:
        self.check_open()
        return [("input", f"{list(self.model.input_shape)} float32"),
                ("output", f"{list(self.model.output_shape)} float32")]

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self._predict is not None:
            with self._tf.device(self._device):
                return np.asarray(self._predict(batch), np.float32)
        call = self.model.predict if self._saved_model else self.model.predict_on_batch
        if self._strategy is not None:  # Keras distributes predict_on_batch over the TPU cores
            return np.asarray(call(batch), np.float32)
        with self._tf.device(self._device):
            return np.asarray(call(batch), np.float32)

    def _release(self) -> None:
        # The model holds the weights and its compiled predict function; the strategy (TPU)
        # holds the devices. Keras' global session is left alone: other models may live in it.
        self.model = None
        self._predict = None
        self._strategy = None


def _predict_function(tf, model):
    """``model(batch, training=False)`` as one graph for every batch size: its input signature
    leaves the batch dimension open, so TensorFlow traces it once. Keras' ``predict_on_batch``
    traced its step again for the second batch shape it saw (the bench's batch 1, then chunks
    of 64), and TensorFlow counts the traces of every Keras model's predict step in a process
    together (they share its code): after training and conversion, a pipeline warned about
    retracing while benchmarking. XLA as Keras' predict would use it (on a GPU, not on a CPU)."""
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    jit_compile = bool(getattr(model, "jit_compile", False))
    return tf.function(lambda batch: model(batch, training=False), input_signature=[spec],
                       jit_compile=jit_compile)
