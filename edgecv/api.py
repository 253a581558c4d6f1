"""The Python API: one function per command, the CLI's options as keyword arguments.

``edgecv.train``, ``edgecv.convert``, ``edgecv.inspect``, ``edgecv.bench``, ``edgecv.predict``
and ``edgecv.pipeline`` are these functions (re-exported lazily by :mod:`edgecv`). Each imports
its implementation when called, so ``import edgecv`` stays light: TensorFlow loads only when a
training-side function runs. The CLI (:mod:`edgecv.cli`) parses its flags and calls them.

A ``source`` is what the CLI accepts (a run directory, an export folder, a model file) or the
result of the step before (:class:`~edgecv.results.Run`, :class:`~edgecv.results.Conversion`,
:class:`~edgecv.results.BenchReport`). Errors are :class:`edgecv.errors.EdgecvError`
subclasses whose messages name the keyword argument (``max_drop``), the path and the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

from edgecv.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from edgecv.benchmarks.row import BenchRow
    from edgecv.classify import Prediction
    from edgecv.results import (BenchReport, Conversion, Inspection, McuExport, PipelineResult,
                                Run)

Log = Union[Callable[[str], None], None]
# The formats the pipeline converts to: those a deployment is chosen among (the others are a
# convert(formats=["all"]) away).
PIPELINE_FORMATS = ["fp32", "fp16", "int8", "onnx", "onnx_int8"]
# The format names of the CLI's flags; each also stands for what its flag adds.
FORMAT_FLAGS = ("fp16", "dynamic", "int8", "int16x8", "onnx", "edgetpu", "mcu")


def _quiet(_line: str) -> None:
    pass


def _source_path(source, what: str = "source") -> Path:
    """The path a ``source`` stands for: a path as given, a Run's directory, a Conversion's
    export folder."""
    from edgecv.results import BenchReport, Conversion, Run

    if isinstance(source, Run):
        return Path(source.path)
    if isinstance(source, Conversion):
        if source.out_dir is None:
            raise UsageError(f"`{what}`: this Conversion does not know its folder; give the "
                             "export folder's path.")
        return Path(source.out_dir)
    if isinstance(source, BenchReport):
        raise UsageError(f"`{what}`: a BenchReport is a measurement, not a model; give the run, "
                         "the export folder or a model file.")
    if isinstance(source, (str, Path)):
        return Path(source)
    raise UsageError(f"`{what}` must be a path, a Run or a Conversion, received "
                     f"{type(source).__name__}.")


def _names(value: str | int | Iterable | None, what: str) -> list[str]:
    """``"cpu,gpu"``, ``["cpu", "gpu"]`` or ``1`` -> a list of strings."""
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [part.strip() for part in str(value).split(",") if part.strip()]
    try:
        return [str(part).strip() for part in value]
    except TypeError:
        raise UsageError(f"`{what}` must be a string or a list, received "
                         f"{type(value).__name__}.") from None


def train(data: str = "digits", model: str = "auto", *, model_options: dict | None = None,
          img_size: int | None = None,
          channels: int | None = None, epochs: int | None = None,
          time_limit: str | float | None = None, batch_size: int | None = None,
          lr: float | None = None, optimizer: str | None = None,
          weight_decay: float | None = None, label_smoothing: float | None = None, lr_schedule: str = "cosine",
          warmup_epochs: float = 1.0, augment: str = "auto", flip: bool | None = None,
          crop_pad: int | None = None, tta: str | None = None,
          val_split: float | None = None, test_split: float | None = None, seed: int = 0,
          deterministic: bool = True, precision: str = "auto", xla: str = "auto",
          patience: int = 8, strategy: str = "default", weights: str | None = None,
          fine_tune_epochs: int = 0, fine_tune_layers: int = 20, tensorboard: bool = True,
          name: str | None = None, out: str | Path | None = None, overwrite: bool = False,
          resume: bool = False, log: Log = print) -> Run:
    """Train a compact CNN and write a run directory (``edgecv train``; needs the train extra).

    Args:
        data: ``digits`` (offline, built in), ``mnist``, ``fashion_mnist``, ``cifar10``, or a
            folder with one subfolder per class. Default ``digits``.
        model: a registry name (``edgecv models``), or ``auto`` (default): ``airnet``, the
            photo recipe, for 3-channel data of 1,000+ training images, else ``resnet8``.
        model_options: options of the model's builder, e.g. ``{"widths": (64, 192, 192)}``
            (``get_model_info(name).overrides`` lists them). Default none.
        img_size: square input size (default: the model's). channels: 1 or 3 (default: the
            data's).
        epochs: maximum epochs (default 20; 50 from 10,000 training images); with ``resume``,
            raises the run's epoch count.
        time_limit: train for this long instead (``"30m"``, ``"1h30m"`` or seconds); ``epochs``
            is then a cap. Default none.
        batch_size, lr, optimizer, weight_decay, label_smoothing: as the CLI's options of the
            same name (``edgecv train --help``), same defaults (None: the model's recipe,
            ``ModelInfo.recipe``); so are lr_schedule, warmup_epochs, augment, flip, crop_pad,
            tta, val_split, test_split, seed, deterministic, precision, xla, patience, strategy,
            weights, fine_tune_epochs, fine_tune_layers and tensorboard.
        name: the run goes to ``runs/NAME`` (default ``DATA-MODEL[-N]``). out: the run directory
            instead; give one of ``name`` and ``out``.
        overwrite: replace an existing run directory. resume: continue an interrupted run.
        log: called with each progress line (default ``print``; None: silent).

    Returns:
        The ``Run``, its directory and ``metrics.json``.

    Raises:
        UsageError: a bad option (the message names it and the value received).
        DataError, DatasetUnavailable: the data cannot be used or downloaded.
    """
    from edgecv.results import Run
    from edgecv.training import TrainConfig
    from edgecv.training import train as train_run
    from edgecv.training.timeplan import parse_duration

    run_out = _run_out(name, out)
    seconds = time_limit if isinstance(time_limit, (int, float)) or time_limit is None \
        else parse_duration(time_limit)
    config = TrainConfig(
        data=data, model=model, model_options=dict(model_options or {}) or None,
        img_size=img_size, channels=channels, epochs=epochs,
        time_limit=seconds, batch_size=batch_size, lr=lr, optimizer=optimizer,
        weight_decay=weight_decay, label_smoothing=label_smoothing, lr_schedule=lr_schedule,
        warmup_epochs=warmup_epochs, augment=augment, flip=flip, crop_pad=crop_pad, tta=tta,
        val_split=val_split,
        test_split=test_split, seed=seed, deterministic=deterministic, precision=precision,
        xla=xla, patience=patience, strategy=strategy, weights=weights,
        fine_tune_epochs=fine_tune_epochs, fine_tune_layers=fine_tune_layers,
        tensorboard=tensorboard, out=run_out)
    result = train_run(config, overwrite=overwrite, resume=resume, resume_epochs=epochs,
                       log=log or _quiet)
    return Run(Path(result.run_dir), result.metrics)


def _run_out(name: str | None, out: str | Path | None) -> str | None:
    """The run directory from ``name`` / ``out`` (None: the trainer picks runs/DATA-MODEL[-N])."""
    if name and out:
        raise UsageError("give either `name` or `out`, not both.")
    if name and ("/" in name or name in (".", "..")):
        raise UsageError(f"`name` must be a plain name, received '{name}'; use `out` for a path.")
    return str(out) if out else (f"runs/{name}" if name else None)


def conversion_formats(formats: Iterable[str], qat: bool = False) -> list[str]:
    """The format table's names for ``formats`` as the CLI's flags read them: ``"all"`` is every
    format but QAT and mcu; ``"int8"`` with ``"onnx"`` adds ``"onnx_int8"``; ``"mcu"`` adds the
    int8 file it is made from; ``qat`` adds the quantization-aware twins. The table's own names
    (``"onnx_int8"``, ``"int8_qat"``) are taken as they are; unknown names are refused later,
    with the list of choices."""
    from edgecv.converters.formats import FORMATS, NOT_IN_ALL, with_qat

    names = list(dict.fromkeys(formats))
    if "all" in names:
        names = [n for n in names if n != "all"] + [n for n in FORMATS if n not in NOT_IN_ALL]
    if "onnx" in names and "int8" in names:
        names.append("onnx_int8")
    if "mcu" in names:  # the microcontroller export is the int8 file's
        names = [n for n in names if n != "mcu"] + (["int8"] if "int8" not in names else []) \
            + ["mcu"]
    names = list(dict.fromkeys(names))
    return with_qat(names) if qat else names


def convert(source, formats: Sequence[str] = (), *, out: str | Path | None = None,
            io: str = "uint8", calib_samples: int = 300, calib_data: str | None = None,
            onnx_calibration: str = "auto", opset: int = 17, max_drop: float = 1.0,
            min_agreement: float | None = None, recover: bool = False,
            recover_mix: str = "auto", qat: bool = False, qat_epochs: int = 2,
            qat_lr: float = 1e-4, select_tf_ops: bool = False,
            mcu_profile: Sequence[str] | None = None, data: str | None = None,
            weights: str | None = None, custom_objects: str | None = None,
            img_size: int | None = None, channels: int | None = None,
            scale: str | float | None = None, mean: str | Sequence[float] | None = None,
            std: str | Sequence[float] | None = None, labels: str | None = None,
            log: Log = print, progress: Callable[[str], None] | None = None
            ) -> Conversion | McuExport:
    """Convert a run or a Keras model to verified TFLite / ONNX artifacts (``edgecv convert``;
    needs the train extra).

    Args:
        source: a run directory, a :class:`~edgecv.results.Run`, or a model file (``.keras``,
            ``.h5``, a SavedModel directory, a ``.json`` config with ``weights``); or a
            full-int8 ``.tflite`` with ``formats=["mcu"]``.
        formats: besides fp32 (always written): ``"fp16"``, ``"dynamic"``, ``"int8"``,
            ``"int16x8"``, ``"onnx"``, ``"edgetpu"``, ``"mcu"`` or ``"all"``, as the CLI's
            flags (``"int8"`` with ``"onnx"`` also writes ONNX int8); see
            :func:`conversion_formats`. Default: fp32 only.
        out: the output folder (default ``RUN/export``, ``MODEL-STEM_export`` or
            ``TFLITE-STEM_mcu``).
        io: input/output type of the int8 TFLite model: uint8 (default: its input the raw pixels, what phone clients, the Edge TPU and TFLite Micro take), int8 or float32.
        calib_samples: training images used for calibration (default 300, stratified).
        calib_data: calibrate on this instead (same forms as ``data``; its train split).
        onnx_calibration: minmax, entropy, percentile or auto (default).
        opset: the ONNX opset (default 17).
        max_drop: the accuracy an artifact may lose, in percentage points (default 1.0).
        min_agreement: the top-1 agreement with the reference it must keep, percent
            (default none).
        recover: keep an over-budget int8 model's worst layers in float or int16.
        recover_mix: what ``recover`` gives them: float, int16 or auto (default).
        qat: also quantization-aware fine-tune (minutes); qat_epochs (default 2) and qat_lr
            (default 1e-4) set it.
        select_tf_ops: allow Flex ops in fp32/fp16/dynamic (not deployable).
        mcu_profile: boards to fit the microcontroller model to (names or ``"RAM,FLASH"``).
        data, weights, custom_objects, img_size, channels, scale, mean, std, labels: how to
            read a model file, as the CLI's options of the same name (default: from the
            model, else none).
        log: called with each progress line (default ``print``; None: silent).
        progress: called with what is being built and verified now (default none).

    Returns:
        The ``Conversion`` (``conversion.json``), or for a ``.tflite`` the ``McuExport``
            (``mcu.json``).

    Raises:
        AccuracyDropError: an artifact is over budget; everything is written and
            ``exc.conversion`` holds the Conversion.
        UsageError, ModelFileError, DataError: bad options, model or data (nothing written).
        ConversionError: a converter failed.
    """
    from edgecv.converters.formats import FORMATS
    from edgecv.converters.sources import ModelOptions, parse_floats, parse_scale
    from edgecv.modelfile.kinds import is_keras_source
    from edgecv.preprocessing import normalisation_from_flags
    from edgecv.results import McuExport
    from edgecv.runtime.boards import parse_profiles

    log = log or _quiet
    path = _source_path(source)
    if isinstance(formats, str):
        formats = _names(formats, "formats")
    profiles = parse_profiles(list(mcu_profile or []))  # bad values: before anything
    options = ModelOptions(data=data, weights=weights, custom_objects=custom_objects,
                           img_size=img_size, channels=channels, scale=scale, mean=mean, std=std,
                           labels=labels)
    if path.suffix.lower() == ".tflite":
        return McuExport(*_export_tflite(path, formats, out, profiles, options, log, qat=qat,
                                         recover=recover, calib_data=calib_data,
                                         select_tf_ops=select_tf_ops))
    chosen = conversion_formats(formats, qat)
    unknown = [name for name in chosen if name not in FORMATS]
    if unknown:
        from edgecv.errors import unknown_name

        raise unknown_name("format", unknown[0], [*FORMATS, *FORMAT_FLAGS, "all"])
    if (scale, mean, std) != (None, None, None) and is_keras_source(path):
        # before the model loads (converters.sources applies the same rule); a run directory
        # refuses all three
        normalisation_from_flags(
            parse_scale(scale) if scale is not None else None,
            parse_floats(mean, "`mean`") if mean is not None else None,
            parse_floats(std, "`std`") if std is not None else None)
    from edgecv.converters.convert import convert_run

    return convert_run(path, chosen, out_dir=out, io=io, calib_samples=calib_samples,
                       opset=opset, max_drop=max_drop, min_agreement=min_agreement,
                       recover=recover, select_tf_ops=select_tf_ops, options=options,
                       calib_data=calib_data, onnx_calibration=onnx_calibration,
                       qat_epochs=qat_epochs, qat_lr=qat_lr, log=log,
                       progress=progress, recover_mix=recover_mix, mcu_profiles=profiles)


def _export_tflite(path: Path, formats, out, profiles, options, log, **others) -> tuple:
    """``convert(MODEL.tflite, formats=["mcu"])``: the microcontroller export as it is."""
    names = list(formats)
    if "mcu" not in names:
        raise UsageError(f"'{path}' is already a TFLite model: convert takes a .tflite only to "
                         "the microcontroller export; add `formats=['mcu']` (or give a run "
                         "directory or a Keras model for the other formats).")
    given = [f"`formats=['{name}']`" for name in names if name not in ("mcu", "int8")]
    given += [f"`{key}`" for key, value in others.items() if value not in (None, False)]
    given += [f"`{key}`" for key in options.given()]
    if given:
        raise UsageError(f"{', '.join(given)}: not for a .tflite, which convert only exports "
                         "for a microcontroller as it is (`mcu_profile` and `out` apply).")
    from edgecv.converters.mcu import default_folder, export_tflite

    record = export_tflite(path, out, profiles, log=log)
    return record, Path(out) if out else default_folder(path).path


def inspect(source, *, quant: bool = True, samples: int = 64, activations: int = 8,
            data: str | None = None, scale: str | float | None = None,
            mean: str | Sequence[float] | None = None, std: str | Sequence[float] | None = None,
            weights: str | None = None, custom_objects: str | None = None,
            out: str | Path | None = None, log: Log = print) -> Inspection:
    """Rank the layers that lose most when the model is quantized (``edgecv inspect``; needs
    the train extra, or only the quantizer extra for a float ``.tflite``).

    Two views, worst first, each also written to a CSV: the TF QuantizationDebugger's
    (``quant_debug.csv``; RMSE in quantization steps, SQNR; needs the TensorFlow model) and
    the AI Edge Quantizer's (``quant_validate.csv``; SNR, cosine similarity, MSE per tensor;
    any float ``.tflite``); for a Keras model, the agreement its int8 weights and its int8
    activations each keep alone.

    Args:
        source: a run directory or :class:`~edgecv.results.Run`, a model file (``.keras``,
            ``.h5``, a SavedModel directory, a ``.json`` config with ``weights``), a float
            ``.tflite``, or a :class:`~edgecv.results.Conversion` (the run or model file it
            was converted from).
        quant: the per-layer quantization error (default True, and today the only view).
        samples: calibration images used as debug samples (default 64; at least 100
            calibrate).
        activations: activation bits of the AI Edge Quantizer's recipe: 8 (default, int8) or
            16 (int16x8).
        data: images for a model file or a ``.tflite`` without a source run (digits, a folder,
            an archive, an .npz).
        scale, mean, std, weights, custom_objects: how to read a model file (or a ``.tflite``
            without an edgecv model card), as for :func:`convert`.
        out: where the CSV files go (default ``RUN/export``, or beside the model).
        log: called with progress lines (default ``print``; None: silent).

    Returns:
        The ``Inspection`` with each view's rows (None for a view that could not run, the
            reason in ``skipped``), the rounding split and the CSV files.

    Raises:
        UsageError, ModelFileError, DataError: bad options, model or images (nothing
            written); a file of a CSV's name that edgecv did not write is kept and refused.
    """
    if not quant:
        raise UsageError("`quant=False` leaves nothing to inspect: the quantization error is "
                         "inspect's only view.")
    if activations not in (8, 16):
        raise UsageError(f"`activations` must be 8 or 16, received {activations}.")
    from edgecv.converters.inspect_quant import inspect_quant
    from edgecv.converters.sources import ModelOptions
    from edgecv.results import Conversion

    path = Path(source.run) if isinstance(source, Conversion) else _source_path(source)
    options = ModelOptions(data=data, scale=scale, mean=mean, std=std, weights=weights,
                           custom_objects=custom_objects)
    return inspect_quant(path, options, samples=samples, activation_bits=activations,
                         out_dir=out, log=log or _quiet)


def _bench_sources(source) -> list[Path]:
    items = source if isinstance(source, (list, tuple)) else [source]
    if not items:
        raise UsageError("`source` is empty; give run directories, export folders or model "
                         "files.")
    return [_source_path(item) for item in items]


def bench(source, *, targets: str | Sequence[str] = "all",
          threads: str | int | Sequence[int] = 1, batch: str | int | Sequence[int] = 1,
          runs: int = 100, min_time: float = 1.0, warmup: int = 10, rounds: int = 9,
          max_drop: float | None = None, data: str | Path | None = None, keras: bool = True,
          checksum: str = "warn", custom_objects: str | None = None,
          weights: str | None = None, mcu_profile: Sequence[str] | None = None,
          on: Sequence[str] | str | None = None, ssh_config: str | None = None,
          json_path: str | Path | None = None, md_path: str | Path | None = None,
          html_path: str | Path | None = None, log: Log = None,
          progress: Callable[[BenchRow], None] | None = None) -> BenchReport:
    """Latency, memory, size and accuracy of every artifact on every target, and which to
    deploy (``edgecv bench``; no TensorFlow unless a Keras model is among the sources).

    Args:
        source: a run directory, an export folder, a model file (``.tflite``, ``.onnx``,
            ``.keras``, ...), a :class:`~edgecv.results.Run` or
            :class:`~edgecv.results.Conversion`, or a list of them.
        targets: ``"all"`` (default: every target but mcu) or names among cpu, gpu, tpu,
            edgetpu, mcu (a list or ``"cpu,gpu"``).
        threads: CPU thread counts to sweep (default 1; ``"max"``: every usable core).
        batch: images per call to sweep (default 1).
        runs: timed runs per row, at least (default 100). min_time: seconds of timed runs per
            row, at least (default 1.0). warmup: untimed runs first (default 10). rounds:
            interleaved rounds (default 9).
        max_drop: the recommendation's accuracy budget, pp (default: convert's, else 1.0).
        data: the test set (.npz with uint8 x and y; default testset.npz beside the artifacts).
        keras: include a run's model.keras (the reference; needs TensorFlow). Default True.
        checksum: warn (default), refuse or off: the SHA-256 recorded at convert time.
        custom_objects, weights: how to read a Keras model, as for convert.
        mcu_profile: boards the mcu rows are fitted to.
        on: devices to bench on (``"ssh://user@host"``, ``"local"``, ``"local:PYTHON"``), in
            parallel; default this machine only. ssh_config: the ssh client config for them.
        json_path, md_path, html_path: write the report there too (default: none).
        log: called with progress lines (default: silent).
        progress: called with each :class:`~edgecv.benchmarks.row.BenchRow` as it is measured.

    Returns:
        The ``BenchReport`` (``bench.json``); rows that failed have ``status == "failed"``
            (``BenchReport.failed``).

    Raises:
        UsageError, ModelFileError: bad options or model files (nothing measured).
    """
    from edgecv.benchmarks.report import report_title, write_reports
    from edgecv.benchmarks.row import BenchRow
    from edgecv.benchmarks.suite import (BenchSettings, discover, find_testset, parse_counts,
                                         parse_threads, run_benchmark)
    from edgecv.results import BenchReport
    from edgecv.runtime.boards import parse_profiles
    from edgecv.runtime.targets import parse_targets

    log = log or _quiet
    paths = _bench_sources(source)
    target_text = ",".join(_names(targets, "targets"))
    thread_text = ",".join(_names(threads, "threads"))
    batch_text = ",".join(_names(batch, "batch"))
    settings = BenchSettings(targets=parse_targets(target_text),
                             threads=parse_threads(thread_text),
                             batches=parse_counts(batch_text, "`batch`"), runs=runs,
                             min_time_s=min_time, warmup=warmup, rounds=rounds,
                             max_drop=max_drop, checksum=checksum,
                             custom_objects=custom_objects, weights=weights,
                             mcu_profiles=parse_profiles(list(mcu_profile or [])))
    artifacts = discover(paths, include_keras=keras)
    testset = Path(data) if data else find_testset(artifacts)
    interrupted = False
    if on:
        report, interrupted = _bench_on_devices(_names(on, "on"), ssh_config, artifacts,
                                                settings, testset, threads=thread_text,
                                                batch=batch_text, log=log)
    else:
        if ssh_config:
            raise UsageError("`ssh_config` is for the devices of `on`; give `on` too.")
        report = run_benchmark(artifacts, settings, testset,
                               progress=(lambda row: progress(BenchRow(**row)))
                               if progress else None)
    write_reports(report, json_path, md_path, html_path, log=log,
                  title=report_title("bench", [str(p) for p in paths]))
    result = BenchReport.from_dict(report)
    result.interrupted = interrupted
    return result


def _bench_on_devices(specs: list[str], ssh_config, artifacts, settings, testset, *,
                      threads: str, batch: str, log: Callable[[str], None]) -> tuple[dict, bool]:
    """``on=``: every device in parallel, each device's answer logged when known."""
    import dataclasses

    from edgecv.benchmarks.recommend import sentence
    from edgecv.benchmarks.remote import bench_on_devices, parse_devices
    from edgecv.benchmarks.report.tables import emulation_summary
    from edgecv.benchmarks.suite import accuracy_budget, run_benchmark

    devices = parse_devices(specs)
    if ssh_config and not Path(ssh_config).is_file():
        raise UsageError(f"`ssh_config` '{ssh_config}' is not a file; give an ssh client "
                         "config (the format of ~/.ssh/config).")
    max_drop, budget_from = accuracy_budget(settings, artifacts)
    settings = dataclasses.replace(settings, max_drop=max_drop)
    device_settings = {"targets": ",".join(settings.targets), "threads": threads, "batch": batch,
                       "runs": settings.runs, "min_time_s": settings.min_time_s,
                       "warmup": settings.warmup, "rounds": settings.rounds,
                       "max_drop": max_drop, "checksum": settings.checksum,
                       "mcu_profiles": [profile.name for profile in settings.mcu_profiles]}

    def done(run) -> None:
        if run.error:
            log(f"{run.device.name}: failed: {run.error}")
            return
        for choice in run.report.get("recommendations") or []:
            log(f"{run.device.name}: {sentence(choice)}")
        emulation = (run.report.get("machine") or {}).get("emulation")
        if emulation:
            log(f"{run.device.name}: timed under {emulation_summary(emulation)}: no "
                "recommendation from these timings")
        log(f"{run.device.name}: done in {run.seconds:.0f} s")

    report, interrupted = bench_on_devices(
        devices, artifacts, testset, lambda paths: run_benchmark(paths, settings, testset),
        device_settings, {**device_settings, "devices": [d.name for d in devices],
                          "testset": str(testset) if testset else None},
        ssh_config=ssh_config, log=log, on_done=done)
    for choice in report["recommendations"]:
        choice["max_drop_from"] = budget_from
    return report, interrupted


def predict(source, images: Iterable[str | Path | np.ndarray] | str | Path, *, top_k: int = 3,
            threshold: float = 0.0, target: str = "cpu", threads: int | None = None,
            fit: str = "crop", checksum: str = "warn", log: Log = None) -> list[Prediction]:
    """Classify images with an artifact (``edgecv predict``; no TensorFlow).

    Args:
        source: a ``.tflite`` / ``.onnx`` file; a run or export folder, a
            :class:`~edgecv.results.Run` or :class:`~edgecv.results.Conversion` (the artifact
            and threads its bench.json recommends for ``target``); or a
            :class:`~edgecv.results.BenchReport` (its recommendation for ``target``).
        images: image files, folders (searched recursively) and/or decoded images as numpy
            arrays (H x W or H x W x C uint8, BGR as ``cv2.imread`` gives them).
        top_k: how many classes per image (default 3). threshold: hide classes scoring below
            this (default 0).
        target: cpu (default), gpu or edgetpu. threads: CPU threads (default: the runtime's,
            or the recommended count).
        fit: how an image of another aspect is fitted: crop (default), letterbox or stretch.
        checksum: warn (default), refuse or off: the SHA-256 recorded at convert time.
        log: called with what was chosen and the backend's warnings (default: silent).

    Returns:
        One ``Prediction`` per image, in order; an image that cannot be read is a
            Prediction with ``error`` set, and the others go on.

    Raises:
        UsageError, ModelFileError: a bad option, model or image list.
    """
    import numpy as np

    from edgecv.classify import Classifier, predict_images
    from edgecv.images import image_paths
    from edgecv.results import BenchReport
    from edgecv.runtime import open_backend
    from edgecv.runtime.targets import parse_targets

    log = log or _quiet
    parse_targets(target)
    items = [images] if isinstance(images, (str, Path, np.ndarray)) else list(images)
    if not items:
        raise UsageError("`images` is empty; give image files, folders or arrays.")
    expanded: list = []
    for item in items:  # folders and files as the CLI lists them, arrays as they are
        expanded.extend([item] if isinstance(item, np.ndarray) else image_paths([item]))
    if isinstance(source, BenchReport):
        choice = source.recommendation(target)
        model, threads = Path(choice.path), threads if threads is not None else choice.threads
        log(f"using {model} with {threads or 'default'} thread(s), recommended by the bench")
    else:
        model, threads = deployment(_source_path(source), target, threads, log)
    with open_backend(model, target=target, threads=threads, checksum=checksum) as backend:
        for line in backend.warnings:
            log(f"warning: {line}")
        classifier = Classifier(backend, fit=fit, k=top_k, threshold=threshold)
        return list(predict_images(classifier, expanded))


def deployment(model: Path, target: str, threads: int | None,
               log: Callable[[str], None]) -> tuple[Path, int | None]:
    """The model file and threads for predict / camera: a file as given; for a run or export
    folder, what its bench.json recommends for ``target`` (logged)."""
    from edgecv.deploy import resolve

    chosen = resolve(model, target, threads)
    if chosen.source != "the model file given":
        log(f"using {chosen.model} with {chosen.threads or 'default'} thread(s), "
            f"recommended by {chosen.source}")
    return chosen.model, chosen.threads


def pipeline(data: str = "digits", model: str = "auto", *, img_size: int | None = None,
             channels: int | None = None, epochs: int | None = None,
             time_limit: str | float | None = None, seed: int = 0, name: str | None = None,
             out: str | Path | None = None, overwrite: bool = False, max_drop: float = 1.0,
             min_agreement: float | None = None, targets: str | Sequence[str] = "all",
             threads: str | int | Sequence[int] = 1, min_time: float = 1.0,
             recover: bool = False, qat: bool = False, qat_epochs: int = 2, log: Log = print,
             progress: Callable[[BenchRow], None] | None = None) -> PipelineResult:
    """Train, convert (fp32, fp16, int8, ONNX, ONNX int8), verify and bench in one go, with
    one HTML report in the run directory (``edgecv pipeline``; needs the train extra).

    Args:
        data, model, img_size, channels, epochs, time_limit, seed, name, out, overwrite: as
            for :func:`train`.
        max_drop, min_agreement, recover, qat, qat_epochs: as for :func:`convert`.
        targets, threads, min_time: as for :func:`bench`.
        log: called with each progress line (default ``print``; None: silent).
        progress: called with each bench row as it is measured.

    Returns:
        The ``PipelineResult`` with the run, its conversion, the bench and
            ``RUN/report.html``.

    Raises:
        AccuracyDropError: an artifact is over budget, raised after the report is written;
            ``exc.result`` holds the PipelineResult, ``exc.conversion`` the Conversion.
        UsageError, DataError: bad options or data (before training).
    """
    from edgecv.benchmarks.row import BenchRow
    from edgecv.benchmarks.suite import (BenchSettings, discover, find_testset, parse_threads,
                                         run_benchmark)
    from edgecv.converters.convert import convert_run
    from edgecv.converters.formats import with_qat
    from edgecv.converters.verify import Budget
    from edgecv.errors import AccuracyDropError
    from edgecv.results import BenchReport, PipelineResult, Run
    from edgecv.run_report import write_run_report
    from edgecv.rundir import RunDir
    from edgecv.runtime.targets import parse_targets

    log = log or _quiet
    if qat:  # before minutes of training: the settings, and the extra that QAT needs
        from edgecv.converters.qat import check_settings, import_tfmot

        check_settings(qat_epochs, None)
        import_tfmot()
    settings = BenchSettings(targets=parse_targets(",".join(_names(targets, "targets"))),
                             threads=parse_threads(",".join(_names(threads, "threads"))),
                             min_time_s=min_time)
    Budget(max_drop, min_agreement)  # a bad budget is refused before minutes of training
    run = train(data, model, img_size=img_size, channels=channels, epochs=epochs,
                time_limit=time_limit, seed=seed, tensorboard=False, name=name, out=out,
                overwrite=overwrite, log=log)
    folder = RunDir(run.path)
    formats = with_qat(PIPELINE_FORMATS) if qat else PIPELINE_FORMATS
    log(f"converting {', '.join(formats)}" + (" (`recover`)" if recover else ""))
    drop_error = None
    try:  # an artifact over budget does not stop the report: it shows it, then fails
        conversion = convert_run(run.path, formats, max_drop=max_drop,
                                 min_agreement=min_agreement, recover=recover,
                                 qat_epochs=qat_epochs if qat else None, log=log)
    except AccuracyDropError as exc:
        drop_error, conversion = exc, exc.conversion
    artifacts = discover([run.path])
    log(f"benchmarking {len(artifacts)} model(s) on {', '.join(settings.targets)}")
    report = run_benchmark(artifacts, settings, find_testset(artifacts),
                           progress=(lambda row: progress(BenchRow(**row))) if progress else None)
    write_run_report(run.path, report, conversion)
    log(f"wrote {folder.report_html}")
    result = PipelineResult(run, conversion, BenchReport.from_dict(report), folder.report_html)
    if drop_error is not None:
        drop_error.result = result
        raise drop_error
    return result
