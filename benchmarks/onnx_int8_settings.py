"""Is ONNX int8 faster than ONNX fp32 on this CPU, and under which quantization settings?

    python -m edgecv.benchmarks.onnx_int8_settings RUN [--threads 1,2] [--json PATH]

Quantizes the run's model with onnxruntime.quantization under each setting (QDQ vs QOperator,
per-channel vs per-tensor, int8 vs uint8 activations), then times every file with the shared
timing loop (edgecv.benchmarks.timing) on one real test image, and measures its test accuracy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

SETTINGS = {
    "QDQ per-channel S8S8": dict(quant_format="QDQ", per_channel=True, activation_type="int8"),
    "QDQ per-tensor S8S8": dict(quant_format="QDQ", per_channel=False, activation_type="int8"),
    "QDQ per-channel U8S8": dict(quant_format="QDQ", per_channel=True, activation_type="uint8"),
    "QOperator per-channel U8S8": dict(quant_format="QOperator", per_channel=True,
                                       activation_type="uint8"),
    "QOperator per-tensor U8S8": dict(quant_format="QOperator", per_channel=False,
                                      activation_type="uint8"),
}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import onnx

    from edgecv.benchmarks.timing import time_backend
    from edgecv.converters.convert import load_run
    from edgecv.converters.onnx import to_onnx, to_onnx_int8
    from edgecv.runtime.onnxruntime import OnnxRuntimeBackend

    run = load_run(args.run, calib_samples=300)
    fp32 = to_onnx(run.model)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        files = {"fp32": Path(workdir) / "fp32.onnx"}
        onnx.save(fp32, files["fp32"])
        for name, options in SETTINGS.items():
            files[name] = Path(workdir) / f"{len(files)}.onnx"
            onnx.save(to_onnx_int8(fp32, run.calibration, **options), files[name])
        for threads in (int(t) for t in args.threads.split(",")):
            for name, path in files.items():
                with OnnxRuntimeBackend(path, threads=threads) as backend:
                    stats = time_backend(backend, run.test_x[:1], runs=300, min_time_s=1.0)
                    accuracy = float((backend.run(run.test_x).argmax(1) == run.test_y).mean())
                rows.append({"setting": name, "threads": threads, "p50_ms": round(stats.p50_ms, 4),
                             "p90_ms": round(stats.p90_ms, 4), "accuracy": round(accuracy, 4),
                             "size_bytes": path.stat().st_size})
    for threads in sorted({r["threads"] for r in rows}):
        base = next(r for r in rows if r["threads"] == threads and r["setting"] == "fp32")
        print(f"threads={threads}")
        for r in (r for r in rows if r["threads"] == threads):
            r["speedup_vs_fp32"] = round(base["p50_ms"] / r["p50_ms"], 3)
            print(f"  {r['setting']:<28} p50 {r['p50_ms']:7.3f} ms  p90 {r['p90_ms']:7.3f} ms  "
                  f"{r['speedup_vs_fp32']:5.2f}x fp32  acc {r['accuracy']:.4f}  "
                  f"{r['size_bytes'] / 1024:.0f} KiB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
