"""Datasets for edgecv: one in-memory uint8 form for every source, with a fixed seeded split.

Sources (the ``--data`` option):

- ``digits`` (default): scikit-learn's bundled 8x8 handwritten digits (1,797 real images, offline).
  Pixel values 0..16 are mapped to 0..255 and the images upscaled to the model's input size.
- ``mnist``, ``fashion_mnist``, ``cifar10``: ``keras.datasets`` loaders. They download on first
  use; offline they fail with :class:`~edgecv.errors.DatasetUnavailable`.
- a folder path: one subfolder per class (see :mod:`edgecv.data.folder`); every file is validated
  and undecodable ones are skipped and listed, never silently dropped.

Every source is split train/val/test with :func:`stratified_split`, seeded, so the same config
reproduces the same split in ``train``, ``convert``, ``bench``. The split is also written to the
run directory (``split.json``) so later steps can use it exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv.errors import DataError, DatasetUnavailable, UsageError, unknown_name

BUILTIN_DATASETS = ("digits",)
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
DIGITS_LABELS = [str(i) for i in range(10)]
FASHION_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat",
                  "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck"]
# In-memory datasets are the design (edge-sized tasks); refuse sizes that would swap.
MAX_DATASET_BYTES = 6 * 1024**3


@dataclass
class Split:
    """One part of a dataset: uint8 images (N, H, W, C), int64 labels (N,), sample ids (N,)."""

    x: np.ndarray
    y: np.ndarray
    ids: list

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Dataset:
    """A loaded, split dataset. ``source`` is what config.json records to reload it."""

    name: str
    labels: list[str]
    train: Split
    val: Split
    test: Split
    source: dict
    skipped: list[dict] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def split_ids(self) -> dict:
        """The sample ids of each part, as written to ``split.json``."""
        return {"train": self.train.ids, "val": self.val.ids, "test": self.test.ids}


def stratified_split(y: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    """Seeded per-class split of indices into (train, val, test); each class keeps its share.

    Every class with at least 3 samples gets at least one sample in val and test when the
    fraction is non-zero. Returns three sorted int arrays.
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise UsageError(
            f"split fractions must be in [0, 1) and sum below 1, received val={val_fraction}, "
            f"test={test_fraction}."
        )
    rng = np.random.default_rng(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        n = len(idx)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        if n >= 3:
            n_test = max(n_test, 1 if test_fraction > 0 else 0)
            n_val = max(n_val, 1 if val_fraction > 0 else 0)
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test:n_test + n_val])
        parts[0].append(idx[n_test + n_val:])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


def resize_batch(images: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """Resize/convert a batch of uint8 HxWxC (or HxW) images with the deployed conversion rules."""
    from edgecv.preprocessing import to_model_image

    if images.ndim == 3:
        images = images[..., None]
    out = np.empty((len(images), height, width, channels), np.uint8)
    for i, image in enumerate(images):
        # OpenCV conventions: 3-channel arrays are BGR. Keras datasets give RGB, so flip first.
        if image.shape[-1] == 3:
            image = image[..., ::-1]
        out[i] = to_model_image(image, height, width, channels)
    return out


def _split_arrays(x, y, ids, val_fraction, test_fraction, seed) -> tuple[Split, Split, Split]:
    parts = stratified_split(y, val_fraction, test_fraction, seed)
    return tuple(Split(x[p], y[p], [ids[i] for i in p]) for p in parts)


def _load_digits(height, width, channels, val_fraction, test_fraction, seed) -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise UsageError(
            "the digits dataset needs scikit-learn: pip install 'edgecv[train]'."
        ) from exc
    bunch = load_digits()
    raw = np.clip(np.round(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    x = resize_batch(raw, height, width, channels)
    y = bunch.target.astype(np.int64)
    train, val, test = _split_arrays(x, y, list(range(len(y))), val_fraction, test_fraction, seed)
    source = {"kind": "builtin", "name": "digits"}
    return Dataset("digits", list(DIGITS_LABELS), train, val, test, source)


def _load_keras_dataset(name, height, width, channels, val_fraction, test_fraction, seed):
    from edgecv.tf_import import import_tensorflow

    import_tensorflow()
    import keras

    loader = getattr(keras.datasets, name)
    try:
        (x_a, y_a), (x_b, y_b) = loader.load_data()
    except Exception as exc:  # keras raises a bare Exception wrapping URLError/HTTPError
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DatasetUnavailable(
            f"could not download the '{name}' dataset ({reason}). Keras datasets are fetched "
            f"from the internet on first use: run `python -c \"import keras; "
            f"keras.datasets.{name}.load_data()\"` once on a machine with internet access "
            f"(it caches under ~/.keras/datasets/), or use --data digits / --data PATH."
        ) from exc
    # One pool, then our own seeded split, so every source is split the same way.
    x = np.concatenate([x_a, x_b])
    y = np.concatenate([y_a, y_b]).reshape(-1).astype(np.int64)
    x = resize_batch(x, height, width, channels)
    labels = {"mnist": list(DIGITS_LABELS), "fashion_mnist": FASHION_LABELS,
              "cifar10": CIFAR10_LABELS}[name]
    train, val, test = _split_arrays(x, y, list(range(len(y))), val_fraction, test_fraction, seed)
    return Dataset(name, list(labels), train, val, test, {"kind": "keras", "name": name})


def _load_folder(root, height, width, channels, val_fraction, test_fraction, seed) -> Dataset:
    from edgecv.data.folder import load_images, scan_image_folder

    scan = scan_image_folder(root)
    n = len(scan.files)
    nbytes = n * height * width * channels
    if nbytes > MAX_DATASET_BYTES:
        raise DataError(
            f"{n} images at {height}x{width}x{channels} need {nbytes / 1024**3:.1f} GiB in memory, "
            f"more than the {MAX_DATASET_BYTES / 1024**3:.0f} GiB edgecv loads; use a smaller "
            f"--img-size or a subset of the folder."
        )
    paths = [path for path, _ in scan.files]
    y = np.asarray([cls for _, cls in scan.files], np.int64)
    x = load_images(scan.root, paths, height, width, channels)
    train, val, test = _split_arrays(x, y, paths, val_fraction, test_fraction, seed)
    skipped = [{"path": s.path, "reason": s.reason} for s in scan.skipped]
    source = {"kind": "folder", "path": str(Path(root).resolve())}
    return Dataset(Path(root).name or "folder", list(scan.classes), train, val, test, source, skipped)


def dataset_kind(spec: str) -> str:
    """'builtin', 'keras' or 'folder' for a ``--data`` value; unknown names raise UsageError."""
    if spec in BUILTIN_DATASETS:
        return "builtin"
    if spec in KERAS_DATASETS:
        return "keras"
    if os.sep in spec or "/" in spec or Path(spec).exists():
        return "folder"
    raise unknown_name(
        "dataset", spec, BUILTIN_DATASETS + KERAS_DATASETS,
        hint="A folder of images is given by its path (e.g. --data ./images).",
    )


def load_dataset(spec: str, height: int, width: int, channels: int, *, val_split: float = 0.15,
                 test_split: float = 0.15, seed: int = 0) -> Dataset:
    """Load ``spec`` (a name or a folder path) resized to HxWxC and split train/val/test.

    Defaults: 15% validation, 15% test, seed 0.
    """
    kind = dataset_kind(spec)
    if kind == "folder" and not Path(spec).is_dir():
        raise DataError(f"data folder '{spec}' does not exist or is not a directory.")
    args = (height, width, channels, val_split, test_split, seed)
    if kind == "builtin":
        dataset = _load_digits(*args)
    elif kind == "keras":
        dataset = _load_keras_dataset(spec, *args)
    else:
        dataset = _load_folder(spec, *args)
    if len(dataset.train) == 0:
        raise DataError(f"dataset '{spec}' left no training images after the split.")
    dataset.source.update({"val_split": val_split, "test_split": test_split, "seed": seed})
    return dataset
