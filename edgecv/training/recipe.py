"""How a run trains: the input pipeline (augmentation, batching), optimizer, schedule, callbacks.

``trainer.train`` owns the run directory and the order of steps; this module owns the recipe.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from edgecv.preprocessing import Preprocessing
from edgecv.rundir import RunDir
from edgecv.training.config import TrainConfig


AUGMENT_POLICIES = ("auto", "none", "affine", "crop")


def random_crop_flip(images, seed, *, pad: int, flip: bool):
    """Pad-and-crop (zero padding of ``pad`` pixels, one random offset per image) and random
    horizontal flips of a float (B, H, W, C) batch: the standard CIFAR augmentation.

    Vectorised with two gathers instead of a per-image map (a per-element map costs more than
    the crop itself at 32x32), and stateless: ``seed`` is a (2,) int tensor, so the same seed
    gives the same batch whatever the tf.data thread order.
    """
    import tensorflow as tf

    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    offsets = tf.random.stateless_uniform([batch, 2], crop_seed, 0, 2 * pad + 1, tf.int32)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = offsets[:, :1] + tf.range(height)[None]
    cols = offsets[:, 1:] + tf.range(width)[None]
    out = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
    if flip:
        mirror = tf.random.stateless_uniform([batch, 1, 1, 1], flip_seed) < 0.5
        out = tf.where(mirror, tf.reverse(out, [2]), out)
    return out


def build_augmenter(config: TrainConfig):
    """The training-batch augmentation of ``config.augment`` (resolved, not ``auto``), or None.

    Returns ``augment(images, seed)`` on float (B, H, W, C) batches in 0..255 pixel space; it is
    never part of the saved model.

    - ``crop``: pad by ``config.crop_pad`` pixels (default 1/8 of the image size) and crop
      back, plus horizontal flips with ``config.flip`` (the standard recipe for photos such as
      CIFAR-10).
    - ``affine``: small rotation / shift / zoom and contrast changes (Keras preprocessing
      layers), plus flips with ``config.flip``: for digits and other non-photo data.
    """
    if config.augment == "none":
        return None
    if config.augment == "crop":
        pad = config.crop_pad if config.crop_pad is not None else max(1, (config.img_size or 32) // 8)
        return lambda images, seed: random_crop_flip(images, seed, pad=pad, flip=bool(config.flip))
    import keras

    layers = [
        keras.layers.RandomRotation(0.04, fill_mode="constant", seed=config.seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=config.seed + 1),
        keras.layers.RandomZoom(0.1, fill_mode="constant", seed=config.seed + 2),
        keras.layers.RandomContrast(0.1, value_range=(0, 255), seed=config.seed + 3),
    ]
    if config.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=config.seed + 4))
    augmenter = keras.Sequential(layers, name="augmentation")
    return lambda images, _seed: augmenter(images, training=True)


def make_tf_dataset(split, preprocessing: Preprocessing, batch_size: int, *, training: bool,
                    augmenter=None, seed: int = 0):
    """tf.data pipeline: (shuffle) -> batch -> (augment + normalise) -> prefetch.

    In-memory splits without augmentation are normalised once with the deployed numpy code
    (``Preprocessing.normalize``), which measured faster than Keras' own numpy adapter.
    Otherwise uint8 images come from :func:`edgecv.data.stream.image_label_dataset` (memory or
    a parallel decode from disk for a streamed split) and each batch is augmented in 0..255
    pixel space and normalised with the same arithmetic, in one fused map.
    """
    import tensorflow as tf

    from edgecv.data.stream import image_label_dataset

    if augmenter is None and not split.streamed:
        ds = tf.data.Dataset.from_tensor_slices((preprocessing.normalize(split.x), split.y))
        if training:
            ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    p = preprocessing
    ds = image_label_dataset(split, p.height, p.width, p.channels, shuffle=training, seed=seed)
    ds = ds.batch(batch_size)
    mean = tf.constant(p.mean, tf.float32)
    std = tf.constant(p.std, tf.float32)
    scale = tf.constant(p.scale, tf.float32)
    if augmenter is None:
        def normalize(x, y):
            return (tf.cast(x, tf.float32) * scale - mean) / std, y

        ds = ds.map(normalize, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        # One stateless seed per batch, different every epoch, reproducible from ``seed``.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

        def augment_and_normalize(batch, batch_seed):
            x, y = batch
            x = augmenter(tf.cast(x, tf.float32), batch_seed)
            return (x * scale - mean) / std, y

        ds = tf.data.Dataset.zip((ds, seeds)).map(augment_and_normalize,
                                                  num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_optimizer(name: str, lr, weight_decay: float | None = None):
    """Keras optimizer ``name`` with learning rate ``lr`` (a float or a schedule) and decoupled
    ``weight_decay`` (each step multiplies every weight by ``1 - lr * weight_decay``; ``None``:
    the optimizer's own default, which is none but for AdamW's 0.004)."""
    import keras

    decay = {} if weight_decay is None else {"weight_decay": weight_decay}
    return {
        "adam": lambda: keras.optimizers.Adam(lr, **decay),
        "adamw": lambda: keras.optimizers.AdamW(lr, **decay),
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, **decay),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr, **decay),
    }[name]()


def make_loss(label_smoothing: float = 0.0):
    """Cross-entropy on integer labels; with ``label_smoothing`` > 0 the target of each image
    is ``1 - label_smoothing`` on its class and the rest spread evenly over all classes
    (Keras' sparse cross-entropy has no smoothing, so the labels are one-hot encoded here)."""
    if not label_smoothing:
        return "sparse_categorical_crossentropy"
    import keras
    from keras import ops

    def smoothed_crossentropy(y_true, y_pred):
        classes = ops.shape(y_pred)[-1]
        one_hot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), classes)
        return keras.losses.categorical_crossentropy(one_hot, y_pred,
                                                     label_smoothing=label_smoothing)

    return smoothed_crossentropy


def learning_rate(config: TrainConfig, steps_per_epoch: int, *, base: float | None = None,
                  epochs: int | None = None):
    """The optimizer's learning rate: for ``cosine`` a per-step schedule (linear warm-up over
    ``config.warmup_epochs``, then cosine decay to 0 at the end of ``epochs``, default
    ``config.epochs``); otherwise the constant ``base`` (default ``config.lr``), which the
    ``step`` / plateau callbacks then change per epoch.

    Per step, not per epoch: with few long epochs (CIFAR: 270 steps each) a per-epoch cosine
    holds the rate for a whole epoch, and the warm-up keeps the first steps of a large rate
    from blowing up BatchNorm statistics. The schedule is a function of the optimizer's step
    counter, which ``--resume`` restores, so a resumed run continues on the same curve.
    """
    import keras

    base = config.lr if base is None else base
    if config.lr_schedule != "cosine":
        return base
    epochs = config.epochs if epochs is None else epochs
    total = max(1, epochs * steps_per_epoch)
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total // 2)
    if config.time_limit is not None:  # the cosine ends where the time plan says
        return time_limited_cosine(base, warmup, total)
    return keras.optimizers.schedules.CosineDecay(
        base / 10 if warmup else base, decay_steps=max(1, total - warmup),
        warmup_target=base if warmup else None, warmup_steps=warmup)


_TIME_LIMITED_COSINE = None


def time_limited_cosine(base: float, warmup_steps: int, total_steps: int):
    """Keras' ``CosineDecay`` with its linear warm-up (from ``base / 10``; the same curve, the
    same values), except that where it ends, ``total_steps``, is a variable: ``--time-limit``'s
    :func:`make_callbacks` moves it after every epoch to the steps the time left holds."""
    global _TIME_LIMITED_COSINE
    if _TIME_LIMITED_COSINE is None:
        import math

        import keras
        from keras import ops

        @keras.saving.register_keras_serializable(package="edgecv")
        class TimeLimitedCosine(keras.optimizers.schedules.LearningRateSchedule):
            def __init__(self, base, warmup_steps, total_steps):
                self.base, self.warmup_steps = float(base), int(warmup_steps)
                self.total_steps = keras.Variable(float(total_steps), dtype="float32",
                                                  trainable=False, name="cosine_end_step")

            def __call__(self, step):
                step = ops.cast(step, "float32")
                start = self.base / 10 if self.warmup_steps else self.base
                warm = start + (self.base - start) * step / max(1, self.warmup_steps)
                span = ops.maximum(self.total_steps - self.warmup_steps, 1.0)
                done = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
                cosine = 0.5 * self.base * (1.0 + ops.cos(math.pi * done))
                return ops.where(step < self.warmup_steps, warm, cosine)

            def get_config(self):
                return {"base": self.base, "warmup_steps": self.warmup_steps,
                        "total_steps": float(ops.convert_to_numpy(self.total_steps))}

        _TIME_LIMITED_COSINE = TimeLimitedCosine
    return _TIME_LIMITED_COSINE(base, warmup_steps, total_steps)


def lr_schedule_fn(config: TrainConfig) -> Callable[[int, float], float] | None:
    """Epoch -> learning rate for ``--lr-schedule step``; None otherwise (cosine is per step,
    see :func:`learning_rate`; ``none`` reduces on plateau)."""
    if config.lr_schedule == "step":
        step = max(1, config.epochs // 3)
        return lambda epoch, _lr: config.lr * (0.1 ** (epoch // step))
    return None


def format_duration(seconds: float) -> str:
    """``1h02m``, ``12m05s`` or ``42s``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def best_val_loss(history_csv: Path) -> float | None:
    from edgecv.training.report import read_history

    values = read_history(history_csv).get("val_loss")
    return min(values) if values else None


def make_callbacks(config: TrainConfig, run_dir: Path, log: Callable[[str], None], *,
                   resuming: bool, total_epochs: int, rate=None, steps_per_epoch: int = 1):
    """Keras callbacks of a run. ``rate``: the optimizer's learning rate as
    :func:`learning_rate` made it (with ``--time-limit``, the schedule whose end the epoch log
    moves with the time plan)."""
    import keras

    from edgecv.training.callbacks import (AtomicBackupAndRestore, AtomicCSVLogger,
                                           BestWeightsCheckpoint)

    run = RunDir(run_dir)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    plan = None
    if config.time_limit is not None:
        from edgecv.training.report import read_history
        from edgecv.training.timeplan import TimePlan

        before = read_history(run.history).get("epoch_time_s", []) if resuming else []
        plan = TimePlan(config.time_limit, total_epochs, before)

    class EpochLog(keras.callbacks.Callback):
        """Times each epoch and prints one line with the run's ETA (mean epoch time so far x
        epochs left). With ``--time-limit`` the epochs left are the plan's
        (:class:`edgecv.training.timeplan.TimePlan`, re-made from each epoch's time): the
        cosine's end (``rate.total_steps``) moves with it, and training stops when it is done."""

        def __init__(self):
            super().__init__()
            self.durations: list[float] = []

        def on_train_begin(self, logs=None):
            if plan is not None:
                rate.total_steps.assign(float(max(1, plan.planned * steps_per_epoch)))
                if plan.done:
                    log(f"time limit: {format_duration(plan.used_s)} of "
                        f"{format_duration(plan.limit_s)} used by {plan.done} epoch(s)")

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            seconds = time.perf_counter() - self._start
            self.durations.append(seconds)
            # Into the shared logs, so history.csv (written next) holds the time-to-accuracy curve.
            logs["epoch_time_s"] = round(seconds, 3)
            if plan is not None:  # before the line below, which shows the plan and the rate
                plan.epoch_done(seconds)
                rate.total_steps.assign(float(max(1, plan.planned * steps_per_epoch)))
                if plan.done == 1 + plan.first_fresh:
                    log(f"time limit {format_duration(plan.limit_s)}: {plan.planned} epochs fit "
                        f"at {plan.mean_epoch_s():.1f} s each; the cosine ends with them")
                if plan.finished:
                    self.model.stop_training = True
            total = plan.planned if plan is not None else total_epochs
            left = total - (epoch + 1)
            eta = format_duration(sum(self.durations) / len(self.durations) * left)
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            log(f"epoch {epoch + 1:>3}/{total}  loss {logs.get('loss', float('nan')):.4f}  "
                f"acc {logs.get('accuracy', float('nan')):.4f}  "
                f"val_loss {logs.get('val_loss', float('nan')):.4f}  "
                f"val_acc {logs.get('val_accuracy', float('nan')):.4f}  "
                f"lr {lr:.2e}  {seconds:.1f}s" + (f"  eta {eta}" if left else ""))

    # Order matters for --resume: the backup of epoch k is written before its CSV row, so a
    # row in history.csv always means that epoch is safe in the backup. EpochLog comes first
    # so that its epoch_time_s reaches the CSV row.
    # The three that write files are Keras' own made atomic (edgecv.training.callbacks).
    callbacks = [
        EpochLog(),
        BestWeightsCheckpoint(
            run.best_weights, monitor="val_loss",
            initial_value_threshold=best_val_loss(run.history) if resuming else None,
        ),
        AtomicBackupAndRestore(run.backup, delete_checkpoint=True),
        AtomicCSVLogger(str(run.history), append=resuming),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                      restore_best_weights=False),
    ]
    schedule = lr_schedule_fn(config)
    if schedule is not None:
        callbacks.append(keras.callbacks.LearningRateScheduler(schedule))
    elif config.lr_schedule == "none":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, config.patience // 2), min_lr=1e-5))
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run.logs), profile_batch=0,
                                                     write_graph=False))
    return callbacks
