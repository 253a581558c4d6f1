"""int8 on CIFAR-10 photos: per model, fp32 / int8 TFLite / ONNX int8 accuracy, drop, agreement,
worst class and --recover when used.

    # existing run dirs:
    python benchmarks/experiments/int8_cifar.py --runs RUN [RUN ...] [--qat]
    # a model trained elsewhere (e.g. keras2_cifar_model.py's, which takes 0..255 pixels):
    python benchmarks/experiments/int8_cifar.py --model-file MODEL.h5 --scale 1 \
        --data cifar10_train.tar.xz --qat 2
    # train briefly here:
    python benchmarks/experiments/int8_cifar.py --data /path/to/cifar \
        --models ds_cnn resnet8 --per-class 600 --epochs 8

Each run is converted by ``edgecv convert RUN --int8 --onnx --recover --max-drop 0.5
--min-agreement 98.5`` (the same code, :func:`edgecv.converters.convert.convert_run`; the
recovery follows an int8 model that misses either limit), so calibration is a stratified sample of
the run's TRAIN split, the ONNX calibration method is chosen on its validation split and every
figure is measured on its held-out test split. The issue's goal per model: drop <= 0.5 pp and
agreement >= 98.5% on >= 2,000 test images (``meets_goal``). With ``--qat`` each run also gets
``--qat`` (quantization-aware fine-tuning, :mod:`edgecv.converters.qat`; the TFLite file and its
int8 graph in ONNX, ``int8_qat`` and ``onnx_int8_qat``), judged as well against
the QAT goal (``qat_goal``: within 0.2 pp of fp32 and agreement >= 99%); ``--strict`` holds
the recovery to that goal instead (``--max-drop 0.2 --min-agreement 99``). An int8 row over
budget keeps convert's ``rounding``: the weights' and the activations' rounding apart
(:mod:`edgecv.converters.rounding`). Writes
benchmarks/results/int8_cifar.json with the machine record.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS_DIR
from edgecv.results import ConversionRow
from edgecv.rundir import ExportDir, RunDir

RESULTS = RESULTS_DIR / "int8_cifar.json"
GOAL = {"max_drop_pp": 0.5, "min_agreement": 0.985, "min_test_images": 2000}
QAT_GOAL = {"max_drop_pp": 0.2, "min_agreement": 0.99, "min_test_images": 2000}
# The quantized rows of each model, in the order the table shows them.
QUANTIZED = ("int8", "onnx_int8", "int8_mixed", "onnx_int8_mixed", "int8_qat", "onnx_int8_qat")


def subset(source: Path, per_class: int, out: Path) -> Path:
    """The first ``per_class`` images (sorted names) of each class folder, copied to ``out``."""
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        target = out / folder.name
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.iterdir())[:per_class]:
            shutil.copy2(path, target / path.name)
    return out


def train_runs(data: str, models: list[str], per_class: int, epochs: int, workdir: Path,
               log) -> list[Path]:
    """Train each model briefly on a per-class subset of ``data`` (a CIFAR class-folder tree),
    32x32x3, 35% held out for test so that >= 2,000 test images remain from 600 per class."""
    from edgecv.training import TrainConfig, train

    source = Path(data)
    if not source.is_dir():  # an archive: the data loader unpacks it (and splits) itself
        subset_spec = data
    else:
        subset_spec = str(subset(source, per_class, workdir / "data"))
    runs = []
    for model in models:
        run = workdir / f"run-{model}"
        train(TrainConfig(data=subset_spec, model=model, img_size=32, channels=3, epochs=epochs,
                          flip=True, test_split=0.35, tensorboard=False, out=str(run)),
              log=log)
        runs.append(run)
    return runs


def budget_of(goal: dict):
    """``GOAL`` / ``QAT_GOAL`` as convert's :class:`~edgecv.converters.verify.Budget`."""
    from edgecv.converters.verify import Budget

    return Budget(goal["max_drop_pp"], 100 * goal["min_agreement"])


def goal_met(row: ConversionRow, test_images: int, goal: dict = GOAL) -> bool:
    """A goal (default ``GOAL``, else ``QAT_GOAL``) for one artifact row: convert's own budget
    check, on enough test images."""
    return bool(test_images >= goal["min_test_images"] and budget_of(goal).fits(row))


def measure(run: Path, out: Path, log, qat_epochs: int | None = None,
            budget: dict = GOAL, recover_mix: str = "auto", options=None) -> dict:
    """Convert and verify one run, or a model file read with ``options`` (a
    :class:`~edgecv.converters.sources.ModelOptions`: its data, scale), with ``qat_epochs``
    quantization-aware fine-tuning too, ``--recover`` held to ``budget`` (``GOAL``, or
    ``QAT_GOAL`` with ``--strict``); the row for results."""
    import json

    from edgecv.converters.convert import convert_run
    from edgecv.converters.formats import with_qat
    from edgecv.errors import AccuracyDropError

    start = time.perf_counter()
    formats = ["int8", "onnx", "onnx_int8"]
    try:
        report = convert_run(run, with_qat(formats) if qat_epochs else formats,
                             out_dir=out, recover=True, max_drop=budget_of(budget).max_drop,
                             min_agreement=budget_of(budget).min_agreement,
                             recover_mix=recover_mix, options=options,
                             qat_epochs=qat_epochs, log=log)
    except AccuracyDropError as exc:
        report = exc.conversion
    rows = {r.format: r for r in report.artifacts}
    model = (json.loads(RunDir(run).config.read_text()).get("train", {}).get("model")
             if options is None else run.stem)
    record = {"run": str(run), "model": model, "test_images": report.test_images,
              "calibration": {k: report.calibration.get(k) for k in ("source", "split",
                                                                       "count", "per_class")},
              "fp32_accuracy": report.keras_accuracy, "convert_s": None,
              "folded": report.folded,  # BatchNormalizations folded for export (fold_int8.py)
              "int8_rounded": report.int8_rounded}  # image convolutions (stem_int8.py)
    for fmt in ("fp32", *QUANTIZED):
        if fmt not in rows:
            continue
        row = rows[fmt].to_dict()  # as conversion.json has it
        entry = {key: row.get(key) for key in ("accuracy", "accuracy_drop_pp", "agreement",
                                                "worst_class", "disagreements", "size_bytes")}
        for key in ("onnx_calibration", "float_layers", "float_tensors", "p50_ms_1_thread",
                    "latency_cost_vs_int8", "within_budget", "recovered_by", "chosen_on",
                    "check_agreement", "qat", "convert_s", "integer_kernels", "from",
                    "alternative", "rounding"):
            if key in row:
                entry[key] = row[key]
        record[fmt] = entry
    # Plain PTQ and the recovered (mixed) model are judged apart: a recovery that keeps most
    # ops in float meets the accuracy goal without being an int8 model.
    record["meets_goal"] = {name: goal_met(rows[name], report.test_images)
                            for name in QUANTIZED if name in rows}
    if "int8_qat" in rows or budget is QAT_GOAL:
        record["qat_goal"] = {name: goal_met(rows[name], report.test_images, QAT_GOAL)
                              for name in QUANTIZED if name in rows}
    record["latency_1_thread"] = full_int8_latency(out, rows, report.artifacts[0].file)
    record["convert_s"] = round(time.perf_counter() - start, 1)
    return record


def full_int8_latency(out: Path, rows: dict[str, ConversionRow], fp32_file: str) -> dict:
    """p50 single-image latency (ms, 1 thread, with its 90% interval over rounds) of the fp32
    TFLite file and of each full-int8 file (post-training and QAT, TFLite and ONNX), timed
    interleaved in one run (:func:`edgecv.timing.time_rounds`: this VM is noisy). The mixed
    files' own figures are in their rows (``p50_ms_1_thread``)."""
    from edgecv.runtime import open_backend, read_card
    from edgecv.testset import load_testset
    from edgecv.timing import time_rounds

    files = {"fp32": fp32_file, **{fmt: rows[fmt].file for fmt in
                                   ("int8", "onnx_int8", "int8_qat", "onnx_int8_qat")
                                   if fmt in rows}}
    sample = read_card(out / fp32_file).preprocessing.normalize(
        load_testset(ExportDir(out).testset).x[:1])
    backends = {fmt: open_backend(out / name, threads=1, checksum="off")
                for fmt, name in files.items()}
    try:
        timings = time_rounds([lambda b=b: b.run(sample) for b in backends.values()],
                              rounds=9, runs=200, min_time_s=1.0)
    finally:
        for backend in backends.values():
            backend.close()
    return {fmt: {"p50_ms": round(t.stats.p50_ms, 4),
                  "p50_interval_ms": [round(v, 4) for v in t.p50_interval()]}
            for fmt, t in zip(files, timings)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", help="existing run directories (edgecv train)")
    parser.add_argument("--data", help="CIFAR-10 class folders or archive, to train runs here "
                        "(or the data of --model-file)")
    parser.add_argument("--model-file", help="a model edgecv did not train (.keras, .h5, ...) "
                        "instead of runs, converted with --data and --scale, e.g. "
                        "keras2_cifar_model.py's")
    parser.add_argument("--scale", default="1/255", help="--model-file's pixel multiplier "
                        "(default 1/255; 1 for a model that takes 0..255 pixels)")
    parser.add_argument("--models", nargs="+", default=["ds_cnn"], help="models to train "
                        "(with --data); default ds_cnn")
    parser.add_argument("--per-class", type=int, default=600, help="images per class to train "
                        "on (with --data); default 600")
    parser.add_argument("--epochs", type=int, default=8, help="epochs (with --data); default 8")
    parser.add_argument("--qat", type=int, default=0, metavar="EPOCHS", help="also "
                        "quantization-aware fine-tuning for EPOCHS epochs (default 0: off)")
    parser.add_argument("--strict", action="store_true", help="hold --recover to the QAT goal "
                        "(0.2 pp, 99%% agreement) instead of the int8 goal (0.5 pp, 98.5%%)")
    parser.add_argument("--recover-mix", default="auto", choices=("auto", "int16", "float"),
                        help="convert's --recover-mix (float skips the int16 ladder, whose "
                        "LiteRT reference kernels take most of the time on large inputs)")
    parser.add_argument("--out", default=str(RESULTS), help=f"default {RESULTS}")
    args = parser.parse_args(argv)
    if not args.runs and not args.data:
        parser.error("give --runs RUN [RUN ...] or --data CIFAR to train runs here")
    if args.model_file and not args.data:
        parser.error("--model-file needs --data (its calibration, validation and test images)")
    options = None
    if args.model_file:
        from edgecv.converters.sources import ModelOptions

        options = ModelOptions(data=args.data, scale=args.scale)
    from edgecv.benchmarks.machine import machine_info
    from edgecv.io import write_json_atomic

    log = print
    with tempfile.TemporaryDirectory() as workdir:
        if args.model_file:
            runs = [Path(args.model_file)]
        elif args.runs:
            runs = [Path(r) for r in args.runs]
        else:
            runs = train_runs(args.data, args.models, args.per_class, args.epochs,
                              Path(workdir), log)
        models = []
        for run in runs:
            log(f"== {run}")
            models.append(measure(run, Path(workdir) / f"export-{run.name}", log,
                                  qat_epochs=args.qat or None,
                                  budget=QAT_GOAL if args.strict else GOAL,
                                  recover_mix=args.recover_mix, options=options))
    result = {"benchmark": "int8_cifar", "goal": GOAL, "qat_goal": QAT_GOAL,
              "recover_budget": "qat_goal" if args.strict else "goal",
              "machine": machine_info(),
              "command": " ".join(["python benchmarks/experiments/int8_cifar.py",
                                   *sys.argv[1:]]),
              "models": models}
    write_json_atomic(Path(args.out), result)
    log(f"wrote {args.out}")
    for m in models:
        log(f"{m['model']:<14} fp32 {m['fp32_accuracy']:.4f}  " + "  ".join(
            f"{fmt} {m[fmt]['accuracy']:.4f} ({m[fmt]['accuracy_drop_pp']:+.2f} pp, agree "
            f"{m[fmt]['agreement']:.4f}, worst {m[fmt]['worst_class']['class']} "
            f"{-m[fmt]['worst_class']['drop_pp']:+.1f} pp)"
            for fmt in QUANTIZED
            if fmt in m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
