"""``edgecv train``: data -> model -> run directory.

A run directory holds everything later steps need and nothing they must recompute::

    model.keras            the inference model (best validation epoch; no augmentation layers)
    labels.txt             one class name per line, in output order (config.json's "labels"
                           are what edgecv reads; class names cannot hold a line break)
    config.json            train options, preprocessing contract, data source and split seed
    split.json             the sample ids of train / val / test (indices or relative paths)
    history.csv            per-epoch metrics (Keras CSVLogger)
    training_curves.png    accuracy and loss, train vs validation
    confusion_matrix.png   test split
    metrics.json           test accuracy, per-class precision/recall, params, MACs, time, images/s
    logs/                  TensorBoard
    checkpoints/           best weights; backup/ while a run is in progress (for --resume)
"""

from __future__ import annotations

import math
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from edgecv import __version__
from edgecv.errors import UsageError, first_line
from edgecv.io import atomic_path, remove_stale_partials, write_json_atomic, write_text_atomic
from edgecv.preprocessing import Preprocessing
from edgecv.rundir import RunDir
from edgecv.tf_import import import_tensorflow, set_op_determinism
from edgecv.training.config import TrainConfig, default_run_dir, resolve, resolve_for_data
from edgecv.training.strategy import multiworker_role
from edgecv.training.recipe import (build_augmenter, learning_rate, make_callbacks,
                                    make_loss, make_optimizer, make_tf_dataset)


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict


# --xla -> Keras' compile(jit_compile=...)
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def compile_model(model, config: TrainConfig, rate) -> None:
    """Compile ``model`` for training with ``config``'s optimizer at ``rate`` (a float or a
    schedule), weight decay, label smoothing and --xla setting."""
    model.compile(optimizer=make_optimizer(config.optimizer, rate, config.weight_decay),
                  loss=make_loss(config.label_smoothing), metrics=["accuracy"],
                  jit_compile=JIT_COMPILE[config.xla])


def prepare_run_dir(config: TrainConfig, *, overwrite: bool, resume: bool,
                    resume_epochs: int | None = None) -> tuple[TrainConfig, Path]:
    """Pick the run directory and the config to use, refusing to clobber an existing run.

    With ``resume`` the run's saved config is used; ``resume_epochs`` may raise its epoch count.
    A run interrupted before its first backup (or after its last, before metrics.json) has
    nothing to continue from: its files are deleted (config.json kept) to start it again.
    Only a folder edgecv wrote is ever cleared (:func:`_clear_run_dir`), whatever the flags say.
    """
    if resume:
        if not config.out:
            raise UsageError("`resume` needs the run to continue: give `out` RUN_DIR or `name` NAME.")
        run_dir = Path(config.out)
        saved = TrainConfig.from_run(run_dir)
        remove_stale_partials(run_dir, recursive=True)  # what a killed run was writing
        if not RunDir(run_dir).backup.is_dir():
            if RunDir(run_dir).metrics.is_file():  # written last
                raise UsageError(f"run '{run_dir}' already finished; nothing to resume.")
            if saved.strategy == "multiworker":  # every worker must start again together
                raise UsageError(f"run '{run_dir}' has no backup to resume from; start it again.")
            _clear_run_dir(run_dir, keep_config=True, action="restart")
        epochs = max(saved.epochs, resume_epochs or 0)
        return replace(saved, epochs=epochs, out=str(run_dir)), run_dir
    config = resolve(config)
    run_dir = Path(config.out) if config.out else default_run_dir(config)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"output directory '{run_dir}' is a file; choose another `name`/`out`.")
    remove_stale_partials(run_dir)  # a folder that is empty but for a killed write
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UsageError(
                f"output directory '{run_dir}' already exists; pass `overwrite` to replace it, "
                "`resume` to continue it, or choose another `name`/`out`."
            )
        _clear_run_dir(run_dir, keep_config=False, action="overwrite")
    return replace(config, out=str(run_dir)), run_dir


def _clear_run_dir(run_dir: Path, *, keep_config: bool, action: str) -> None:
    """Delete a run's files, config.json last (or not at all), so that a process killed
    midway leaves a folder that --overwrite and --resume still recognise as an edgecv run.

    Refused (UsageError naming ``action``, nothing deleted) unless the folder is edgecv's: its
    config.json is the one ``edgecv train`` writes and it holds nothing else than what edgecv
    writes in a run (:meth:`RunDir.foreign_entries`). Runs of earlier versions pass the same
    test: their config.json always carried ``edgecv_version`` and ``train``. A project folder
    with a config.json of its own, or a run the user added files to, is left untouched.
    """
    run = RunDir(run_dir)
    if not run.is_run():
        raise UsageError(
            f"refusing to {action} '{run_dir}': it is not an edgecv run (no config.json written "
            "by edgecv train), and edgecv deletes only what it wrote; choose another `name`/`out`."
        )
    foreign = run.foreign_entries()
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise UsageError(
            f"refusing to {action} '{run_dir}': it holds '{foreign[0]}'{more}, which edgecv did "
            "not write, and edgecv deletes only what it wrote; move it out or choose another "
            "`name`/`out`."
        )
    for entry in run_dir.iterdir():
        if entry.name == run.config.name:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if not keep_config:
        run.config.unlink()


def _set_fine_tune_trainable(model, layers_to_train: int) -> None:
    """Unfreeze the top ``layers_to_train`` layers of the base; BatchNorm stays frozen."""
    import keras

    base = model.get_layer("base")
    base.trainable = True
    cutoff = max(0, len(base.layers) - layers_to_train)
    for index, layer in enumerate(base.layers):
        frozen = index < cutoff or isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = not frozen


def _work_around_keras_multiworker(model, strategy, batch) -> None:
    """Let Keras 3 (checked on 3.15) fit/evaluate under MultiWorkerMirroredStrategy.

    Two Keras bugs stop it (keras-team/keras#20585): fit() builds the model by reducing the first
    distributed (x, y) tuple with ``strategy.reduce``, which MWMS cannot do for a tuple, and every
    step reduces its scalar metrics with ``reduce(..., axis=0)``, invalid for scalars. So the
    model is built here from one local batch, and the multi-worker "mean" reduction is made a
    plain cross-worker mean (axis=None), which also gives every worker the same logs, so the
    callbacks (EarlyStopping, best checkpoint) decide the same on all of them.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as keras_tf_trainer

    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    original = keras_tf_trainer.reduce_per_replica
    if getattr(original, "edgecv_multiworker", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if (reduction in ("auto", "mean")
                and keras_tf_trainer._collective_all_reduce_multi_worker(strategy)):
            return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original(values, strategy, reduction)

    reduce_per_replica.edgecv_multiworker = True
    keras_tf_trainer.reduce_per_replica = reduce_per_replica


def _draw(plot: Callable, *args, path: Path, log: Callable[[str], None]) -> None:
    """``plot(*args, path)``: one figure of the run's report. A figure is a view of figures
    already saved (the model, then metrics.json and history.csv), so one that cannot be drawn
    costs one line, not the run."""
    try:
        plot(*args, path)
    except Exception as exc:  # noqa: BLE001  (whatever broke the figure, the run is kept)
        log(f"{path.name} not written: {first_line(exc)}")


def _versions() -> dict:
    import keras
    import tensorflow as tf

    return {"edgecv": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def train(config: TrainConfig, *, overwrite: bool = False, resume: bool = False,
          resume_epochs: int | None = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train ``config.model`` on ``config.data`` and write a complete run directory.

    With ``resume=True`` only ``config.out`` is read from ``config``: the run continues with its
    saved options (``resume_epochs`` may raise the epoch count).

    With ``--strategy multiworker`` every worker runs this same function (the callbacks and the
    saves take part in collective ops, so all workers must execute them), but only the chief
    (TF_CONFIG's chief, else worker 0) writes the run directory; the other workers write into a
    temporary directory that is deleted when they finish, as tf.distribute's guide recommends.
    """
    role = multiworker_role() if config.strategy == "multiworker" and not resume else None
    if role is not None and not role.is_chief:
        scratch = Path(tempfile.mkdtemp(prefix=f"edgecv-{role.task_type}{role.index}-"))
        try:
            result = _train_in(resolve(config), scratch, resume=False, log=log, chief=False)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log(f"{role.task_type} {role.index} done; the run directory is the chief's "
            f"({role.chiefs[0] if role.chiefs else role.workers[0]})")
        return TrainResult(Path(config.out) if config.out else scratch, result.metrics)
    config, run_dir = prepare_run_dir(config, overwrite=overwrite, resume=resume,
                                      resume_epochs=resume_epochs)
    if resume and not RunDir(run_dir).backup.is_dir():
        log(f"run '{run_dir}' has no backup to continue from (interrupted before its first "
            "epoch ended, or after its last): starting it again with its saved options")
        resume = False
    if resume and config.strategy == "multiworker":
        # Keras 3's BackupAndRestore keeps one file per worker and has no multi-worker restore.
        raise UsageError(
            f"`resume` of the multi-worker run '{run_dir}' is not supported; start it again on "
            "every worker with `overwrite`."
        )
    return _train_in(config, run_dir, resume=resume, log=log, chief=True)


def _train_in(config: TrainConfig, run_dir: Path, *, resume: bool, log: Callable[[str], None],
              chief: bool) -> TrainResult:
    """The body of :func:`train` once the run directory is chosen (a scratch one for a
    non-chief worker, which then logs only its epochs)."""
    tf = import_tensorflow()
    import keras

    from edgecv.data import load_dataset
    from edgecv.models import count_macs, create_model, init_from_data
    from edgecv.models.registry import DATA_INIT_IMAGES
    from edgecv.models.tta import flip_tta
    from edgecv.training.report import (classification_metrics, plot_confusion_matrix,
                                        plot_training_curves, read_history)
    from edgecv.runtime import cpu_flags
    from edgecv.training.precision import as_float32, build_in_precision, resolve_precision
    from edgecv.training.strategy import make_strategy

    strategy, strategy_text = make_strategy(config.strategy)  # before any other TF device use
    precision, precision_reason = resolve_precision(
        config.precision, flags=cpu_flags(), gpus=len(tf.config.list_physical_devices("GPU")),
        strategy=config.strategy)
    config = replace(config, precision=precision)
    keras.utils.set_random_seed(config.seed)
    set_op_determinism(tf, config.deterministic)

    preprocessing = Preprocessing(config.img_size, config.img_size, config.channels)
    dataset = load_dataset(config.data, config.img_size, config.img_size, config.channels,
                           val_split=config.val_split, test_split=config.test_split,
                           seed=config.seed)
    for item in dataset.skipped:
        log(f"skipped {item['path']}: {item['reason']}")
    log(f"data: {dataset.name}, {dataset.num_classes} classes, train {len(dataset.train)} / "
        f"val {len(dataset.val)} / test {len(dataset.test)}, input {preprocessing.input_shape}"
        + (f", {len(dataset.skipped)} file(s) skipped" if dataset.skipped else ""))
    if dataset.streamed_because:
        log(f"data streams from disk: {dataset.streamed_because}; the train split is decoded "
            "anew every epoch, val and test stay in memory")
    if len(dataset.val) == 0:
        raise UsageError(f"validation split is empty (`val_split` {config.val_split}); raise it.")

    config = resolve_for_data(config, len(dataset.train))
    steps_per_epoch = math.ceil(len(dataset.train) / config.batch_size)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = RunDir(run_dir)
    config_record = {
        "edgecv_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "train": config.to_dict(),
        "preprocessing": preprocessing.to_dict(),
        "labels": dataset.labels,
        "data": {**dataset.source, "sizes": {"train": len(dataset.train), "val": len(dataset.val),
                                             "test": len(dataset.test)}},
        "strategy": strategy_text,
        "versions": _versions(),
    }
    if not resume:
        write_json_atomic(run.config, config_record)
        write_json_atomic(run.split, dataset.split_ids())
        write_text_atomic(run.labels, "\n".join(dataset.labels) + "\n")

    def build(**overrides):
        return create_model(config.model, preprocessing.input_shape, dataset.num_classes,
                            **{**(config.model_options or {}), **overrides})

    with strategy.scope():
        overrides = {"weights": config.weights} if config.weights else {}
        model = build_in_precision(lambda: build(**overrides), precision)
        if config.weights:
            model.get_layer("base").trainable = False
        if not resume:  # a resumed run restores these weights from its backup
            sample = np.random.default_rng(config.seed).permutation(len(dataset.train))
            sample = np.sort(sample[:DATA_INIT_IMAGES])
            initialised = init_from_data(
                model, lambda: preprocessing.normalize(dataset.train.images(sample)),
                seed=config.seed)
            if initialised:
                log(f"{', '.join(initialised)} initialised from {len(sample)} training images")
        rate = learning_rate(config, steps_per_epoch)
        compile_model(model, config, rate)
    log(f"model: {config.model}, {model.count_params():,} parameters; strategy: {strategy_text}; "
        f"precision: {precision} ({precision_reason.removeprefix('auto: ')}); "
        f"xla: {'on' if model.jit_compile else 'off'} (`xla='{config.xla}'`)")

    augmenter = build_augmenter(config)
    train_ds = make_tf_dataset(dataset.train, preprocessing, config.batch_size, training=True,
                               augmenter=augmenter, seed=config.seed)
    val_ds = make_tf_dataset(dataset.val, preprocessing, config.batch_size, training=False)
    if config.strategy == "multiworker":
        # Every worker builds the same arrays in memory; there are no files to shard by, so
        # each worker keeps every n-th element (DATA). --batch-size stays the global batch.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        train_ds, val_ds = train_ds.with_options(options), val_ds.with_options(options)

    total_epochs = config.epochs + config.fine_tune_epochs
    phases = [(config.epochs, None)]
    if config.fine_tune_epochs:
        phases.append((total_epochs, config.fine_tune_layers))
    fit_seconds, epochs_run = 0.0, 0
    resuming = resume
    for phase_end, fine_tune_layers in phases:
        if fine_tune_layers is not None:
            with strategy.scope():
                _set_fine_tune_trainable(model, fine_tune_layers)
                rate = learning_rate(config, steps_per_epoch, base=config.lr / 10,
                                     epochs=config.fine_tune_epochs)
                compile_model(model, config, rate)
            log(f"fine-tuning the top {fine_tune_layers} layers of the base at lr {config.lr / 10:g}")
        callbacks = make_callbacks(config, run_dir, log, resuming=resuming,
                                   total_epochs=total_epochs, rate=rate,
                                   steps_per_epoch=steps_per_epoch)
        if config.strategy == "multiworker":
            _work_around_keras_multiworker(model, strategy, next(iter(val_ds)))
        start = time.perf_counter()
        history = model.fit(train_ds, validation_data=val_ds, epochs=phase_end,
                            initial_epoch=0 if fine_tune_layers is None else config.epochs,
                            callbacks=callbacks, shuffle=False, verbose=0)  # tf.data shuffles
        fit_seconds += time.perf_counter() - start
        epochs_run += len(history.history.get("loss", []))
        resuming = True  # later phases append to history.csv

    if run.best_weights.is_file():
        model.load_weights(str(run.best_weights))
    model = as_float32(model, build)  # what is tested, saved and converted computes in float32
    if config.tta == "flip":  # the saved model averages the image's and its mirror's scores
        model = flip_tta(model)
    # Saved before any report step (test metrics, plots), so that none can lose the trained model.
    with atomic_path(run.model) as tmp:
        model.save(tmp)

    test_x = preprocessing.normalize(dataset.test.x) if len(dataset.test) else None
    metrics: dict = {}
    if test_x is not None:
        scores = model.predict(test_x, batch_size=256, verbose=0)
        metrics = classification_metrics(dataset.test.y, scores, dataset.labels)
        metrics["test_loss"] = float(keras.losses.sparse_categorical_crossentropy(
            dataset.test.y, scores).numpy().mean())
        _draw(plot_confusion_matrix, metrics["confusion_matrix"], dataset.labels,
              path=run.confusion_matrix, log=log)
    history_columns = read_history(run.history)
    if history_columns:
        _draw(plot_training_curves, history_columns, path=run.training_curves, log=log)

    n_train = len(dataset.train)
    metrics = {
        "test_accuracy": metrics.pop("accuracy", None),
        **metrics,
        "params": int(model.count_params()),
        "macs": int(count_macs(model)),
        "epochs_run": int(len(history_columns.get("epoch", []))),
        "best_epoch": (int(np.argmin(history_columns["val_loss"])) + 1
                       if history_columns.get("val_loss") else None),
        "training_time_s": round(fit_seconds, 3),
        "images_per_s": round(n_train * epochs_run / fit_seconds, 1) if fit_seconds else None,
        "train_images": n_train,
        "skipped_files": dataset.skipped,
    }
    write_json_atomic(run.metrics, metrics)
    if metrics["test_accuracy"] is not None:
        log(f"test accuracy {metrics['test_accuracy']:.4f} on {len(dataset.test)} images; "
            f"{fit_seconds:.1f}s training, {metrics['images_per_s']} images/s")
    if chief:
        log(f"run saved to {run_dir}")
    return TrainResult(run_dir, metrics)
