"""What a real dataset archive unpacks to, against the limits of edgecv.data.archive, and what
making the unpack durable and checking its images cost.

    python benchmarks/experiments/archive_unpack.py --archive ../shared/data/cifar10_train.tar.xz

Recorded (issue 31, items 3 and 4):
- the archive's members, bytes, largest member, and the disk its unpack takes counted as
  :class:`edgecv.data.archive.UnpackLimits` counts it (each file in whole blocks); the ratio of
  that disk to the archive's bytes at the end and its highest value once more than
  ``ratio_after_bytes`` are taken (what the ratio limit judges), against the default limits;
- wall time of ``unpack_archive`` (hash, one pass with the limits checked, one syncfs), of that
  pass alone, and of the standard library's two passes it replaced (``getmembers`` +
  ``extractall(filter='data')``, unflushed);
- three ways to make the unpacked files durable before the rename, each timed after a fresh
  unpack: one syncfs(2) of the file system, one sync(2), an fsync of every file and folder;
- ``check_image_file`` per file with its checks (size, header, pixels) against the header read
  alone, on the unpacked images; and an image bomb: a PNG of 10,000 x 10,000 black pixels,
  decoded by OpenCV (time, memory) and refused from its header by ``check_image_file``.

The machine is shared: the load average is recorded before each figure, and each one is
measured ``--repeats`` times, interleaved; the lowest is the one to compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import struct
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from _common import RESULTS_DIR
from edgecv.benchmarks.machine import current_rss_mb, machine_info, peak_rss_mb
from edgecv.data import archive as archive_module
from edgecv.data.archive import UnpackLimits, unpack_archive
from edgecv.images import PNG_SIGNATURE, check_image_file, image_size


def archive_figures(path: Path, limits: UnpackLimits) -> dict:
    """Members, bytes and the disk/archive ratio as the unpack's budget counts them."""
    block = os.statvfs(tempfile.gettempdir()).f_frsize or 4096
    members = files = content = largest = disk = 0
    highest_ratio = 0.0
    with archive_module._CountingFile(path) as counted, \
            tarfile.open(fileobj=counted, mode="r|*") as tar:
        for member in tar:
            members += 1
            if member.isfile():
                files += 1
                content += member.size
                largest = max(largest, member.size)
                tar.extractfile(member).read()  # the bytes read from the archive, as unpacking
            disk += max(1, -(-member.size // block)) * block
            if disk > limits.ratio_after_bytes:
                highest_ratio = max(highest_ratio, disk / counted.bytes_read)
        archive_bytes = path.stat().st_size
    return {"archive_bytes": archive_bytes, "members": members, "files": files,
            "content_bytes": content, "largest_member_bytes": largest, "block_bytes": block,
            "disk_bytes": disk, "ratio_at_end": round(disk / archive_bytes, 2),
            "highest_ratio_judged": round(highest_ratio, 2),
            "content_ratio": round(content / archive_bytes, 2)}


def timed(label: str, function, *args) -> dict:
    """Wall seconds of ``function(*args)`` and the 1-minute load average before it."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    function(*args)
    seconds = time.perf_counter() - start
    print(f"{label}: {seconds:.2f} s (load {load:.1f})", flush=True)
    return {"s": round(seconds, 3), "load": round(load, 1)}


def two_pass_extractall(path: Path, target: Path) -> None:
    with tarfile.open(path) as tar:
        tar.getmembers()
        tar.extractall(target, filter="data")


def fsync_each(folder: Path) -> None:
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


DURABILITY = {"syncfs_once": archive_module._flush_to_disk, "sync_once": lambda _: os.sync(),
              "fsync_each_file_and_folder": fsync_each}


def image_figures(root: Path, count: int) -> dict:
    files = sorted(root.rglob("*.jpg"))[:count]
    datas = [f.read_bytes() for f in files]  # warm the page cache for both timings
    start = time.perf_counter()
    for data in datas:
        image_size(data)
    header_us = (time.perf_counter() - start) / len(datas) * 1e6
    start = time.perf_counter()
    reasons = [check_image_file(f)[0] for f in files]
    check_us = (time.perf_counter() - start) / len(files) * 1e6
    return {"files": len(files), "refused": sum(r is not None for r in reasons),
            "header_us_per_file": round(header_us, 1),
            "check_image_file_us_per_file": round(check_us, 1)}


def png_bomb(side: int) -> bytes:
    """A PNG of side x side black RGB pixels, compressed row by row (never held whole)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    compressor = zlib.compressobj(9)
    row = bytes(1 + 3 * side)  # filter byte + pixels
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def image_bomb_figures(folder: Path, side: int = 10_000) -> dict:
    data = png_bomb(side)
    path = folder / "bomb.png"
    path.write_bytes(data)
    before = current_rss_mb()
    start = time.perf_counter()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    decode_s = time.perf_counter() - start
    grown = current_rss_mb() - before
    decoded_bytes = decoded.nbytes
    del decoded
    start = time.perf_counter()
    reason, _ = check_image_file(path)
    refuse_ms = (time.perf_counter() - start) * 1000
    return {"png_bytes": len(data), "pixels": side * side, "decoded_bytes": decoded_bytes,
            "opencv_decode_s": round(decode_s, 2), "opencv_rss_growth_mb": round(grown, 1),
            "check_image_file_ms": round(refuse_ms, 2), "check_image_file_reason": reason}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "archive_unpack.json")
    args = parser.parse_args()
    limits = UnpackLimits()
    result = {"command": "python benchmarks/experiments/archive_unpack.py --archive "
                         f"{args.archive.name} --repeats {args.repeats}",
              "machine": machine_info(), "limits": dataclasses.asdict(limits),
              "archive": {"name": args.archive.name, **archive_figures(args.archive, limits)}}
    print(json.dumps(result["archive"]), flush=True)
    with tempfile.TemporaryDirectory() as work:
        result["image_bomb"] = image_bomb_figures(Path(work))
    print(json.dumps(result["image_bomb"]), flush=True)
    times: dict[str, list] = {"unpack_archive": [], "one_pass_extract_unflushed": [],
                              "stdlib_two_pass_extractall": [],
                              **{f"durable_{k}": [] for k in DURABILITY}}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        os.environ["EDGECV_CACHE_DIR"] = str(work / "cache")
        for repeat in range(args.repeats):
            if repeat:
                shutil.rmtree(work / "cache")
            times["unpack_archive"].append(timed("unpack_archive", unpack_archive, args.archive))
            times["one_pass_extract_unflushed"].append(timed(
                "one-pass extract", archive_module._extract, args.archive, work / "new", limits))
            shutil.rmtree(work / "new")
            times["stdlib_two_pass_extractall"].append(
                timed("two-pass extractall", two_pass_extractall, args.archive, work / "old"))
            shutil.rmtree(work / "old")
            for name, flush in DURABILITY.items():
                target = work / name
                target.mkdir()
                os.sync()  # only the tree unpacked next is left to flush
                archive_module._extract(args.archive, target, limits)
                times[f"durable_{name}"].append(timed(name, flush, target))
                shutil.rmtree(target)
        root, _ = unpack_archive(args.archive)  # the last repeat's: found in the cache
        result["images"] = image_figures(root, 5000)
    result["seconds"] = times
    result["best_seconds"] = {k: min(t["s"] for t in v) for k, v in times.items()}
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
