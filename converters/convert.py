"""``edgecv convert``: a training run or a user's model -> verified, self-describing TFLite and
ONNX artifacts. This module is the orchestration only; each step has a module of its own:

1. load the source as one :class:`~edgecv.converters.rundata.RunData` (:mod:`edgecv.converters.load`:
   a run directory, or a .keras / .h5 / SavedModel / JSON model plus flags and data);
2. for each requested row of the format table (:mod:`edgecv.converters.formats`): build it with its
   model card embedded (:mod:`edgecv.converters.cards`), write it atomically, run it in its real
   runtime on the held-out test data and compare with the reference model
   (:mod:`edgecv.converters.verify`);
3. with ``--recover``, follow an int8 model over budget with a mixed int8/float one
   (:mod:`edgecv.converters.recover`);
4. record the figures and the SHA-256 of each file in ``conversion.json`` (one
   :class:`~edgecv.results.ConversionRow` per file, typed from the moment its build starts to the
   file), then fail
   (:class:`~edgecv.errors.AccuracyDropError`) if an artifact is over budget (``--max-drop``,
   ``--min-agreement``: :class:`~edgecv.converters.verify.Budget`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from edgecv.converters.formats import (EDGETPU_REPORT, FORMAT_TABLE, QAT_TWINS, Conversion,
                                      Format, Settings, selected_formats)
from edgecv.converters.fuse import export_run
from edgecv.converters.load import load_source
from edgecv.converters.recover import MIXED_STEM, check_recover_mix
from edgecv.converters.rundata import RunData
from edgecv.converters.verify import Budget, budget_drop, figures
from edgecv.errors import AccuracyDropError, UsageError, first_line
from edgecv.io import atomic_path, write_json_atomic
from edgecv.results import Conversion as ConversionRecord
from edgecv.results import ConversionRow
from edgecv.rundir import ExportDir, RunDir
from edgecv.testset import save_testset


def convert_run(source: str | Path | RunData, formats: list[str], *,
                out_dir: str | Path | None = None, io: str = "uint8", calib_samples: int = 300,
                opset: int = 17, max_drop: float = 1.0, recover: bool = False,
                select_tf_ops: bool = False, options=None, calib_data: str | None = None,
                onnx_calibration: str = "auto", qat_epochs: int | None = None,
                qat_lr: float | None = None, log: Callable[[str], None] = print,
                progress: Callable[[str], None] | None = None,
                recover_mix: str = "auto", min_agreement: float | None = None,
                mcu_profiles=()) -> ConversionRecord:
    """Write and verify ``formats`` (fp32 is always included) for a run directory, a model file
    (read with ``options``, see :func:`edgecv.converters.load.load_source`) or an already loaded :class:`RunData`;
    return the :class:`~edgecv.results.Conversion` written as ``conversion.json`` (its
    ``out_dir`` the output folder).

    Defaults: uint8 I/O for the int8 model (its input the raw pixels: what phones' clients,
    the Edge TPU and TFLite Micro all take; ``io="int8"`` for int8 I/O), 300 calibration samples, opset 17, max drop 1.0 pp
    (of accuracy; of agreement with the reference when the data has no labels), no Flex ops.
    Output: ``out_dir``, else ``RUN/export`` or, for a model file, ``<stem>_export`` beside it.
    ``min_agreement`` (``--min-agreement``, percent, default none) also holds every artifact to
    that top-1 agreement with the reference (:class:`~edgecv.converters.verify.Budget`).
    Raises AccuracyDropError after writing ``conversion.json`` if an artifact is over budget.
    With ``recover``, an int8 TFLite or ONNX model over budget is followed by a mixed
    int8/float one (:func:`edgecv.converters.recover.recover`); if that one fits the budget, the
    int8 drop no longer fails the run; ``recover_mix`` (``--recover-mix``: auto, int16, float)
    says what the worst TFLite tensors get (:func:`edgecv.converters.recover.recover`).
    ``select_tf_ops`` allows Flex ops in fp32/fp16/dynamic (refused with int8, int16x8, edgetpu);
    a file that needs them is marked ``deployable: false`` and, since ai-edge-litert has no
    Flex delegate, recorded as not verified instead of failing.
    ``calib_data`` (same forms as ``--data``; default: the source's own training split)
    calibrates instead; ``onnx_calibration`` (default ``auto``, see :func:`edgecv.converters.formats.choose_onnx_int8`).
    ``int8_qat`` and ``onnx_int8_qat`` (quantization-aware fine-tuning, minutes of training,
    shared; the second is the first's int8 graph in ONNX) are written only when asked for by
    name; ``qat_epochs`` / ``qat_lr`` set the fine-tuning (default 2 and 1e-4).
    ``mcu`` (not part of --all) writes ``export/mcu/``, the int8 model for TFLite Micro
    (:mod:`edgecv.converters.mcu`), fitted to ``mcu_profiles`` (names or ``RAM,FLASH`` as for
    ``--mcu-profile``, or :class:`~edgecv.runtime.boards.BoardProfile`; default none).
    ``log`` gets one line per artifact, in table order; ``progress`` (default none) what is
    being built and verified now, for a status display.
    """
    from edgecv.runtime.boards import BoardProfile, parse_profile

    budget = Budget(max_drop, min_agreement)
    check_recover_mix(recover_mix)  # before minutes of loading
    profiles = tuple(p if isinstance(p, BoardProfile) else parse_profile(p)
                     for p in mcu_profiles or ())
    if profiles and "mcu" not in formats:
        raise UsageError("`mcu_profile` fits the microcontroller export: add `formats=['mcu']` (or bench a "
                         ".tflite with `targets='mcu'`).")
    settings = Settings(io=io, opset=opset, select_tf_ops=select_tf_ops,
                        onnx_calibration=onnx_calibration, qat_epochs=qat_epochs, qat_lr=qat_lr,
                        budget=budget, mcu_profiles=profiles)
    chosen = selected_formats(formats, settings)  # before minutes of loading
    if out_dir is not None:
        _refuse_foreign_files(Path(out_dir))  # before minutes of loading
        if "mcu" in formats:
            from edgecv.converters.mcu import check_folder

            check_folder(ExportDir(out_dir).mcu)
    run = _load(source, calib_samples, options, log, calib_data)
    info = _calibration_info(run, log)
    out = _output_dir(out_dir, run)
    with _writing_into(out, run):
        scores = _reference_scores(run, log)  # of the model as given
        run, folded = export_run(run, log)
        conversion = Conversion(run, settings, out, *scores, log=log)
        rows = _build_and_verify(chosen, conversion, progress)
        _split_int8_rounding(rows, conversion, budget)
        if recover:
            _recover_over_budget(rows, conversion, budget, recover_mix)
        _credit_qat(rows, budget)
        _write_testset(run, out, log)
        record = ConversionRecord(
            run=str(run.source), keras_accuracy=conversion.keras_accuracy,
            test_images=int(len(run.test_x)), calibration_samples=int(len(run.calibration)),
            calibration=info, int8_io=io, opset=opset, max_drop_pp=max_drop,
            max_drop_applies_to="accuracy" if run.test_y is not None else "agreement",
            min_agreement_pct=min_agreement, source=run.notes or None, folded=folded or None,
            int8_rounded=conversion.int8_rounded or None,
            select_tf_ops=True if select_tf_ops else None, artifacts=rows, out_dir=out)
        # what the Python API returns is the file
        write_json_atomic(ExportDir(out).conversion, record.to_dict())
    log(f"wrote {len(rows)} artifact(s) and conversion.json to {out}")
    _check_budget(rows, budget, out, record)
    return record


@contextlib.contextmanager
def _writing_into(out: Path, run: RunData):
    """conversion.json while convert writes into ``out``: it vouches for the files beside it
    (bench and predict check their SHA-256), so a record that lists none replaces it before
    the first file is replaced; the caller writes the full one once all are written. The
    record also marks the folder as convert's (:func:`_refuse_foreign_files`), so a killed
    conversion can be run again into it. If the conversion fails before any file of its own is
    in the folder, the record goes too: nothing is left behind."""
    export = ExportDir(out)
    write_json_atomic(export.conversion, {"run": str(run.source), "artifacts": [],
                                          "incomplete": "edgecv convert is writing this folder"})
    try:
        yield
    except BaseException:
        others = [name for name in files_convert_writes() if name != export.conversion.name]
        if not any(os.path.lexists(out / name) for name in others):
            export.conversion.unlink(missing_ok=True)
        raise


def _load(source: str | Path | RunData, calib_samples: int, options, log: Callable[[str], None],
          calib_data: str | None) -> RunData:
    if not isinstance(source, RunData):
        return load_source(source, calib_samples, options, log, calib_data=calib_data)
    if calib_data is not None:
        raise UsageError("calib_data applies when convert_run loads the source; a loaded "
                         "RunData already carries its calibration.")
    return source


def _calibration_info(run: RunData, log: Callable[[str], None]) -> dict:
    """What calibrated (conversion.json's ``calibration``), logged when its source is known."""
    info = run.calibration_info or {"count": int(len(run.calibration))}
    if info.get("source"):
        classes = info.get("per_class") or {}
        spread = (f", {min(classes.values())}..{max(classes.values())} per class over "
                  f"{len(classes)} classes" if classes else "")
        log(f"calibration: {info['count']} images from {info['source']} ({info['split']}"
            f"{spread})")
    return info


def _output_dir(out_dir: str | Path | None, run: RunData) -> Path:
    """``out_dir``, else the source's default; checked to replace nothing convert did not
    write (:func:`_refuse_foreign_files`), created and checked writable."""
    out = Path(out_dir) if out_dir else (run.default_out or RunDir(run.source).export.path)
    _refuse_foreign_files(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        raise UsageError(f"cannot write to output directory '{out}': {exc.strerror or exc}.") from exc
    return out


def files_convert_writes() -> list[str]:
    """The name of every file ``edgecv convert`` may write into its output folder: each
    format's, --recover's mixed models, the Edge TPU report, the microcontroller export's
    (``mcu/...``), the test set, conversion.json."""
    export = ExportDir(Path())
    return list(dict.fromkeys([
        *(spec.file for spec in FORMAT_TABLE.values()),
        *(f"{MIXED_STEM}{suffix}" for suffix in (".tflite", ".onnx")), EDGETPU_REPORT,
        *(str(path) for path in export.mcu.files()), export.testset.name,
        export.conversion.name]))


def _refuse_foreign_files(out: Path) -> None:
    """UsageError, before anything is written, if ``out`` holds a file that convert would
    replace but did not write. A folder is convert's when its conversion.json is convert's
    (:meth:`ExportDir.is_export`; earlier versions wrote the same) or it is the ``export/``
    of an edgecv run; into any other folder convert writes only names that are free."""
    run = RunDir(out.parent)
    if ExportDir(out).is_export() or (out.name == run.export.path.name and run.is_run()):
        return
    taken = [name for name in files_convert_writes() if os.path.lexists(out / name)]
    if taken:
        raise UsageError(
            f"refusing to write into '{out}': it holds '{taken[0]}', which edgecv convert would "
            "replace but did not write (no conversion.json of edgecv convert beside it); move "
            "it out or choose another `out`."
        )


def _reference_scores(run: RunData, log: Callable[[str], None]):
    """The reference model's scores on the test data, and its accuracy (None without labels)."""
    keras_scores = run.model.predict(run.test_x, batch_size=256, verbose=0)
    reference = run.notes.get("reference", "keras model")
    if run.test_y is None:
        log(f"{reference}: {len(run.test_x)} test images without labels: verification reports "
            "agreement and output difference; `max_drop` applies to agreement")
        return keras_scores, None
    keras_accuracy = float((keras_scores.argmax(1) == run.test_y).mean())
    log(f"{reference}: test accuracy {keras_accuracy:.4f} on {len(run.test_y)} images")
    return keras_scores, keras_accuracy


# the artifact lines' first column: as wide as the longest format name, so the sizes line up
_NAME_WIDTH = max(len(name) for name in FORMAT_TABLE)


def _build_and_verify(chosen: list[Format], conversion: Conversion,
                      progress: Callable[[str], None] | None) -> list[ConversionRow]:
    """Build the formats in table order on this thread while one more thread verifies those
    already written, each on every core (:func:`edgecv.converters.verify.artifact_scores`); a
    format whose build times candidates (``Format.quiet``) waits until the machine is quiet.
    Returns the rows in table order; their log lines come in that order too."""
    rows: list[ConversionRow] = []
    pending: list[tuple[Format, ConversionRow, Future]] = []
    status = progress or (lambda _text: None)

    def report(block: bool) -> None:
        while pending and (block or pending[0][2].done()):
            spec, row, verified = pending[0]
            if not verified.done():
                status(f"verifying {spec.name} on {len(conversion.run.test_x)} images")
            not_verified = verified.result()
            pending.pop(0)
            seconds = row.convert_s
            conversion.log(f"{spec.name:<{_NAME_WIDTH}} {row.size_bytes / 1024:8.1f} KiB  "
                           f"{not_verified or f'{figures(row)}  {seconds:.1f}s'}")
            rows.append(row)

    with ThreadPoolExecutor(1, thread_name_prefix="edgecv-verify") as verifier:
        fp32_size = None
        for number, spec in enumerate(chosen, 1):
            if spec.quiet:
                report(block=True)
            status(f"building {spec.name} ({number} of {len(chosen)})"
                   + (f"; verifying {pending[0][0].name}" if pending else ""))
            row, path = _write(spec, conversion, fp32_size)
            fp32_size = fp32_size or row.size_bytes
            pending.append((spec, row, verifier.submit(_verify, spec, conversion, row, path)))
            report(block=False)
        report(block=True)
    return rows


def _write(spec: Format, conversion: Conversion,
           fp32_size: int | None) -> tuple[ConversionRow, Path]:
    """Build one format and write it atomically; its conversion.json row (figures to come)."""
    path = conversion.out / spec.file
    row = ConversionRow(format=spec.name, file=path.name)
    start = time.perf_counter()
    data = spec.build(conversion, row)
    seconds = time.perf_counter() - start
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    row.size_bytes = len(data)
    row.size_ratio_vs_fp32 = round(len(data) / (fp32_size or len(data)), 4)
    row.sha256 = hashlib.sha256(data).hexdigest()
    row.convert_s = round(seconds, 2)
    return row, path


def _verify(spec: Format, conversion: Conversion, row: ConversionRow, path: Path) -> str | None:
    """``spec.verify`` (figures into ``row``), timed as ``verify_s``."""
    start = time.perf_counter()
    try:
        return spec.verify(conversion, row, path)
    finally:
        row.verify_s = round(time.perf_counter() - start, 2)


def _split_int8_rounding(rows: list[ConversionRow], conversion: Conversion,
                         budget: Budget) -> None:
    """A TFLite int8 row over budget gets ``rounding``: its weights' and its activations'
    rounding measured apart on the same test images (:func:`edgecv.converters.rounding.rounding_split`),
    which decides the way out the failure names. Runs once every verification is done: it
    moves the model's weights for a moment. A diagnosis, not a deliverable: if it cannot be
    measured, one line says why and the conversion goes on (its files still get their report)."""
    from edgecv.converters import rounding

    row = next((r for r in rows if r.format == "int8"), None)
    if not (row and budget.misses(row)):
        return
    run = conversion.run
    try:
        split = rounding.rounding_split(conversion.int8_model(), run.calibration, run.test_x,
                                        run.test_y,
                                        conversion.keras_scores, io=conversion.settings.io,
                                        preprocessing=run.preprocessing)
    except Exception as exc:  # noqa: BLE001  (any failure: the artifacts still need their report)
        why = first_line(exc)
        conversion.log(f"{'':<{_NAME_WIDTH}} int8 rounding apart not measured: {why}")
        return
    if split is not None:
        row.rounding = split
        conversion.log(f"{'':<{_NAME_WIDTH}} int8 rounding apart: {rounding.rounding_text(split)}")


def _recover_over_budget(rows: list[ConversionRow], conversion: Conversion, budget: Budget,
                         mix: str = "auto") -> None:
    """Follow each int8 row (TFLite, ONNX) over budget with its mixed int8/float row; an int8
    row whose mixed one fits the budget is marked ``recovered_by``."""
    from edgecv.converters.recover import recover as recover_mixed

    fp32_size = rows[0].size_bytes
    for fmt, kind in (("int8", "tflite"), ("onnx_int8", "onnx")):
        int8_row = next((r for r in rows if r.format == fmt), None)
        if not (int8_row and budget.misses(int8_row)):
            continue
        chosen = int8_row.onnx_calibration or {}
        # a float mix made for TFLite just before is a second ONNX candidate (its graph)
        tflite_mix = next((r for r in rows if r.format == "int8_mixed"
                           and r.mix == "int8, float"), None) if kind == "onnx" else None
        mixed = recover_mixed(conversion.run, kind, conversion.keras_scores,
                              conversion.keras_accuracy, budget, conversion.out, conversion.log,
                              onnx_fp32=conversion.onnx_fp32,
                              onnx_method=chosen.get("method", "minmax"),
                              onnx_types=chosen.get("types", "u8s8"), mix=mix,
                              tflite_mix=tflite_mix, opset=conversion.settings.opset)
        mixed.size_ratio_vs_fp32 = round(mixed.size_bytes / fp32_size, 4)
        rows.append(mixed)
        if mixed.within_budget:
            int8_row.recovered_by = mixed.file


def _write_testset(run: RunData, out: Path, log: Callable[[str], None]) -> None:
    if run.test_images is not None and run.test_y is not None:
        # so `edgecv bench` measures accuracy on a bare device
        save_testset(ExportDir(out).testset, run.test_images, run.test_y, run.labels,
                     run.test_ids)
    elif run.test_images is not None:
        log(f"{ExportDir(out).testset.name} not written: the test images have no labels")


# Each post-training int8 format and the mixed int8/float fallback --recover makes for it (its
# quantization-aware twin, --qat: QAT_TWINS).
_MIXED = {"int8": "int8_mixed", "onnx_int8": "onnx_int8_mixed"}


def _credit_qat(rows: list[ConversionRow], budget: Budget) -> None:
    """A post-training int8 row (TFLite or ONNX) over budget whose quantization-aware twin
    fits it is marked ``recovered_by`` that file, as by a mixed recovery: the conversion did
    deliver a full-int8 model of that runtime within budget, so it does not fail."""
    by_format = {r.format: r for r in rows}
    for fmt, twin in QAT_TWINS.items():
        int8_row, qat_row = by_format.get(fmt), by_format.get(twin)
        if (int8_row and qat_row and budget.misses(int8_row) and int8_row.recovered_by is None
                and budget.fits(qat_row)):
            int8_row.recovered_by = qat_row.file


def way_out(fmt: str, tried: set[str], rounding: dict | None = None,
            budget: Budget | None = None) -> str:
    """What a user can do when the artifact of format ``fmt`` misses the budget, given the
    formats this conversion already made (``tried``): the next step, not a list of options.
    ``rounding`` (the TFLite int8 row's, :func:`edgecv.converters.rounding.rounding_split`)
    says which rounding alone misses ``budget``, and so which remedy can work."""
    from edgecv.converters.rounding import to_blame

    plain = next((f for f, mixed in _MIXED.items() if fmt in (f, mixed)), None)
    blame = to_blame(rounding, budget) if plain == "int8" else None
    if blame:
        part = rounding[blame]
        other = "weights exact" if blame == "activations" else "activations in float"
        alone = (f"the int8 {blame} alone ({other}) give {100 * part['agreement']:.2f}% "
                 f"agreement" + ("" if part["accuracy_drop_pp"] is None else
                                 f", {part['accuracy_drop_pp']:+.2f} pp of accuracy"))
        if blame == "activations" and "int8_mixed" not in tried:
            return (f"`recover` gives the layers that lose most 16-bit activations or float: "
                    f"{alone}, and `qat` keeps int8 activations")
        if blame == "activations" and "int16x8" not in tried:
            return f"`formats=['int16x8']` (16-bit activations throughout): {alone}"
        if blame == "weights" and "int8_mixed" not in tried:
            qat = ", or `qat` to fine-tune them" if "int8_qat" not in tried else ""
            return (f"`recover` `recover_mix='float'` keeps the layers whose weights lose most in "
                    f"float{qat}: {alone}, which 16-bit activations cannot mend")
        if blame == "activations":  # every remedy for them tried: no weight remedy reaches
            return f"a larger `max_drop` (or a lower `min_agreement`) accepts it: {alone}"
    if fmt in _MIXED and _MIXED[fmt] not in tried:
        more = ", or `qat` to fine-tune it for int8" if QAT_TWINS[fmt] not in tried else ""
        return f"`recover` keeps the layers that lose most in float{more}"
    if plain and QAT_TWINS[plain] not in tried:
        return "`qat` fine-tunes the model for int8 (quantization-aware training)"
    if fmt in QAT_TWINS.values():
        return "more `qat_epochs`, or `recover` on the post-training int8"
    if fmt in ("fp32", "onnx"):
        return ("the float file differs from the Keras model, which no quantization explains: "
                "compare max_abs_diff in conversion.json and the ops `edgecv info` lists")
    if fmt in ("fp16", "dynamic"):
        return f"ship fp32 (the {fmt} file rounds the weights), or a larger `max_drop`"
    if fmt == "mcu":
        return ("the microcontroller export ships the post-training int8 file, which TFLite "
                "Micro runs as LiteRT's reference kernels do (see the int8 row); a larger "
                "`max_drop` (or a lower `min_agreement`) accepts it")
    return "a larger `max_drop` (or a lower `min_agreement`) accepts it"


def _check_budget(rows: list[ConversionRow], budget: Budget, out: Path,
                  record: ConversionRecord | None = None) -> None:
    # a mixed fallback that missed is moot once its int8 row is recovered otherwise (QAT)
    moot = {_MIXED[r.format] for r in rows if r.recovered_by is not None and r.format in _MIXED}
    over = [r for r in rows if budget.misses(r) and r.recovered_by is None
            and r.format not in moot]
    if over:
        # the largest drop over --max-drop, else the lowest agreement
        worst = max(over, key=lambda r: (budget_drop(r) > budget.max_drop, budget_drop(r),
                                         -r.agreement))
        tried = {row.format for row in rows}
        rounding = next((r.rounding for r in rows if r.format == "int8"), None)
        raise AccuracyDropError(f"{worst.file} {budget.misses(worst)}; see "
                                f"{out / 'conversion.json'}. Next: "
                                f"{way_out(worst.format, tried, rounding, budget)}.",
                                conversion=record)
