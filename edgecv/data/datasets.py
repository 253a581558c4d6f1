"""Datasets for edgecv: one in-memory uint8 form for every source, with a fixed seeded split.

Sources (the ``--data`` option):

- ``digits`` (default): scikit-learn's bundled 8x8 handwritten digits (1,797 real images, offline).
  Pixel values 0..16 are mapped to 0..255 and the images upscaled to the model's input size.
- ``mnist``, ``fashion_mnist``, ``cifar10``: the copy in Keras' cache (``~/.keras/datasets``,
  read without TensorFlow by :mod:`edgecv.data.keras_cache`) when there is one, else the
  ``keras.datasets`` loaders, which download; offline they fail with
  :class:`~edgecv.errors.DatasetUnavailable`.
- a folder path: one subfolder per class (see :mod:`edgecv.data.folder`); every file is validated
  and undecodable ones are skipped and listed, never silently dropped.
- an archive of such a folder (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.xz``): unpacked
  safely once into a cache keyed by its SHA-256 (:mod:`edgecv.data.archive`), then as a folder.

Memory: a folder whose images at the model's size fit in the memory budget (6 GiB, or env
``EDGECV_MAX_MEMORY_BYTES``) is decoded once into memory. A larger one is still validated file by
file, but its train split stays a list of files that :func:`edgecv.data.stream.image_label_dataset`
decodes on the fly; its val and test splits (small) are loaded into memory.

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
from edgecv.limits import env_limit

BUILTIN_DATASETS = ("digits",)
KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10")
DIGITS_LABELS = [str(i) for i in range(10)]
DIGITS_IMAGES = 1_797  # scikit-learn's 8x8 digits
FASHION_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat",
                  "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer",
                  "dog", "frog", "horse", "ship", "truck"]
# Default memory budget for decoded images; above it the train split streams from disk.
MAX_DATASET_BYTES = 6 * 1024**3
MEMORY_ENV = "EDGECV_MAX_MEMORY_BYTES"
# Each held-out split (validation, test) takes 15% of the images by default, but at most
# HELD_OUT_IMAGES: 2,500 test images measure an accuracy near 90% to +-0.6 pp (one standard
# error), and every image beyond them trains the model instead (CIFAR-10's 50,000 training
# photos split 45,000 / 2,500 / 2,500; train_cifar.json measured resnet8's 30 minutes at 82.6%
# on that split against 80.9% on 35,000 / 7,500 / 7,500).
HELD_OUT_FRACTION, HELD_OUT_IMAGES = 0.15, 2_500


def memory_budget() -> int:
    """Bytes of decoded train images kept in memory: env ``EDGECV_MAX_MEMORY_BYTES``, default
    :data:`MAX_DATASET_BYTES` (6 GiB)."""
    return env_limit(MEMORY_ENV, MAX_DATASET_BYTES)


class Split:
    """One part of a dataset: int64 labels ``y`` (N,), sample ids (N,) and the images, either
    in memory (``x``: uint8 (N, H, W, C)) or, for a streamed split, as files ``root/ids[i]``
    decoded on demand at ``shape`` (H, W, C). ``len(split)``, ``y`` and ``ids`` work for both;
    ``x`` only for an in-memory split (a streamed one raises DataError saying what to use).
    """

    def __init__(self, x: np.ndarray | None, y: np.ndarray, ids: list, *,
                 root: str | None = None, shape: tuple[int, int, int] | None = None):
        if x is None and (root is None or shape is None):
            raise ValueError("a streamed Split needs root and shape")
        self._x = x
        self.y = np.asarray(y, np.int64)
        self.ids = list(ids)
        self.root = root
        self.shape = tuple(x.shape[1:]) if x is not None else tuple(shape)

    @property
    def streamed(self) -> bool:
        """True when the images stay on disk (``paths``) instead of in ``x``."""
        return self._x is None

    @property
    def x(self) -> np.ndarray:
        if self._x is None:
            raise DataError(
                f"this split of {len(self)} images is streamed from disk (more than the memory "
                f"budget, {MEMORY_ENV}); read it with edgecv.data.stream.image_label_dataset() "
                f"or Split.images(indices)."
            )
        return self._x

    @property
    def paths(self) -> list[str]:
        """Absolute file paths of a streamed split (``root/ids[i]``)."""
        if self.root is None:
            raise DataError("this split is in memory and has no file paths.")
        return [os.path.join(self.root, i) for i in self.ids]

    def images(self, indices=None) -> np.ndarray:
        """uint8 (n, H, W, C) of ``indices`` (default None: all), decoding files if streamed."""
        if self._x is not None:
            return self._x if indices is None else self._x[np.asarray(indices, np.int64)]
        from edgecv.data.folder import load_images

        chosen = self.ids if indices is None else [self.ids[i] for i in np.asarray(indices)]
        return load_images(self.root, chosen, *self.shape)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        kind = f"streamed from {self.root}" if self.streamed else "in memory"
        return f"Split({len(self)} images {self.shape}, {kind})"


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
    streamed_because: str | None = None  # why the train split streams from disk, when it does

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
    from edgecv.data.keras_cache import keras_datasets_dir, load_cached

    cached = load_cached(name)  # Keras' own cache first: no TensorFlow, no network
    if cached is not None:
        source = {"kind": "keras", "name": name, "cache": str(keras_datasets_dir())}
        return _keras_dataset(name, cached, height, width, channels, val_fraction, test_fraction,
                              seed, source)
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
            f"(it caches under ~/.keras/datasets/), or use `data` digits / `data` PATH."
        ) from exc
    return _keras_dataset(name, ((x_a, y_a), (x_b, y_b)), height, width, channels, val_fraction,
                          test_fraction, seed, {"kind": "keras", "name": name})


def _keras_dataset(name, arrays, height, width, channels, val_fraction, test_fraction, seed,
                   source) -> Dataset:
    (x_a, y_a), (x_b, y_b) = arrays
    # One pool, then our own seeded split, so every source is split the same way.
    x = np.concatenate([x_a, x_b])
    y = np.concatenate([y_a, y_b]).reshape(-1).astype(np.int64)
    x = resize_batch(x, height, width, channels)
    labels = {"mnist": list(DIGITS_LABELS), "fashion_mnist": FASHION_LABELS,
              "cifar10": CIFAR10_LABELS}[name]
    train, val, test = _split_arrays(x, y, list(range(len(y))), val_fraction, test_fraction, seed)
    return Dataset(name, list(labels), train, val, test, source)


def _load_folder(root, height, width, channels, val_fraction, test_fraction, seed, *,
                 source=None, name=None) -> Dataset:
    from edgecv.data.folder import load_images, scan_and_load

    shape = (height, width, channels)
    scan, x = scan_and_load(root, shape, max_bytes=memory_budget())  # one decode per file
    paths = [path for path, _ in scan.files]
    y = np.asarray([cls for _, cls in scan.files], np.int64)
    if x is not None:
        train, val, test = _split_arrays(x, y, paths, val_fraction, test_fraction, seed)
    else:
        # Over the budget: the train split stays on disk; val/test are small, load them.
        parts = stratified_split(y, val_fraction, test_fraction, seed)
        train = Split(None, y[parts[0]], [paths[i] for i in parts[0]], root=scan.root,
                      shape=shape)
        val, test = (Split(load_images(scan.root, [paths[i] for i in p], *shape), y[p],
                           [paths[i] for i in p]) for p in parts[1:])
    skipped = [{"path": s.path, "reason": s.reason} for s in scan.skipped]
    source = dict(source or {"kind": "folder", "path": str(Path(root).resolve())})
    source["streamed"] = train.streamed
    because = None
    if train.streamed:
        because = (f"{len(y):,} images of {height}x{width}x{channels} take "
                   f"{len(y) * height * width * channels / 1e6:,.0f} MB decoded, more than the "
                   f"memory budget of {memory_budget() / 1e6:,.0f} MB ({MEMORY_ENV})")
    return Dataset(name or Path(root).name or "folder", list(scan.classes), train, val, test,
                   source, skipped, because)


def _load_archive(path, *args) -> Dataset:
    from edgecv.data.archive import ARCHIVE_SUFFIXES, unpack_archive

    root, digest = unpack_archive(path)
    resolved = str(Path(path).resolve())
    # "name" repeats the path because run readers reload non-folder sources by "name"
    # (converters/load.py, edgecv/api.py): load_dataset(name) unpacks (or reuses) it again.
    source = {"kind": "archive", "name": resolved, "path": resolved, "sha256": digest}
    stem = Path(path).name
    for suffix in ARCHIVE_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    try:
        return _load_folder(root, *args, source=source, name=stem or "archive")
    except DataError as exc:  # name the archive the user gave, not only the cache folder
        raise DataError(f"data archive '{path}' (unpacked in '{root}'): {exc}") from None


# Images in each Keras dataset (its train and test parts, pooled as _keras_dataset does).
KERAS_DATASET_IMAGES = {"mnist": 70_000, "fashion_mnist": 70_000, "cifar10": 60_000}


def count_images(spec: str) -> int | None:
    """How many images ``spec`` holds before any is decoded: the built-in and Keras datasets'
    known sizes, a folder's (or an unpacked archive's) valid image files; None when the folder
    cannot be read (loading it then gives the error)."""
    kind = dataset_kind(spec)
    if kind == "builtin":
        return DIGITS_IMAGES
    if kind == "keras":
        return KERAS_DATASET_IMAGES[spec]
    from edgecv.data.archive import is_archive, unpack_archive
    from edgecv.data.folder import scan_image_folder

    try:
        root = unpack_archive(spec)[0] if is_archive(spec) and not Path(spec).is_dir() else spec
        return len(scan_image_folder(root).files)
    except (DataError, OSError):
        return None


def source_spec(source: dict) -> str:
    """The ``--data`` value that reloads a recorded ``Dataset.source`` (config.json "data")."""
    return source["path"] if source["kind"] in ("folder", "archive") else source["name"]


def dataset_kind(spec: str) -> str:
    """'builtin', 'keras' or 'folder' for a ``--data`` value; unknown names raise UsageError.

    'folder' stands for any path: a folder or an archive of one (both hold RGB photos by default).
    """
    if spec in BUILTIN_DATASETS:
        return "builtin"
    if spec in KERAS_DATASETS:
        return "keras"
    from edgecv.data.archive import is_archive

    if os.sep in spec or "/" in spec or is_archive(spec) or Path(spec).exists():
        return "folder"
    raise unknown_name(
        "dataset", spec, BUILTIN_DATASETS + KERAS_DATASETS,
        hint="A folder of images (or an archive of one) is given by its path (e.g. `data` "
             "./images or `data` images.tar.gz).",
    )


def held_out_fraction(images: int | None) -> float:
    """The default share of a held-out split (validation or test) of ``images`` images:
    :data:`HELD_OUT_FRACTION`, capped at :data:`HELD_OUT_IMAGES` images (15% when the count is
    unknown)."""
    if not images or images <= 0:
        return HELD_OUT_FRACTION
    return min(HELD_OUT_FRACTION, HELD_OUT_IMAGES / images)


def split_fractions(val_split: float | None, test_split: float | None,
                    images: int | None) -> tuple[float, float]:
    """``(val_split, test_split)`` with each None replaced by :func:`held_out_fraction` of
    ``images`` (a source's count: :func:`count_images`)."""
    default = held_out_fraction(images)
    return (default if val_split is None else val_split,
            default if test_split is None else test_split)


def load_dataset(spec: str, height: int, width: int, channels: int, *,
                 val_split: float | None = HELD_OUT_FRACTION,
                 test_split: float | None = HELD_OUT_FRACTION, seed: int = 0) -> Dataset:
    """Load ``spec`` (a name, a folder path or an archive path) resized to HxWxC and split
    train/val/test.

    Defaults: 15% validation, 15% test (a model trained elsewhere loses nothing to a large test
    split), seed 0. None: training's default, 15% but at most 2,500 images
    (:func:`held_out_fraction`). ``source`` records the fractions used.
    """
    from edgecv.data.archive import is_archive

    if val_split is None or test_split is None:
        val_split, test_split = split_fractions(val_split, test_split, count_images(spec))

    kind = dataset_kind(spec)
    archive = kind == "folder" and is_archive(spec) and not Path(spec).is_dir()
    if kind == "folder" and not archive and not Path(spec).is_dir():
        raise DataError(f"data folder '{spec}' does not exist or is not a directory.")
    args = (height, width, channels, val_split, test_split, seed)
    if kind == "builtin":
        dataset = _load_digits(*args)
    elif kind == "keras":
        dataset = _load_keras_dataset(spec, *args)
    elif archive:
        dataset = _load_archive(spec, *args)
    else:
        dataset = _load_folder(spec, *args)
    if len(dataset.train) == 0:
        raise DataError(f"dataset '{spec}' left no training images after the split.")
    dataset.source.update({"val_split": val_split, "test_split": test_split, "seed": seed})
    return dataset
