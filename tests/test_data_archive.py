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


# --- limits on what an archive unpacks to (issue 31): bombs are refused as they stream ---------

def _one_line(info, *fragments):
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _zip_bomb(target: Path, size: int) -> Path:
    """A zip of one member of ``size`` zero bytes (deflate: about 1,000 to 1)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("train/cat/ok.jpg", b"abc")
        out.writestr("train/dog/zeros.jpg", bytes(size))
    return target


def test_a_zip_bomb_is_refused_by_the_ratio_it_unpacks_at(tmp_path, monkeypatch):
    import dataclasses

    from edgecv.data.archive import UnpackLimits, unpack_archive

    bomb = _zip_bomb(tmp_path / "bomb.zip", 16 << 20)
    limits = UnpackLimits(ratio_after_bytes=2 << 20)  # judged from 2 MiB instead of 64 MiB
    with pytest.raises(DataError) as info:
        unpack_archive(bomb, limits)
    _one_line(info, "bomb.zip' refused", "member 'train/dog/zeros.jpg'",
              "EDGECV_MAX_UNPACK_RATIO=200", "raise EDGECV_MAX_UNPACK_RATIO")
    assert cache_entries(tmp_path) == []  # the partial unpack is gone
    # The limit is settable: trusted, the same archive unpacks.
    monkeypatch.setenv("EDGECV_MAX_UNPACK_RATIO", "100000")
    root, _ = unpack_archive(bomb, dataclasses.replace(UnpackLimits.from_env(),
                                                       ratio_after_bytes=2 << 20))
    assert (root / "dog" / "zeros.jpg").stat().st_size == 16 << 20
    monkeypatch.setenv("EDGECV_MAX_UNPACK_RATIO", "a lot")
    with pytest.raises(UsageError, match="EDGECV_MAX_UNPACK_RATIO must be a whole number"):
        UnpackLimits.from_env()


def _archive_of(target: Path, members: dict[str, bytes]) -> Path:
    """A .zip (deflated) or .tar.gz of ``members`` (name -> bytes), by ``target``'s suffix."""
    if target.suffix == ".zip":
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
            for name, data in members.items():
                out.writestr(name, data)
        return target
    with tarfile.open(target, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target


def test_many_empty_members_are_a_bomb_too(tmp_path):
    """100,000 files from a 480 KB tar.gz (issue 31): each file takes at least a block of disk,
    so thousands of empty members from a few KB pass the ratio only a bomb reaches."""
    from edgecv.data.archive import UnpackLimits, unpack_archive

    archive = _archive_of(tmp_path / "many.tar.gz",
                      {f"train/cat/{i:05d}.jpg": b"" for i in range(1000)})
    assert archive.stat().st_size < 20_000
    with pytest.raises(DataError) as info:
        unpack_archive(archive, UnpackLimits(ratio_after_bytes=1 << 20))
    _one_line(info, "many.tar.gz' refused", "EDGECV_MAX_UNPACK_RATIO", "member 'train/cat/0")
    assert cache_entries(tmp_path) == []


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_more_members_than_the_limit_are_refused(tmp_path, monkeypatch, suffix):
    from edgecv.data.archive import unpack_archive

    members = {f"train/{c}/{i}.jpg": b"abc" for c in ("cat", "dog") for i in range(15)}
    archive = _archive_of(tmp_path / f"many{suffix}", members)
    monkeypatch.setenv("EDGECV_MAX_ARCHIVE_MEMBERS", "20")
    with pytest.raises(DataError) as info:
        unpack_archive(archive)
    _one_line(info, f"many{suffix}' refused", "EDGECV_MAX_ARCHIVE_MEMBERS=20",
              "raise EDGECV_MAX_ARCHIVE_MEMBERS")
    assert cache_entries(tmp_path) == []
    monkeypatch.setenv("EDGECV_MAX_ARCHIVE_MEMBERS", "1000")
    root, _ = unpack_archive(archive)
    assert len(list(root.rglob("*.jpg"))) == 30


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_a_member_larger_than_any_image_is_refused(tmp_path, monkeypatch, suffix):
    from edgecv.data.archive import unpack_archive

    noise = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    members = {"train/cat/ok.jpg": b"abc", "train/dog/huge.jpg": noise}
    archive = _archive_of(tmp_path / f"huge{suffix}", members)
    monkeypatch.setenv("EDGECV_MAX_IMAGE_BYTES", "100000")
    with pytest.raises(DataError) as info:
        unpack_archive(archive)
    _one_line(info, f"huge{suffix}' refused", "member 'train/dog/huge.jpg'",
              "EDGECV_MAX_IMAGE_BYTES=100,000", "raise EDGECV_MAX_IMAGE_BYTES")
    assert cache_entries(tmp_path) == []


def test_the_unpack_fits_its_budget_and_the_free_space(folder, tmp_path, monkeypatch):
    from edgecv.data.archive import UnpackLimits, unpack_archive

    archive = make_archive(folder, tmp_path / "mini.tar")
    monkeypatch.setenv("EDGECV_MAX_UNPACK_BYTES", "50000")  # 36 files take 36 blocks at least
    with pytest.raises(DataError) as info:
        unpack_archive(archive)
    _one_line(info, "mini.tar' refused", "EDGECV_MAX_UNPACK_BYTES=50,000",
              "raise EDGECV_MAX_UNPACK_BYTES")
    assert cache_entries(tmp_path) == []
    monkeypatch.delenv("EDGECV_MAX_UNPACK_BYTES")
    # A disk that would be left with less free space than the margin: refused, and where.
    with pytest.raises(DataError) as info:
        unpack_archive(archive, UnpackLimits(free_margin_bytes=1 << 62))
    _one_line(info, "mini.tar' refused", "free in", "set EDGECV_CACHE_DIR")
    assert cache_entries(tmp_path) == []
    root, _ = unpack_archive(archive)
    assert len(list(root.rglob("*.jpg"))) == len(CLASSES) * PER_CLASS


def _gnu_sparse_member(name: str, realsize: int) -> bytes:
    """An old-GNU sparse member ('S'): 512 bytes stored, declared ``realsize`` long (tarfile
    reads such members but cannot write them)."""
    stored = b"x" * 512
    info = tarfile.TarInfo(name)
    info.size, info.type = len(stored), tarfile.GNUTYPE_SPARSE
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[386:398] = tarfile.itn(realsize - len(stored), 12, tarfile.GNU_FORMAT)  # offset
    header[398:410] = tarfile.itn(len(stored), 12, tarfile.GNU_FORMAT)  # bytes there
    header[483:495] = tarfile.itn(realsize, 12, tarfile.GNU_FORMAT)  # the file's real size
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header) + stored


def _sparse_archive(target: Path, kind: str) -> Path:
    """A tar.xz whose member 'train/cat/big.jpg' is sparse, declared 64 GiB, in one of the three
    ways GNU tar writes them."""
    size = 64 << 30
    raw = io.BytesIO()
    if kind == "gnu":
        raw.write(_gnu_sparse_member("train/cat/big.jpg", size) + bytes(1024))
    else:
        pax = ({"GNU.sparse.size": str(size), "GNU.sparse.numblocks": "1",
                "GNU.sparse.map": "0,512"} if kind == "pax_0.1" else
               {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                "GNU.sparse.name": "train/cat/big.jpg", "GNU.sparse.realsize": str(size)})
        data = (b"1\n0\n512\n".ljust(512, b"\0") if kind == "pax_1.0" else b"") + b"x" * 512
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo("train/cat/big.jpg")
            info.pax_headers, info.size = pax, len(data)
            tar.addfile(info, io.BytesIO(data))
    import lzma

    target.write_bytes(lzma.compress(raw.getvalue()))
    return target


@pytest.mark.parametrize("kind", ["gnu", "pax_0.1", "pax_1.0"])
def test_a_sparse_member_is_refused(tmp_path, kind):
    from edgecv.data.archive import unpack_archive

    archive = _sparse_archive(tmp_path / "sparse.tar.xz", kind)
    assert archive.stat().st_size < 1000
    with pytest.raises(DataError) as info:
        unpack_archive(archive)
    _one_line(info, "sparse.tar.xz' refused", "'train/cat/big.jpg' is a sparse file",
              "68,719,476,736 bytes")
    assert cache_entries(tmp_path) == []


KILLED_UNPACK = """
import os, signal, sys
from pathlib import Path
from edgecv.data import archive

def die_mid_unpack(path, target, *rest):
    (Path(target) / "half.jpg").write_bytes(b"x" * 1000)
    os.kill(os.getpid(), signal.SIGKILL)

archive._extract = die_mid_unpack
archive.unpack_archive(sys.argv[1])
"""


def test_a_killed_unpack_is_removed_by_the_next_one(folder, tmp_path):
    import subprocess
    import sys

    archive = make_archive(folder, tmp_path / "mini.tar.gz")
    child = subprocess.run([sys.executable, "-c", KILLED_UNPACK, str(archive)],
                           env=os.environ.copy(), capture_output=True, timeout=120)
    assert child.returncode == -9, child.stderr
    datasets = tmp_path / "cache" / "datasets"
    left = [p for p in datasets.iterdir() if p.name.startswith(".")]
    assert len(left) == 1 and (left[0] / "half.jpg").is_file()  # what a SIGKILL leaves
    # A concurrent unpack (this process: alive) keeps its folder.
    alive = datasets / f".0123456789abcdef.{os.getpid()}-abc.partial"
    alive.mkdir()
    from edgecv.data.archive import unpack_archive

    unpack_archive(archive)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert cache_entries(tmp_path) == sorted([alive.name, digest])


def _small_archives(folder: Path, tmp_path: Path) -> dict[str, bytes]:
    """Every archive kind of a small real tree, and the hostile ones of the tests above."""
    small = tmp_path / "small" / "train"
    for cls in CLASSES[:2]:
        (small / cls).mkdir(parents=True)
        for path in sorted((folder / cls).iterdir())[:2]:
            shutil.copy(path, small / cls / path.name)
    kinds = {}
    for suffix in (".zip", ".tar", ".tar.gz", ".tar.xz"):
        kinds[f"good{suffix}"] = make_archive(small, tmp_path / f"good{suffix}").read_bytes()
    kinds["bomb.zip"] = _zip_bomb(tmp_path / "bomb.zip", 4 << 20).read_bytes()
    kinds["sparse.tar.xz"] = _sparse_archive(tmp_path / "sparse.tar.xz", "gnu").read_bytes()
    kinds["many.tar.gz"] = _archive_of(tmp_path / "many.tar.gz", {
        f"train/cat/{i}.jpg": b"" for i in range(400)}).read_bytes()
    return kinds


def test_damaged_and_hostile_archives_are_one_line_errors(folder, tmp_path):
    """Seeded byte flips in each kind of archive, good and hostile: each either unpacks or is
    refused with one DataError line (a damaged deflate or LZMA member of a zip raised zlib.error
    or LZMAError through the corrupt-archive net)."""
    import random

    from edgecv.data.archive import UnpackLimits, unpack_archive

    limits = UnpackLimits(ratio_after_bytes=1 << 20)
    rng = random.Random(31)
    outcomes = {}
    for name, data in _small_archives(folder, tmp_path).items():
        for trial in range(20):
            damaged = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
            path = tmp_path / "fuzz" / f"{trial}-{name}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(bytes(damaged))
            try:
                unpack_archive(path, limits)
                outcome = "unpacked"
            except DataError as exc:
                assert "\n" not in str(exc) and path.name in str(exc), str(exc)
                outcome = "refused" if "refused" in str(exc) else "corrupt"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert set(outcomes) == {"unpacked", "refused", "corrupt"}, outcomes
    leftovers = [p for p in (tmp_path / "cache" / "datasets").iterdir() if p.name.startswith(".")]
    assert leftovers == []


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
