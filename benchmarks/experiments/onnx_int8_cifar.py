"""ONNX int8 against ONNX fp32 on CIFAR-10 runs: speed at 1 thread and the accuracy it costs.

    python benchmarks/experiments/onnx_int8_cifar.py --runs RUN... [--json PATH]

For each run: ``edgecv convert RUN --onnx --int8`` (into a temporary folder), which picks the ONNX
int8 recipe on the validation split (``converters.onnx.to_onnx_int8_best``), then times
``model.onnx`` and ``model_int8.onnx`` through the bench (``edgecv bench``: interleaved rounds, one
real test image, 1 thread, a long ``--min-time``) and reads the test-split accuracy that convert
verified. Also records every recipe's figures from the choice, so the speed of what agreement
alone would have picked stays visible.

Goal (issue 12): ONNX int8 >= 1.3x ONNX fp32 at 1 thread on every model, with an accuracy drop
within the convert budget.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from _common import run_label, runs_parser
from edgecv.rundir import ExportDir, RunDir

GOAL = {"speedup_vs_onnx_fp32": 1.3, "max_drop_pp": 1.0}


def main(argv: list[str] | None = None) -> dict:
    parser = runs_parser(__doc__, "onnx_int8_cifar.json")
    parser.add_argument("--min-time", type=float, default=4.0)
    args = parser.parse_args(argv)

    from edgecv.benchmarks.machine import machine_info
    from edgecv.benchmarks.suite import BenchSettings, run_benchmark
    from edgecv.converters.convert import convert_run
    from edgecv.errors import AccuracyDropError

    results = []
    for run in args.runs:
        with tempfile.TemporaryDirectory() as workdir:
            out = Path(workdir)
            try:
                convert_run(run, ["onnx", "onnx_int8"], out_dir=out,
                            max_drop=GOAL["max_drop_pp"], log=print)
            except AccuracyDropError as exc:
                print(f"over budget: {exc}")
            report = json.loads(ExportDir(out).conversion.read_text())
            rows = {r["format"]: r for r in report["artifacts"]}
            bench = run_benchmark([out / rows["onnx"]["file"], out / rows["onnx_int8"]["file"]],
                                  BenchSettings(targets=["cpu"], threads=[1], runs=1000,
                                                min_time_s=args.min_time),
                                  ExportDir(out).testset)
        timed = {r["format"]: r for r in bench["rows"]}
        fp32, int8 = timed["onnx"], timed["onnx_int8"]
        ratio = fp32["p50_ms"] / int8["p50_ms"]
        config = json.loads(RunDir(run).config.read_text())
        record = {"run": str(run), "model": config.get("train", {}).get("model"),
                  "test_images": report["test_images"], "keras_accuracy": report["keras_accuracy"],
                  "onnx_int8_accuracy_drop_pp": rows["onnx_int8"]["accuracy_drop_pp"],
                  "onnx_int8_agreement": rows["onnx_int8"]["agreement"],
                  "recipe": rows["onnx_int8"]["onnx_calibration"],
                  "onnx_fp32_p50_ms": fp32["p50_ms"], "onnx_fp32_p50_ci_ms": fp32["p50_ci_ms"],
                  "onnx_int8_p50_ms": int8["p50_ms"], "onnx_int8_p50_ci_ms": int8["p50_ci_ms"],
                  "speedup_vs_onnx_fp32": round(ratio, 3),
                  "integer_kernels": int8["integer_kernels"],
                  "load_warning": [w for w in bench["warnings"] if "load average" in w]}
        record["goal"] = "met" if (ratio >= GOAL["speedup_vs_onnx_fp32"] and
                                   record["onnx_int8_accuracy_drop_pp"] <= GOAL["max_drop_pp"]) \
            else "missed"
        results.append(record)
        print(f"{record['model']}: {record['recipe']['types']}/{record['recipe']['method']} "
              f"{ratio:.2f}x fp32, drop {record['onnx_int8_accuracy_drop_pp']:+.2f} pp "
              f"({record['goal']})", flush=True)
    output = {"command": "python benchmarks/experiments/onnx_int8_cifar.py --runs "
                         + " ".join(run_label(r) for r in args.runs),
              "goal": GOAL, "machine": machine_info(), "runs": results}
    args.json.write_text(json.dumps(output, indent=2) + "\n")
    return output


if __name__ == "__main__":
    main()
