"""How a run trains: the input pipeline (augmentation, batching), optimizer, schedule, callbacks.

``trainer.train`` owns the run directory and the order of steps; this module owns the recipe.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

from edgecv.preprocessing import Preprocessing
from edgecv.training.config import TrainConfig


def build_augmenter(config: TrainConfig):
    """Keras preprocessing layers used on training batches only (never part of the saved model)."""
    import keras

    layers = [
        keras.layers.RandomRotation(0.04, fill_mode="constant", seed=config.seed),
        keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=config.seed + 1),
        keras.layers.RandomZoom(0.1, fill_mode="constant", seed=config.seed + 2),
        keras.layers.RandomContrast(0.1, value_range=(0, 255), seed=config.seed + 3),
    ]
    if config.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=config.seed + 4))
    return keras.Sequential(layers, name="augmentation")


def make_tf_dataset(split, preprocessing: Preprocessing, batch_size: int, *, training: bool,
                    augmenter=None, seed: int = 0):
    """tf.data pipeline: (shuffle) -> batch -> (augment + normalise) -> prefetch.

    Without augmentation the images are normalised once with the deployed numpy code
    (``Preprocessing.normalize``) and cached, which measured faster than Keras' own numpy
    adapter. With augmentation the uint8 images are cached and each batch is augmented in
    0..255 pixel space and then normalised with the same arithmetic, in one fused map.
    """
    import tensorflow as tf

    if augmenter is None:
        ds = tf.data.Dataset.from_tensor_slices((preprocessing.normalize(split.x), split.y))
    else:
        ds = tf.data.Dataset.from_tensor_slices((split.x, split.y))
    ds = ds.cache()
    if training:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augmenter is not None:
        mean = tf.constant(preprocessing.mean, tf.float32)
        std = tf.constant(preprocessing.std, tf.float32)
        scale = tf.constant(preprocessing.scale, tf.float32)

        def augment_and_normalize(x, y):
            x = augmenter(tf.cast(x, tf.float32), training=True)
            return (x * scale - mean) / std, y

        ds = ds.map(augment_and_normalize, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_optimizer(name: str, lr: float):
    import keras

    return {
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamw": lambda: keras.optimizers.AdamW(lr),
        "sgd": lambda: keras.optimizers.SGD(lr, momentum=0.9, nesterov=True),
        "rmsprop": lambda: keras.optimizers.RMSprop(lr),
    }[name]()


def lr_schedule_fn(config: TrainConfig) -> Callable[[int, float], float] | None:
    """Epoch -> learning rate for ``--lr-schedule cosine|step``; None for ``none``."""
    if config.lr_schedule == "cosine":
        return lambda epoch, _lr: config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    if config.lr_schedule == "step":
        step = max(1, config.epochs // 3)
        return lambda epoch, _lr: config.lr * (0.1 ** (epoch // step))
    return None


def best_val_loss(history_csv: Path) -> float | None:
    from edgecv.training.report import read_history

    values = read_history(history_csv).get("val_loss")
    return min(values) if values else None


def make_callbacks(config: TrainConfig, run_dir: Path, log: Callable[[str], None], *,
                   resuming: bool, total_epochs: int):
    import keras

    checkpoints = run_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)

    class EpochLog(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            log(f"epoch {epoch + 1:>3}/{total_epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                f"acc {logs.get('accuracy', float('nan')):.4f}  "
                f"val_loss {logs.get('val_loss', float('nan')):.4f}  "
                f"val_acc {logs.get('val_accuracy', float('nan')):.4f}  "
                f"lr {lr:.2e}  {time.perf_counter() - self._start:.1f}s")

    # Order matters for --resume: the backup of epoch k is written before its CSV row, so a
    # row in history.csv always means that epoch is safe in the backup.
    callbacks = [
        keras.callbacks.ModelCheckpoint(
            str(checkpoints / "best.weights.h5"), monitor="val_loss", save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=best_val_loss(run_dir / "history.csv") if resuming else None,
        ),
        keras.callbacks.BackupAndRestore(str(checkpoints / "backup"), delete_checkpoint=True),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resuming),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                      restore_best_weights=False),
    ]
    schedule = lr_schedule_fn(config)
    if schedule is not None:
        callbacks.append(keras.callbacks.LearningRateScheduler(schedule))
    else:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, config.patience // 2), min_lr=1e-5))
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), profile_batch=0,
                                                     write_graph=False))
    callbacks.append(EpochLog())
    return callbacks
