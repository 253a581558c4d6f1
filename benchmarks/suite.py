"""``edgecv bench``: every artifact on every target, through the runtime backends and the one
timing loop (:mod:`edgecv.timing`), joined with size and accuracy.

One row per (artifact, target, threads, batch). A row's ``status`` is ``ok`` (measured), ``unavailable``
(the target or runtime is missing here: the reason says what), ``n/a`` (this artifact can never
run on that target) or ``failed`` (it should have run and did not: the reason is the error).
A target that nothing can run on here is one row with every reason, not one row per artifact.
No number is ever written for a row that did not run.

Rows are timed in interleaved rounds: every artifact of a target is opened first, then each
round runs every row for a slice of its runs, so a noisy minute on a shared machine slows all
rows alike and a ranking does not flip with it. Each row reports its p50 and a 90% interval of
it (``p50_ci_ms``, from the round medians); :mod:`edgecv.benchmarks.recommend` reads them.

The timed input is a real test image through :class:`edgecv.classify.Classifier` (its
``prepare`` and ``infer``), the path predict and camera use; accuracy runs the whole test set
the same way.

The ``mcu`` target runs full-int8 .tflite files in TFLite Micro's interpreter
(:class:`edgecv.runtime.tflm.TFLMBackend`) through the same path and timing loop; its rows add
the arena, the agreement with the same file on LiteRT and the fit per ``--mcu-profile``, and
their time is that of the reference kernels on this host (``host_reference_kernels_*``, never
the latency fields: :data:`edgecv.runtime.targets.HOST_REFERENCE_TARGETS`). A file made
elsewhere, without a model card, still gets its arena, size and fit there, timed on a synthetic
input in the model's own type.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgecv import __version__
from edgecv.benchmarks.recommend import recommend_deployments
from edgecv.benchmarks.machine import current_rss_mb, machine_info, machine_warnings, peak_rss_mb
from edgecv.benchmarks.row import BenchRow
from edgecv.timing import time_call, time_rounds, timed
from edgecv.errors import BackendUnavailable, EdgecvError, ModelFileError, UsageError
from edgecv.modelfile.kinds import (KERAS_SUFFIXES, is_saved_model, model_export_dir,
                                   runtime_for)
from edgecv.rundir import ExportDir, RunDir
from edgecv.classify import Classifier
from edgecv.preprocessing import model_pixels_to_bgr
from edgecv.runtime import open_backend
from edgecv.runtime.base import agreement, agreement_counting_ties, quantization_steps
from edgecv.runtime.integrity import CHECKSUM_POLICIES
from edgecv.runtime.targets import (ALL_TARGETS, HOST_REFERENCE_TARGETS, TARGETS,
                                    not_applicable, probe)
from edgecv.testset import TestSet, load_testset

ARTIFACT_SUFFIXES = (".tflite", ".onnx", *KERAS_SUFFIXES)
# Report order: the fp32 reference first, then smaller and faster formats, ONNX, Keras last
# (Keras loads TensorFlow, whose memory would inflate every later row's RSS).
FORMAT_ORDER = ("tflite_fp32", "tflite_fp16", "tflite_dynamic", "tflite_int8", "tflite_int8_qat",
                "tflite_int16x8", "tflite_int8_mixed", "tflite_edgetpu", "onnx", "onnx_int8",
                "onnx_int8_qat", "onnx_int8_mixed", "keras")
SAMPLES_KEPT = 2000
CI_CONFIDENCE = 0.9  # of each row's p50 interval (round medians; 9 rounds reach 96%)
# The runtime whose absence means the target itself is absent.
PRIMARY_RUNTIME = {"cpu": "litert", "gpu": "onnxruntime", "tpu": "keras", "edgetpu": "litert",
                   "mcu": "litert"}
# The latency fields of a row; a host-reference row (mcu) holds its time elsewhere.
LATENCY_FIELDS = ("first_ms", "mean_ms", "std_ms", "min_ms", "p50_ms", "p50_ci_ms", "p90_ms",
                  "p99_ms", "max_ms", "throughput_per_s", "runs", "rounds")


@dataclass
class BenchSettings:
    """How to measure. Defaults: targets all (every one but mcu), threads [1], 100 runs and 1 s
    per row spread over 9 interleaved rounds, 10 warm-ups, checksum warn, no --mcu-profile."""

    targets: list[str] = field(default_factory=lambda: list(ALL_TARGETS))
    threads: list[int] = field(default_factory=lambda: [1])
    batches: list[int] = field(default_factory=lambda: [1])  # images per call (--batch)
    runs: int = 100
    min_time_s: float = 1.0
    warmup: int = 10
    rounds: int = 9  # interleaved rounds: each row's runs and min_time_s are spread over them
    checksum: str = "warn"
    max_drop: float | None = None  # recommendation's accuracy budget (pp); None: convert's, else 1
    custom_objects: str | None = None  # FILE.py[:Names] for Keras models with custom layers
    weights: str | None = None  # the weights file of a Keras .json config
    mcu_profiles: list = field(default_factory=list)  # boards the mcu rows are fitted to

    def __post_init__(self) -> None:
        if self.mcu_profiles and "mcu" not in self.targets:
            raise UsageError("`mcu_profile` fits the mcu target's rows: add mcu to `targets` "
                             "(e.g. `targets='cpu,mcu'`).")
        if self.runs < 1:
            raise UsageError(f"`runs` must be at least 1, received {self.runs}.")
        if self.min_time_s < 0:
            raise UsageError(f"`min_time` must be 0 or more, received {self.min_time_s}.")
        if self.rounds < 1:
            raise UsageError(f"`rounds` must be at least 1, received {self.rounds}.")
        if self.warmup < 0:
            raise UsageError(f"`warmup` must be 0 or more, received {self.warmup}.")
        if self.max_drop is not None and not self.max_drop >= 0:
            raise UsageError(f"`max_drop` must be 0 or more, received {self.max_drop}.")
        if self.checksum not in CHECKSUM_POLICIES:
            raise UsageError(f"`checksum` must be one of {', '.join(CHECKSUM_POLICIES)}, "
                             f"received '{self.checksum}'.")
        if not self.threads or any(t < 1 for t in self.threads):
            raise UsageError(f"`threads` must list counts of at least 1, received {self.threads}.")
        if not self.batches or any(b < 1 for b in self.batches):
            raise UsageError(f"`batch` must list sizes of at least 1, received {self.batches}.")


def parse_threads(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]; ``max`` stands for every usable core."""
    from edgecv.runtime import usable_cores

    parts = [str(usable_cores()) if p.strip() == "max" else p for p in text.split(",")]
    return parse_counts(",".join(parts), "`threads`", "1,2,4 (or max)", received=text)


def parse_counts(text: str, flag: str, example: str = "1,8,32",
                 received: str | None = None) -> list[int]:
    """``"1,8,32"`` -> [1, 8, 32], duplicates dropped (:class:`BenchSettings` checks they are at
    least 1)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise UsageError(f"{flag} takes counts like {example}, received "
                         f"'{text if received is None else received}'.") from exc
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
                                     "`weights`).")
            found.append(path)
            if path.suffix.lower() in KERAS_SUFFIXES:  # and what `edgecv convert MODEL` wrote
                found.extend(sorted(p for p in model_export_dir(path).path.glob("*")
                                    if p.suffix in (".tflite", ".onnx")))
        elif is_saved_model(path):
            found.append(path)
            found.extend(sorted(p for p in model_export_dir(path).path.glob("*")
                                if p.suffix in (".tflite", ".onnx")))
        elif path.is_dir():
            run = RunDir(path)
            for folder in (path, run.export.path):
                found.extend(sorted(p for p in folder.glob("*") if p.suffix in (".tflite", ".onnx")
                                    and not p.name.startswith(".")))
            if include_keras and run.model.is_file():
                found.append(run.model)
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
        for export in (ExportDir(artifact.parent), RunDir(artifact.parent).export):
            if export.testset.is_file():
                return export.testset
    return None


def borrowed_card(model: Path, artifacts: list[Path]):
    """For a Keras model that is not in a run directory: the card that ``edgecv convert`` put in
    one of its artifacts (``source_run`` is the model's path), re-labelled as ``keras``."""
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


def _new_row(path: Path, target: str, threads: int | None, status: str, reason: str | None,
             fmt: str | None = None) -> BenchRow:
    """The one place a row is created: no measurement yet."""
    return BenchRow(artifact=path.name if path.name else str(path), path=str(path), format=fmt,
                    target=target, threads=threads, status=status, reason=reason)


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
                         f"'{backend.path.name}' takes {pre.input_shape}; give `data` for this model.")
    return [model_pixels_to_bgr(image) for image in testset.x], pre


def _scores(infer, prepared: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([infer(prepared[i:i + batch]) for i in range(0, len(prepared), batch)])


def _synthetic_batch(backend, batch_size: int) -> np.ndarray:
    """Random input in the model's own type (seeded), for a file without a card: what its
    time is measured on when nothing says how an image becomes its input."""
    rng = np.random.default_rng(0)
    shape = (batch_size, *backend.input_shape[1:])
    quantization = backend.input_quantization
    if quantization is None:
        return rng.random(shape, dtype=np.float32)
    info = np.iinfo(quantization[2])
    return rng.integers(info.min, info.max + 1, shape).astype(quantization[2])


def mcu_fields(path: Path, backend, settings: BenchSettings, prepared: np.ndarray | None,
               scores: np.ndarray | None) -> dict:
    """An mcu row's own figures: the arena TFLite Micro measured and the one to reserve, the
    fit per ``--mcu-profile`` and, with test images (``prepared``, TFLM's ``scores`` on them),
    top-1 agreement with the same file on LiteRT's default kernels (strict, and counting a tie
    for each of its classes) and the largest output difference in quantization steps."""
    from edgecv.runtime.boards import fit
    from edgecv.runtime.litert import LiteRTBackend
    from edgecv.runtime.tflm import reserved_arena

    arena = backend.arena
    reserved = reserved_arena(arena.total)
    fields = {"arena_bytes": arena.total, "arena_head_bytes": arena.head,
              "arena_tail_bytes": arena.tail, "arena_reserved_bytes": reserved,
              "mcu_fit": [fit(profile, reserved, backend.size_bytes)
                          for profile in settings.mcu_profiles] or None}
    if prepared is not None:
        with LiteRTBackend(path, checksum="off") as litert:
            reference = _scores(litert.run_prepared, prepared)
        fields["agreement_litert"] = agreement(scores, reference)
        fields["agreement_litert_counting_ties"] = agreement_counting_ties(scores, reference)
        fields["max_diff_steps_litert"] = quantization_steps(scores, reference,
                                                             backend.micro.output["scale"])
    return fields


@dataclass
class _Opened:
    """A row whose backend is open and ready to time."""

    row: BenchRow
    backend: object
    infer: Callable[[np.ndarray], np.ndarray]  # the Classifier's: what predict and camera call
    batch: np.ndarray
    error: EdgecvError | None = None

    def run(self) -> None:
        if self.error is None:
            try:
                self.infer(self.batch)
            except EdgecvError as exc:  # reported as this row's failure, the others go on
                self.error = exc


def open_artifact(path: Path, target: str, threads: list[int | None], settings: BenchSettings,
                  testset: TestSet | None, card=None) -> tuple[list[BenchRow], list[_Opened]]:
    """Open one artifact on one target, one backend per thread count: accuracy on the test set
    (once), preprocessing time, init time, first call and the memory it added. Returns the rows
    already finished (unavailable or failed) and the opened ones, which :func:`time_opened`
    times. ``card`` stands in for a Keras model's missing card."""
    done, opened, accuracy, predictions, preprocess_ms, extra = [], [], None, None, None, None
    size, sha256, kernels = None, None, None
    if path.is_file():  # a SavedModel directory's size comes from its backend
        data = path.read_bytes()
        size, sha256 = len(data), hashlib.sha256(data).hexdigest()
    if runtime_for(path) == "onnxruntime" and target == "cpu":
        from edgecv.benchmarks.ort_kernels import integer_kernel_report

        kernels = integer_kernel_report(path)
    for count, batch_size in ((c, b) for c in threads for b in settings.batches):
        row = _new_row(path, target, count, "ok", None)
        row.batch = batch_size
        row.runtime, row.size_bytes, row.sha256 = runtime_for(path), size, sha256
        row.integer_kernels = kernels
        rss_before = current_rss_mb()
        try:
            backend, init_ms = timed(lambda: open_backend(
                path, target=target, threads=count, checksum=settings.checksum,
                custom_objects=settings.custom_objects, weights=settings.weights))
        except BackendUnavailable as exc:
            done.append(replace(row, status="unavailable", reason=exc.reason))
            break
        except EdgecvError as exc:
            done.append(replace(row, status="failed", reason=str(exc)))
            break
        backend.card = backend.card or card
        row.format = _format_of(path, backend.card)
        row.runtime = backend.name
        row.size_bytes = row.size_bytes or backend.size_bytes
        row.warnings = list(backend.warnings)
        try:
            scored_on = None  # the test set accuracy was measured on
            if backend.card is None and target in HOST_REFERENCE_TARGETS:
                # a file made elsewhere: no preprocessing says how an image becomes its input;
                # its arena, size and fit are what this target is for
                infer, batch = backend.run_prepared, _synthetic_batch(backend, batch_size)
                _, first_ms = timed(infer, batch)
                extra = extra or mcu_fields(path, backend, settings, None, None)
            else:
                images, pre = _inputs(backend, testset)
                classifier = Classifier(backend, preprocessing=pre)
                infer = classifier.infer
                batch = np.concatenate([classifier.prepare(images[i % len(images)])
                                        for i in range(batch_size)])
                _, first_ms = timed(infer, batch)  # before anything else runs on it
                scored_on = testset
                prepared = scores = None
                if testset is not None and accuracy is None:
                    prepared = np.concatenate([classifier.prepare(image) for image in images])
                    scores = _scores(infer, prepared)
                    # the top-1 class per test image, in order (a model's extra axes flattened)
                    top1 = scores.reshape(len(scores), -1).argmax(1)
                    accuracy, predictions = float((top1 == testset.y).mean()), top1.tolist()
                if target == "mcu" and extra is None:
                    extra = mcu_fields(path, backend, settings, prepared, scores)
                if preprocess_ms is None:
                    pre_stats, _ = time_call(lambda: classifier.prepare(images[0]),
                                             runs=settings.runs, min_time_s=0, warmup=3)
                    preprocess_ms = pre_stats.p50_ms
        except EdgecvError as exc:
            backend.close()
            done.append(replace(row, status="failed", reason=str(exc)))
            break
        rss_after = current_rss_mb()  # while loaded: close() releases the runtime's memory
        opened.append(_Opened(replace(
            row, init_ms=init_ms, first_ms=first_ms, accuracy=accuracy, predictions=predictions,
            test_images=None if scored_on is None else len(scored_on),
            preprocess_ms=preprocess_ms,
            rss_delta_mb=None if rss_before is None or rss_after is None
            else round(rss_after - rss_before, 1), **(extra or {})), backend, infer, batch))
    return done, opened


def time_opened(opened: list[_Opened], settings: BenchSettings) -> list[BenchRow]:
    """Time every opened backend in interleaved rounds (:func:`edgecv.timing.time_rounds`: each
    round runs every row once, so machine noise lands on all rows alike), then close them.
    Each row gets its p50 over all rounds and ``p50_ci_ms``, a 90% interval for it from the
    round medians."""
    try:
        timings = time_rounds([o.run for o in opened], rounds=settings.rounds,
                              runs=settings.runs, min_time_s=settings.min_time_s,
                              warmup=settings.warmup) if opened else []
    finally:
        for o in opened:
            o.backend.close()
    rows = []
    for o, timing in zip(opened, timings):
        if o.error is not None:
            rows.append(replace(o.row, status="failed", reason=str(o.error), init_ms=None,
                                first_ms=None, accuracy=None, predictions=None, test_images=None,
                                preprocess_ms=None, rss_delta_mb=None))
            continue
        samples = timing.samples_ns / 1e6
        if len(samples) > SAMPLES_KEPT:  # evenly spaced in time, so drift stays visible
            samples = samples[np.linspace(0, len(samples) - 1, SAMPLES_KEPT).astype(int)]
        stats = {**timing.stats.to_dict(), "first_ms": o.row.first_ms,
                 "throughput_per_s": o.row.batch * 1000.0 / timing.stats.mean_ms}
        low, high = timing.p50_interval(CI_CONFIDENCE)
        if o.row.target in HOST_REFERENCE_TARGETS:
            rows.append(_host_reference_row(o.row, timing.stats.p50_ms, (low, high)))
            continue
        rows.append(replace(o.row, **stats, rounds=settings.rounds,
                            p50_ci_ms=[round(low, 5), round(high, 5)],
                            peak_rss_mb=round(peak_rss_mb(), 1),
                            samples_ms=[round(float(s), 5) for s in samples]))
    return rows


def _host_reference_row(row: BenchRow, p50_ms: float, interval: tuple[float, float]) -> BenchRow:
    """A row of a target whose kernels ran on this host in place of the device's
    (:data:`~edgecv.runtime.targets.HOST_REFERENCE_TARGETS`): its time goes into
    ``host_reference_kernels_*`` only, and every latency and host-speed field stays empty, so
    no table, plot or recommendation takes it for the device's latency."""
    return replace(row, **{name: None for name in LATENCY_FIELDS}, init_ms=None,
                   preprocess_ms=None, rss_delta_mb=None, samples_ms=[],
                   host_reference_kernels_p50_ms=round(p50_ms, 5),
                   host_reference_kernels_p50_ci_ms=[round(interval[0], 5),
                                                     round(interval[1], 5)])


def _edgetpu_compiled(path: Path) -> bool:
    if path.suffix != ".tflite":
        return False
    from edgecv.runtime.targets import is_edgetpu_compiled

    try:
        return is_edgetpu_compiled(path.read_bytes())
    except Exception:  # a corrupt file fails with its own reason when it is opened
        return False


def _tflm_problem(path: Path) -> str | None:
    """Why TFLite Micro cannot run the .tflite at ``path`` (an op it lacks, a float tensor), or
    None; a file that cannot be read says why when it is opened."""
    from edgecv.runtime.tflm import tflm_incompatibility

    try:
        return tflm_incompatibility(path.read_bytes())
    except (OSError, EdgecvError):
        return None


def add_speedups(rows: list[BenchRow]) -> None:
    """``speedup_vs_fp32`` = p50 of the same family's fp32 artifact (TFLite fp32 for TFLite
    formats, ONNX fp32 for ONNX int8) on the same target and thread count / this row's p50."""
    reference = {"tflite": "tflite_fp32", "onnx": "onnx"}
    by_key = {(r.format, r.target, r.threads, r.batch): r for r in rows if r.status == "ok"}
    for row in rows:
        if row.status != "ok" or not row.format:
            continue
        family = "onnx" if row.format.startswith("onnx") else row.format.split("_")[0]
        base = by_key.get((reference.get(family), row.target, row.threads, row.batch))
        if base is not None and base.p50_ms:
            row.speedup_vs_fp32 = round(base.p50_ms / row.p50_ms, 3)
            row.baseline = base.artifact


def run_benchmark(artifacts: list[Path], settings: BenchSettings, testset_path: Path | None = None,
                  progress: Callable[[dict], None] | None = None) -> dict:
    """Benchmark ``artifacts`` on ``settings.targets``; return the report dict (its rows as
    bench.json dicts; ``progress`` gets each row's dict as it is measured)."""
    testset = load_testset(testset_path) if testset_path else None
    info = machine_info()
    warnings = machine_warnings(info)
    rows: list[BenchRow] = []
    # Read once per artifact, not once per target.
    runtimes = {path: runtime_for(path) for path in artifacts}
    compiled = {path: _edgetpu_compiled(path) for path in artifacts}
    tflm_problems = ({path: _tflm_problem(path) for path in artifacts
                      if runtimes[path] == "litert"} if "mcu" in settings.targets else {})
    cards = {path: borrowed_card(path, artifacts) for path in artifacts
             if runtimes[path] == "keras"}
    for target in settings.targets:
        target_rows, missing, opened = [], [], []
        for path in artifacts:
            runtime = runtimes[path]
            reason = not_applicable(target, runtime, compiled[path], tflm_problems.get(path))
            if reason:
                missing.append((path, "n/a", reason))
                continue
            reason = probe(target, runtime)
            if reason:
                missing.append((path, "unavailable", reason))
                continue
            threads = settings.threads if target == "cpu" and runtime != "keras" else [None]
            done, ready = open_artifact(path, target, threads, settings, testset,
                                        cards.get(path))
            target_rows.extend(done)
            opened.extend(ready)
            for row in [*done, *(o.row for o in ready)]:
                if progress:
                    progress(row.to_dict())
        target_rows.extend(time_opened(opened, settings))
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
            row = _new_row(Path("*"), target, None, status, "; ".join(reasons), "*")
            row.artifact = "*"
            target_rows.append(row)
            if progress:
                progress(row.to_dict())
        else:
            target_rows.extend(_new_row(p, target, None, status, reason)
                               for p, status, reason in missing)
        rows.extend(target_rows)
    order = {name: i for i, name in enumerate(FORMAT_ORDER)}
    rows.sort(key=lambda r: (TARGETS.index(r.target), order.get(r.format, len(order)),
                             r.artifact, r.threads or 0, r.batch or 0))
    add_speedups(rows)
    for row in rows:
        warnings.extend(w for w in row.warnings if w not in warnings)
        row.emulated = info["emulation"] is not None
    row_dicts = [row.to_dict() for row in rows]
    max_drop, budget_from = accuracy_budget(settings, artifacts)
    return {
        "edgecv_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": info,
        "settings": {"runs": settings.runs, "min_time_s": settings.min_time_s,
                     "warmup": settings.warmup, "rounds": settings.rounds,
                     "ci_confidence": CI_CONFIDENCE, "threads": settings.threads,
                     "batches": settings.batches,
                     "targets": settings.targets, "checksum": settings.checksum,
                     "mcu_profiles": [profile.name for profile in settings.mcu_profiles],
                     "testset": str(testset_path) if testset_path else None,
                     "input": "test images" if testset else "synthetic image (no test set)"},
        "warnings": warnings,
        "recommendations": [{**choice, "max_drop_from": budget_from}
                            for choice in recommend_deployments(row_dicts, max_drop)],
        "rows": row_dicts,
    }


def accuracy_budget(settings: BenchSettings, artifacts: list[Path]) -> tuple[float, str]:
    """(max drop in pp, where it came from): ``--max-drop``, else the budget ``edgecv convert``
    verified the artifacts with (``conversion.json`` beside them), else 1.0 (convert's default)."""
    if settings.max_drop is not None:
        return settings.max_drop, "--max-drop"
    import json

    for folder in dict.fromkeys(p.parent for p in artifacts):
        for candidate in (ExportDir(folder).conversion, RunDir(folder).export.conversion):
            try:
                value = json.loads(candidate.read_text()).get("max_drop_pp")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(value, (int, float)) and value >= 0:
                return float(value), str(candidate)
    return 1.0, "default (edgecv convert's)"
