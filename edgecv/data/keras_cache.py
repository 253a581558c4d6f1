"""Read ``keras.datasets`` files already in Keras' cache, with numpy/pickle/gzip only (no TF).

``keras.datasets.X.load_data()`` downloads into ``$KERAS_HOME/datasets`` (default
``~/.keras/datasets``) and re-reads from there. Reading those same files directly lets
``--data cifar10|mnist|fashion_mnist`` work offline and without importing TensorFlow when a copy
is present. Layouts (Keras 3 and the older Keras 2 one):

- cifar10: ``cifar-10-batches-py-target/cifar-10-batches-py/`` (Keras 3) or
  ``cifar-10-batches-py/`` (Keras 2): pickled ``data_batch_1`` .. ``data_batch_5``, ``test_batch``
- mnist: ``mnist.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``)
- fashion_mnist: ``fashion-mnist/{train,t10k}-{labels-idx1,images-idx3}-ubyte.gz``

Each reader returns ``((x_train, y_train), (x_test, y_test))`` like Keras (uint8 images,
channels last), or None when the files are not all there.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np

from edgecv.errors import DataError


def keras_datasets_dir() -> Path:
    """``$KERAS_HOME/datasets``, else ``~/.keras/datasets`` (where Keras caches downloads)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "datasets"


# The globals an array pickle needs, and nothing else: a cache file must not run code.
# The same list as Keras' own RestrictedUnpickler.
_ALLOWED_GLOBALS = frozenset({("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct"),
                              ("numpy", "ndarray"), ("numpy", "dtype")})


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays only (:data:`_ALLOWED_GLOBALS`)."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}'")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as handle:
        batch = _ArrayUnpickler(handle, encoding="bytes").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data = np.asarray(batch["data"], np.uint8)
    x = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)  # stored channels first
    return x, np.asarray(batch["labels"], np.int64)


def read_cifar10(root: Path) -> tuple | None:
    for folder in (root / "cifar-10-batches-py-target" / "cifar-10-batches-py",
                   root / "cifar-10-batches-py"):
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        if all((folder / name).is_file() for name in names):
            parts = [_cifar_batch(folder / name) for name in names]
            x_train = np.concatenate([x for x, _ in parts[:5]])
            y_train = np.concatenate([y for _, y in parts[:5]])
            return (x_train, y_train), parts[5]
    return None


def read_mnist(root: Path) -> tuple | None:
    path = root / "mnist.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        return (npz["x_train"], npz["y_train"]), (npz["x_test"], npz["y_test"])


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=offset)


def read_fashion_mnist(root: Path) -> tuple | None:
    folder = root / "fashion-mnist"
    names = ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
    if not all((folder / name).is_file() for name in names):
        return None
    y_train, y_test = _idx(folder / names[0], 8), _idx(folder / names[2], 8)
    x_train = _idx(folder / names[1], 16).reshape(len(y_train), 28, 28)
    x_test = _idx(folder / names[3], 16).reshape(len(y_test), 28, 28)
    return (x_train, y_train), (x_test, y_test)


READERS = {"cifar10": read_cifar10, "mnist": read_mnist, "fashion_mnist": read_fashion_mnist}


def load_cached(name: str) -> tuple | None:
    """The Keras-cached copy of dataset ``name`` as Keras returns it, or None if absent.

    A copy that is present but unreadable raises DataError naming the folder and the fix.
    """
    root = keras_datasets_dir()
    try:
        return READERS[name](root)
    except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise DataError(
            f"the cached '{name}' files under '{root}' cannot be read ({type(exc).__name__}: "
            f"{exc})"[:300] + "; delete them so Keras downloads a fresh copy."
        ) from exc
