"""``edgecv bench``: every artifact on every target, through the runtime backends and the one
timing loop (:mod:`edgecv.timing`), joined with size and accuracy.

One row per (artifact, target, threads). A row's ``status`` is ``ok`` (measured), ``unavailable``
(the target or runtime is missing here: the reason says what), ``n/a`` (this artifact can never
run on that target) or ``failed`` (it should have run and did not: the reason is the error).
A target that nothing can run on here is one row with every reason, not one row per artifact.
No number is ever written for a row that did not run.

The timed input is a real test image through :func:`edgecv.preprocessing.prepare_image`, the
path predict and camera use; accuracy runs the whole test set the same way.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv import __version__
from edgecv.benchmarks.machine import current_rss_mb, machine_info, machine_warnings, peak_rss_mb
from edgecv.timing import time_call, timed
from edgecv.errors import EdgecvError, ModelFileError, UsageError
from edgecv.preprocessing import model_pixels_to_bgr, prepare_image
from edgecv.runtime import open_backend
from edgecv.runtime.base import BackendUnavailable
from edgecv.runtime.integrity import CHECKSUM_POLICIES
from edgecv.runtime.targets import (KERAS_SUFFIXES, TARGETS, is_saved_model, not_applicable,
                                   probe, runtime_for)
from edgecv.testset import TESTSET_NAME, TestSet, load_testset

ARTIFACT_SUFFIXES = (".tflite", ".onnx", *KERAS_SUFFIXES)
# Report order: the fp32 reference first, then smaller and faster formats, ONNX, Keras last
# (Keras loads TensorFlow, whose memory would inflate every later row's RSS).
FORMAT_ORDER = ("tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_int8_qat",
                "tflite_int16x8", "tflite_int8_mixed", "tflite_edgetpu", "onnx", "onnx_int8", "keras")
SAMPLES_KEPT = 2000
# The runtime whose absence means the target itself is absent.
PRIMARY_RUNTIME = {"cpu": "litert", "gpu": "onnxruntime", "tpu": "keras", "edgetpu": "litert"}  # raw latencies stored per row, for the distribution plot


@dataclass
class BenchSettings:
    """How to measure. Defaults: targets all, threads [1], 100 runs and 1 s per row, 10 warm-ups,
    checksum warn."""

    targets: list[str] = field(default_factory=lambda: list(TARGETS))
    threads: list[int] = field(default_factory=lambda: [1])
    runs: int = 100
    min_time_s: float = 1.0
    warmup: int = 10
    checksum: str = "warn"
    custom_objects: str | None = None  # FILE.py[:Names] for Keras models with custom layers
    weights: str | None = None  # the weights file of a Keras .json config

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise UsageError(f"--runs must be at least 1, received {self.runs}.")
        if self.min_time_s < 0:
            raise UsageError(f"--min-time must be 0 or more, received {self.min_time_s}.")
        if self.warmup < 0:
            raise UsageError(f"--warmup must be 0 or more, received {self.warmup}.")
        if self.checksum not in CHECKSUM_POLICIES:
            raise UsageError(f"--checksum must be one of {', '.join(CHECKSUM_POLICIES)}, "
                             f"received '{self.checksum}'.")
        if not self.threads or any(t < 1 for t in self.threads):
            raise UsageError(f"--threads must list counts of at least 1, received {self.threads}.")


def parse_threads(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]; ``max`` stands for every usable core."""
    import os

    values = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "max":
            values.append(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                          else os.cpu_count() or 1)
            continue
        try:
            values.append(int(part))
        except ValueError as exc:
            raise UsageError(f"--threads takes counts like 1,2,4 (or max), received '{text}'.") from exc
    return list(dict.fromkeys(values))


def discover(paths: Iterable[str | Path], include_keras: bool = True) -> list[Path]:
    """Model files to benchmark: files as given (a Keras file brings the ``<stem>_export/``
    folder that ``edgecv convert MODEL`` wrote); a directory contributes its .tflite/.onnx files
    and, for a run directory, ``export/`` and (with ``include_keras``) ``model.keras``."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            if path.suffix.lower() not in ARTIFACT_SUFFIXES:
                raise ModelFileError(f"unsupported model file type '{path.suffix}' for '{path}'; "
                                     "expected .tflite, .onnx, .keras, .h5 or .json (with "
                                     "--weights).")
            found.append(path)
            if path.suffix.lower() in KERAS_SUFFIXES:  # and what `edgecv convert MODEL` wrote
                from edgecv.converters.sources import default_out_dir

                found.extend(sorted(p for p in default_out_dir(path).glob("*")
                                    if p.suffix in (".tflite", ".onnx")))
        elif is_saved_model(path):
            found.append(path)
            from edgecv.converters.sources import default_out_dir

            found.extend(sorted(p for p in default_out_dir(path).glob("*")
                                if p.suffix in (".tflite", ".onnx")))
        elif path.is_dir():
            folders = [path, path / "export"]
            for folder in folders:
                found.extend(sorted(p for p in folder.glob("*") if p.suffix in (".tflite", ".onnx")
                                    and not p.name.startswith(".")))
            if include_keras and (path / "model.keras").is_file():
                found.append(path / "model.keras")
        else:
            raise UsageError(f"'{path}' does not exist; give run directories, export "
                             "directories or model files.")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise UsageError(f"no .tflite, .onnx or .keras model found in {', '.join(map(str, paths))}; "
                         "run edgecv convert first.")
    return unique


def find_testset(artifacts: list[Path]) -> Path | None:
    """The ``testset.npz`` that convert wrote beside the artifacts (or in RUN/export)."""
    for artifact in artifacts:
        for folder in (artifact.parent, artifact.parent / "export"):
            if (folder / TESTSET_NAME).is_file():
                return folder / TESTSET_NAME
    return None


def borrowed_card(model: Path, artifacts: list[Path]):
    """For a Keras model that is not in a run directory: the card that ``edgecv convert`` put in
    one of its artifacts (``source_run`` is the model's path), re-labelled as ``keras``."""
    from dataclasses import replace

    from edgecv.runtime import read_card

    for path in artifacts:
        if path.suffix not in (".tflite", ".onnx"):
            continue
        try:
            card = read_card(path)
        except EdgecvError:
            continue
        if card is not None and card.source_run == str(model.resolve()):
            return replace(card, format="keras", input_dtype="float32", output_dtype="float32",
                           input_quantization=None, output_quantization=None, extra={})
    return None


def _format_of(path: Path, card) -> str:
    if card is not None and card.format:
        return card.format
    if runtime_for(path) == "keras":
        return "keras"
    return path.suffix.lstrip(".")


def _empty_row(path: Path, target: str, threads: int | None, status: str, reason: str | None,
               fmt: str | None = None) -> dict:
    return {"artifact": path.name if path.name else str(path), "path": str(path),
            "format": fmt, "runtime": None, "target": target, "threads": threads,
            "status": status, "reason": reason, "size_bytes": None, "sha256": None,
            "accuracy": None, "test_images": None, "init_ms": None, "first_ms": None,
            "mean_ms": None, "std_ms": None, "min_ms": None, "p50_ms": None, "p90_ms": None,
            "p99_ms": None, "max_ms": None, "throughput_per_s": None, "runs": None,
            "preprocess_ms": None, "rss_delta_mb": None, "peak_rss_mb": None,
            "speedup_vs_fp32": None, "baseline": None, "samples_ms": []}


def _inputs(backend, testset: TestSet | None) -> tuple[list[np.ndarray], object]:
    """(the test images as decoded BGR/gray images, or one synthetic image when there is no
    test set; the model's Preprocessing)."""
    card = backend.card
    if card is None:
        raise UsageError(f"'{backend.path.name}' carries no edgecv model card, so its "
                         "preprocessing is unknown; convert it with edgecv convert.")
    pre = card.preprocessing
    if testset is None:
        # No test set: time a synthetic image of the right size (accuracy stays unknown).
        image = np.random.default_rng(0).integers(0, 256, (pre.height, pre.width, pre.channels),
                                                  dtype=np.uint8)
        return [model_pixels_to_bgr(image)], pre
    if testset.x.shape[1:] != pre.input_shape:
        raise UsageError(f"the test set's images are {testset.x.shape[1:]}, but "
                         f"'{backend.path.name}' takes {pre.input_shape}; give --data for this model.")
    return [model_pixels_to_bgr(image) for image in testset.x], pre


def _accuracy(backend, prepared: np.ndarray, labels: np.ndarray, batch: int = 64) -> float:
    scores = np.concatenate([backend.run(prepared[i:i + batch])
                             for i in range(0, len(prepared), batch)])
    return float((scores.argmax(1) == labels).mean())


def bench_artifact(path: Path, target: str, threads: list[int | None], settings: BenchSettings,
                   testset: TestSet | None, card=None) -> list[dict]:
    """Rows for one artifact on one target (one per thread count). ``card`` stands in for a
    Keras model's missing card."""
    rows, accuracy, preprocess_ms = [], None, None
    size, sha256 = None, None
    if path.is_file():  # a SavedModel directory's size comes from its backend
        data = path.read_bytes()
        size, sha256 = len(data), hashlib.sha256(data).hexdigest()
    for count in threads:
        row = _empty_row(path, target, count, "ok", None)
        row.update(runtime=runtime_for(path), size_bytes=size, sha256=sha256)
        rss_before = current_rss_mb()
        try:
            backend, init_ms = timed(lambda: open_backend(
                path, target=target, threads=count, checksum=settings.checksum,
                custom_objects=settings.custom_objects, weights=settings.weights))
        except BackendUnavailable as exc:
            rows.append({**row, "status": "unavailable", "reason": exc.reason})
            break
        except EdgecvError as exc:
            rows.append({**row, "status": "failed", "reason": str(exc)})
            break
        with backend:
            backend.card = backend.card or card
            row["format"] = _format_of(path, backend.card)
            row["size_bytes"] = row["size_bytes"] or backend.size_bytes
            row["warnings"] = list(backend.warnings)
            try:
                images, pre = _inputs(backend, testset)
                if testset is not None and accuracy is None:
                    prepared = np.stack([prepare_image(image, pre) for image in images])
                    accuracy = _accuracy(backend, prepared, testset.y)
                batch = prepare_image(images[0], pre)[None]
                if preprocess_ms is None:
                    pre_stats, _ = time_call(lambda: prepare_image(images[0], pre),
                                             runs=settings.runs, min_time_s=0, warmup=3)
                    preprocess_ms = pre_stats.p50_ms
                stats, raw = time_call(lambda: backend.run(batch), runs=settings.runs,
                                       min_time_s=settings.min_time_s, warmup=settings.warmup)
            except EdgecvError as exc:
                rows.append({**row, "status": "failed", "reason": str(exc)})
                break
            rss_after = current_rss_mb()  # while loaded: close() releases the runtime's memory
        samples = raw / 1e6
        if len(samples) > SAMPLES_KEPT:  # evenly spaced in time, so drift stays visible
            samples = samples[np.linspace(0, len(samples) - 1, SAMPLES_KEPT).astype(int)]
        row.update(stats.to_dict())
        row.update({"init_ms": init_ms, "accuracy": accuracy,
                    "test_images": None if testset is None else len(testset),
                    "preprocess_ms": preprocess_ms, "peak_rss_mb": round(peak_rss_mb(), 1),
                    "rss_delta_mb": None if rss_before is None or rss_after is None
                    else round(rss_after - rss_before, 1),
                    "samples_ms": [round(float(s), 5) for s in samples]})
        rows.append(row)
    return rows


def _edgetpu_compiled(path: Path) -> bool:
    if path.suffix != ".tflite":
        return False
    from edgecv.runtime.targets import is_edgetpu_compiled

    try:
        return is_edgetpu_compiled(path.read_bytes())
    except Exception:  # a corrupt file fails with its own reason when it is opened
        return False


def add_speedups(rows: list[dict]) -> None:
    """``speedup_vs_fp32`` = p50 of the same family's fp32 artifact (TFLite fp32 for TFLite
    formats, ONNX fp32 for ONNX int8) on the same target and thread count / this row's p50."""
    reference = {"tflite": "tflite_fp32", "onnx": "onnx"}
    by_key = {(r["format"], r["target"], r["threads"]): r for r in rows if r["status"] == "ok"}
    for row in rows:
        if row["status"] != "ok" or not row["format"]:
            continue
        family = "onnx" if row["format"].startswith("onnx") else row["format"].split("_")[0]
        base = by_key.get((reference.get(family), row["target"], row["threads"]))
        if base is not None and base["p50_ms"]:
            row["speedup_vs_fp32"] = round(base["p50_ms"] / row["p50_ms"], 3)
            row["baseline"] = base["artifact"]


def run_benchmark(artifacts: list[Path], settings: BenchSettings, testset_path: Path | None = None,
                  progress: Callable[[dict], None] | None = None) -> dict:
    """Benchmark ``artifacts`` on ``settings.targets``; return the report dict."""
    testset = load_testset(testset_path) if testset_path else None
    info = machine_info()
    warnings = machine_warnings(info)
    rows: list[dict] = []
    # Read once per artifact, not once per target.
    runtimes = {path: runtime_for(path) for path in artifacts}
    compiled = {path: _edgetpu_compiled(path) for path in artifacts}
    cards = {path: borrowed_card(path, artifacts) for path in artifacts
             if runtimes[path] == "keras"}
    for target in settings.targets:
        target_rows, missing = [], []
        for path in artifacts:
            runtime = runtimes[path]
            reason = not_applicable(target, runtime, compiled[path])
            if reason:
                missing.append((path, "n/a", reason))
                continue
            reason = probe(target, runtime)
            if reason:
                missing.append((path, "unavailable", reason))
                continue
            threads = settings.threads if target == "cpu" and runtime != "keras" else [None]
            new = bench_artifact(path, target, threads, settings, testset, cards.get(path))
            target_rows.extend(new)
            for row in new:
                if progress:
                    progress(row)
        if not target_rows and missing:
            # One row for the target: why the hardware is absent first, then why the artifacts
            # could not run on it anyway (e.g. no libedgetpu, and no model compiled for it).
            absent = probe(target, PRIMARY_RUNTIME[target])
            reasons = list(dict.fromkeys([*([absent] if absent else []),
                                          *(reason for _, status, reason in missing
                                            if status == "unavailable"),
                                          *(reason for _, status, reason in missing
                                            if status == "n/a")]))
            status = "unavailable" if absent or any(s == "unavailable" for _, s, _ in missing) else "n/a"
            row = _empty_row(Path("*"), target, None, status, "; ".join(reasons), "*")
            row["artifact"] = "*"
            target_rows.append(row)
            if progress:
                progress(row)
        else:
            target_rows.extend(_empty_row(p, target, None, status, reason)
                               for p, status, reason in missing)
        rows.extend(target_rows)
    order = {name: i for i, name in enumerate(FORMAT_ORDER)}
    rows.sort(key=lambda r: (TARGETS.index(r["target"]), order.get(r["format"], len(order)),
                             r["artifact"], r["threads"] or 0))
    add_speedups(rows)
    for row in rows:
        warnings.extend(w for w in row.pop("warnings", []) if w not in warnings)
    return {
        "edgecv_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": info,
        "settings": {"runs": settings.runs, "min_time_s": settings.min_time_s,
                     "warmup": settings.warmup, "threads": settings.threads,
                     "targets": settings.targets, "batch": 1, "checksum": settings.checksum,
                     "testset": str(testset_path) if testset_path else None,
                     "input": "test images" if testset else "synthetic image (no test set)"},
        "warnings": warnings,
        "rows": rows,
    }
