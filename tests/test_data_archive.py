"""`--data ARCHIVE`, streaming above the memory budget, and Keras' cache read without TensorFlow."""

import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgecv.data import load_dataset, memory_budget, source_spec
from edgecv.errors import DataError, UsageError

MINI = Path(__file__).parent / "data" / "cifar10_mini"
CLASSES = ("airplane", "cat", "ship")
PER_CLASS = 12


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Every test gets its own dataset cache and an empty Keras home."""
    monkeypatch.setenv("EDGECV_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv("EDGECV_MAX_MEMORY_BYTES", raising=False)


@pytest.fixture
def folder(tmp_path):
    """train/<class>/*.jpg: a small real-image tree (3 classes x 12 CIFAR JPEGs)."""
    root = tmp_path / "src" / "train"
    for cls in CLASSES:
        (root / cls).mkdir(parents=True)
        for path in sorted((MINI / cls).iterdir())[:PER_CLASS]:
            shutil.copy(path, root / cls / path.name)
    return root


def make_archive(folder: Path, target: Path) -> Path:
    """Pack folder's parent tree (so the archive holds train/<class>/...)."""
    base = folder.parent
    if target.name.endswith(".zip"):
        with zipfile.ZipFile(target, "w") as archive:
            for path in sorted(base.rglob("*")):
                archive.write(path, path.relative_to(base).as_posix())
    else:
        mode = {".tar": "w", ".gz": "w:gz", ".tgz": "w:gz", ".xz": "w:xz"}[target.suffix]
        with tarfile.open(target, mode) as tar:
            tar.add(base / folder.name, arcname=folder.name)
    return target


def cache_entries(tmp_path):
    datasets = tmp_path / "cache" / "datasets"
    return sorted(p.name for p in datasets.iterdir()) if datasets.is_dir() else []


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz"])
def test_archive_loads_like_its_folder(folder, tmp_path, suffix):
    archive = make_archive(folder, tmp_path / f"mini{suffix}")
    from_folder = load_dataset(str(folder), 32, 32, 3, seed=1)
    from_archive = load_dataset(str(archive), 32, 32, 3, seed=1)
    assert from_archive.labels == list(CLASSES)  # single top folder 'train/' became the root
    assert from_archive.name == "mini"
    for a, b in [(from_folder.train, from_archive.train), (from_folder.test, from_archive.test)]:
        assert a.ids == b.ids
        np.testing.assert_array_equal(a.x, b.x)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert from_archive.source["kind"] == "archive"
    assert from_archive.source["sha256"] == digest
    assert from_archive.source["path"] == str(archive.resolve())
    assert source_spec(from_archive.source) == str(archive.resolve())
    assert source_spec(from_folder.source) == str(folder.resolve())
    assert cache_entries(tmp_path) == [digest]  # no temporary folder left behind


def test_second_use_does_not_unpack_again(folder, tmp_path):
    archive = make_archive(folder, tmp_path / "mini.tar.gz")
    first = load_dataset(str(archive), 32, 32, 3)
    cached = tmp_path / "cache" / "datasets" / first.source["sha256"] / "train"
    # Remove one image from the cache: a re-unpack would bring it back.
    (cached / first.test.ids[0]).unlink()
    second = load_dataset(str(archive), 32, 32, 3)
    total = lambda ds: len(ds.train) + len(ds.val) + len(ds.test)
    assert total(second) == total(first) - 1
    # Different content, different cache entry.
    shutil.copy(folder / "cat" / min(os.listdir(folder / "cat")), folder / "cat" / "extra.jpg")
    other = make_archive(folder, tmp_path / "mini2.tar.gz")
    third = load_dataset(str(other), 32, 32, 3)
    assert total(third) == total(first) + 1
    assert len(cache_entries(tmp_path)) == 2


def test_archive_without_top_folder_uses_its_root(folder, tmp_path):
    archive = tmp_path / "flat.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*.jpg")):
            out.write(path, path.relative_to(folder).as_posix())
        out.writestr("__MACOSX/cat/._x.jpg", b"resource fork")  # ignored archiver debris
    ds = load_dataset(str(archive), 32, 32, 3)
    assert ds.labels == list(CLASSES)
    one_class = tmp_path / "one.zip"
    with zipfile.ZipFile(one_class, "w") as out:
        out.write(next(folder.rglob("*.jpg")), "pics/cat/a.jpg")
        out.writestr("pics/readme.txt", "x")
    with pytest.raises(DataError, match=r"data archive '.*one.zip' \(unpacked in .*\): "
                                        r"data folder .* needs at least 2 classes"):
        load_dataset(str(one_class), 32, 32, 3)


def test_bad_jpeg_inside_an_archive_is_skipped_and_listed(folder, tmp_path):
    data = (folder / "cat" / min(os.listdir(folder / "cat"))).read_bytes()
    (folder / "cat" / "broken.jpg").write_bytes(data[: len(data) // 2])
    (folder / "ship" / "readme.txt").write_text("not an image")
    ds = load_dataset(str(make_archive(folder, tmp_path / "mini.tar.xz")), 32, 32, 3)
    skipped = {item["path"]: item["reason"] for item in ds.skipped}
    assert skipped == {"cat/broken.jpg": "truncated JPEG (no end marker)",
                       "ship/readme.txt": "unsupported extension '.txt'"}
    assert len(ds.train) + len(ds.val) + len(ds.test) == len(CLASSES) * PER_CLASS


def _tar_with(target: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(target, "w:gz") as tar:
        ok = tarfile.TarInfo("train/cat/ok.jpg")
        ok.size = 3
        tar.addfile(ok, io.BytesIO(b"abc"))
        tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return target


def _tar_member(name, kind=tarfile.REGTYPE, linkname="", size=0):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, size
    return info


@pytest.mark.parametrize("member, fragment", [
    (_tar_member("../escape.jpg", size=3), "'../escape.jpg' points outside the archive root"),
    (_tar_member("train/../../escape.jpg", size=3), "points outside the archive root"),
    (_tar_member("/tmp/edgecv_abs.jpg", size=3), "'/tmp/edgecv_abs.jpg' has an absolute path"),
    (_tar_member("train/cat/link.jpg", tarfile.SYMTYPE, "/etc/passwd"), "is a symbolic link"),
    (_tar_member("train/cat/hard.jpg", tarfile.LNKTYPE, "train/cat/ok.jpg"), "is a hard link"),
    (_tar_member("train/cat/dev", tarfile.CHRTYPE), "is a device file or FIFO"),
    (_tar_member("train/cat/fifo", tarfile.FIFOTYPE), "is a device file or FIFO"),
])
def test_unsafe_tar_member_is_refused_in_one_line(tmp_path, member, fragment):
    archive = _tar_with(tmp_path / "evil.tar.gz", member, b"abc" if member.isfile() else b"")
    with pytest.raises(DataError) as info:
        load_dataset(str(archive), 32, 32, 3)
    message = str(info.value)
    assert "evil.tar.gz" in message and fragment in message and "\n" not in message
    assert cache_entries(tmp_path) == []  # nothing unpacked, no temp folder left
    assert not (tmp_path / "escape.jpg").exists() and not Path("/tmp/edgecv_abs.jpg").exists()


@pytest.mark.parametrize("name, mode, fragment", [
    ("../escape.jpg", 0o100644, "points outside the archive root"),
    ("/abs.jpg", 0o100644, "has an absolute path"),
    ("train/cat/link.jpg", 0o120777, "is a symbolic link"),
    ("train/cat/fifo", stat.S_IFIFO | 0o644, "is a device file or FIFO"),
])
def test_unsafe_zip_member_is_refused_in_one_line(tmp_path, name, mode, fragment):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("train/cat/ok.jpg", b"abc")
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        out.writestr(info, b"/etc/passwd")
    with pytest.raises(DataError) as info:
        load_dataset(str(archive), 32, 32, 3)
    assert "evil.zip" in str(info.value) and fragment in str(info.value)
    assert "\n" not in str(info.value) and cache_entries(tmp_path) == []


def test_corrupt_archives_are_one_line(folder, tmp_path):
    cases = {}
    # seeded: the same noise on every run (os.urandom's could, once in 65536, start as gzip)
    (tmp_path / "noise.tar.gz").write_bytes(np.random.default_rng(3).bytes(4000))
    cases["noise.tar.gz"] = tmp_path / "noise.tar.gz"
    good = make_archive(folder, tmp_path / "good.tar.xz").read_bytes()
    (tmp_path / "cut.tar.xz").write_bytes(good[: len(good) // 2])
    cases["cut.tar.xz"] = tmp_path / "cut.tar.xz"
    zipped = bytearray(make_archive(folder, tmp_path / "good.zip").read_bytes())
    zipped[2000] ^= 0xFF  # inside a member's data: CRC mismatch on extraction
    (tmp_path / "flipped.zip").write_bytes(bytes(zipped))
    cases["flipped.zip"] = tmp_path / "flipped.zip"
    (tmp_path / "text.zip").write_text("not a zip")
    cases["text.zip"] = tmp_path / "text.zip"
    for name, path in cases.items():
        with pytest.raises(DataError) as info:
            load_dataset(str(path), 32, 32, 3)
        message = str(info.value)
        assert name in message and "corrupt or not a supported archive" in message, message
        assert "\n" not in message
    assert cache_entries(tmp_path) == []
    with pytest.raises(DataError, match="missing.tar.gz' does not exist"):
        load_dataset(str(tmp_path / "missing.tar.gz"), 32, 32, 3)
    with pytest.raises(DataError, match="'nowhere.zip' does not exist"):  # a bare name is a path
        load_dataset("nowhere.zip", 32, 32, 3)


def test_over_the_memory_budget_the_train_split_streams(folder, monkeypatch):
    in_memory = load_dataset(str(folder), 24, 24, 3, seed=2)
    monkeypatch.setenv("EDGECV_MAX_MEMORY_BYTES", "1000")
    assert memory_budget() == 1000
    streamed = load_dataset(str(folder), 24, 24, 3, seed=2)
    assert not in_memory.train.streamed and streamed.train.streamed
    assert streamed.source["streamed"] is True
    assert streamed.train.ids == in_memory.train.ids and len(streamed.train) == len(in_memory.train)
    np.testing.assert_array_equal(streamed.train.y, in_memory.train.y)
    np.testing.assert_array_equal(streamed.test.x, in_memory.test.x)  # val/test stay in memory
    with pytest.raises(DataError, match="streamed from disk"):
        _ = streamed.train.x
    np.testing.assert_array_equal(streamed.train.images([3, 1]), in_memory.train.x[[3, 1]])
    monkeypatch.setenv("EDGECV_MAX_MEMORY_BYTES", "lots")
    with pytest.raises(UsageError, match="received 'lots'"):
        memory_budget()


@pytest.mark.tf
def test_streamed_pixels_equal_in_memory_pixels(folder, monkeypatch):
    pytest.importorskip("tensorflow")
    from edgecv.data.stream import image_label_dataset

    in_memory = load_dataset(str(folder), 24, 24, 3)
    monkeypatch.setenv("EDGECV_MAX_MEMORY_BYTES", "0")
    streamed = load_dataset(str(folder), 24, 24, 3)
    pairs = list(image_label_dataset(streamed.train, 24, 24, 3).as_numpy_iterator())
    assert len(pairs) == len(in_memory.train)
    np.testing.assert_array_equal(np.stack([x for x, _ in pairs]), in_memory.train.x)
    assert [int(y) for _, y in pairs] == in_memory.train.y.tolist()
    assert pairs[0][0].dtype == np.uint8 and pairs[0][1].dtype == np.int64
    memory_pairs = list(image_label_dataset(in_memory.train, 24, 24, 3).as_numpy_iterator())
    np.testing.assert_array_equal(np.stack([x for x, _ in memory_pairs]), in_memory.train.x)
    shuffled = list(image_label_dataset(streamed.train, 24, 24, 3, shuffle=True, seed=1)
                    .as_numpy_iterator())
    assert sorted(int(y) for _, y in shuffled) == sorted(in_memory.train.y.tolist())
    assert [int(y) for _, y in shuffled] != in_memory.train.y.tolist()
    with pytest.raises(DataError, match=r"holds \(24, 24, 3\) images, the model needs \(32, 32, 3\)"):
        image_label_dataset(in_memory.train, 32, 32, 3)


# --- Keras' cache, written in the exact format keras.datasets leaves there --------------------

def _write_cifar(folder: Path, rng):
    folder.mkdir(parents=True)
    expected = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, 4)]
        with (folder / name).open("wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * 4}, handle)
        expected.append((data, labels))
    return expected


def test_cifar10_is_read_from_the_keras_cache(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "keras_home" / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    batches = _write_cifar(folder, rng)
    ds = load_dataset("cifar10", 32, 32, 3, val_split=0.0, test_split=0.0)
    assert ds.source["kind"] == "keras" and ds.source["cache"].endswith("datasets")
    assert len(ds.train) == 24
    # sample 0 is data_batch_1 row 0: channel-first planes R, G, B of 1024 bytes each
    row = batches[0][0][0]
    expected = np.stack([row[:1024], row[1024:2048], row[2048:]], -1).reshape(32, 32, 3)
    np.testing.assert_array_equal(ds.train.x[0], expected)
    labels = [label for _, batch in batches for label in batch]
    assert ds.train.y.tolist() == labels


def test_cifar10_keras2_layout_and_unsafe_pickle(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "keras_home" / "datasets" / "cifar-10-batches-py"
    _write_cifar(folder, rng)
    assert len(load_dataset("cifar10", 32, 32, 3, val_split=0, test_split=0).train) == 24
    (folder / "test_batch").write_bytes(pickle.dumps(os.system))  # would run code if trusted
    with pytest.raises(DataError, match="cannot be read .*refusing to load 'posix.system'"):
        load_dataset("cifar10", 32, 32, 3)


def test_mnist_and_fashion_mnist_are_read_from_the_keras_cache(tmp_path):
    rng = np.random.default_rng(2)
    datasets = tmp_path / "keras_home" / "datasets"
    datasets.mkdir(parents=True)
    x = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    y = np.tile(np.arange(10, dtype=np.uint8), 3)
    np.savez(datasets / "mnist.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    ds = load_dataset("mnist", 28, 28, 1, val_split=0, test_split=0)
    np.testing.assert_array_equal(ds.train.x[..., 0], x)
    assert ds.train.y.tolist() == y.tolist()

    fashion = datasets / "fashion-mnist"
    fashion.mkdir()
    for prefix, images, labels in (("train", x[:20], y[:20]), ("t10k", x[20:], y[20:])):
        with gzip.open(fashion / f"{prefix}-labels-idx1-ubyte.gz", "wb") as handle:
            handle.write(b"\x00\x00\x08\x01" + len(labels).to_bytes(4, "big") + labels.tobytes())
        with gzip.open(fashion / f"{prefix}-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(b"\x00\x00\x08\x03" + len(images).to_bytes(4, "big")
                         + (28).to_bytes(4, "big") * 2 + images.tobytes())
    ds = load_dataset("fashion_mnist", 28, 28, 1, val_split=0, test_split=0)
    assert ds.labels[9] == "ankle_boot"
    np.testing.assert_array_equal(ds.train.x[..., 0], x)
    assert ds.train.y.tolist() == y.tolist()


@pytest.mark.tf
@pytest.mark.slow
def test_train_on_an_archive_records_it(folder, tmp_path):
    """`edgecv train --data mini.tar.gz` (in process: the CLI passes --data through as a string,
    and a child process would pay TensorFlow's import again)."""
    pytest.importorskip("tensorflow")
    from edgecv.training import TrainConfig, train

    archive = make_archive(folder, tmp_path / "mini.tar.gz")
    out = tmp_path / "run"
    train(TrainConfig(data=str(archive), model="seed_cnn", img_size=16, epochs=1,
                      tensorboard=False, out=str(out)), log=lambda _: None)
    config = json.loads((out / "config.json").read_text())
    data = config["data"]
    assert data["kind"] == "archive" and data["path"] == str(archive.resolve())
    assert data["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert config["labels"] == list(CLASSES) and config["preprocessing"]["channels"] == 3
    assert (out / "model.keras").is_file()
    # What `edgecv convert` reloads (data["name"] for a non-folder source) gives the same split.
    split = json.loads((out / "split.json").read_text())
    again = load_dataset(data["name"], 16, 16, 3, val_split=data["val_split"],
                         test_split=data["test_split"], seed=data["seed"])
    assert again.test.ids == split["test"] and again.train.ids == split["train"]
