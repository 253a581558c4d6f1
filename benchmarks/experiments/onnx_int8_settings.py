"""Is ONNX int8 faster than ONNX fp32 on this CPU, and under which quantization settings?

    python benchmarks/experiments/onnx_int8_settings.py RUN [--threads 1,2] [--repeats 5] \
        [--json PATH]

Quantizes the run's model with onnxruntime.quantization under each setting (QDQ vs QOperator,
per-channel vs per-tensor, int8 vs uint8 activations, 8-bit vs 7-bit (reduce_range) weights),
then times every file with the shared timing loop (edgecv.timing) on one real test
image, and measures its test accuracy. The timing is repeated ``--repeats`` times (0.5 s each),
over all the files in a new random order each time, so that load from other processes on a shared
machine falls on all of them alike; ``p50_ms`` is the median of the repeats, ``p50_ms_repeats``
and ``speedup_range`` (min-max of the per-repeat ratios to fp32) show the spread.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

# w8 / w7: 8-bit weights, or 7-bit (reduce_range). "w8" U8S8 saturates the int16 pair sums of
# ONNX Runtime's AVX2 (non-VNNI) U8S8 kernel (converters/onnx.py, to_onnx_int8).
SETTINGS = {
    "QDQ per-channel S8S8": dict(quant_format="QDQ", per_channel=True, activation_type="int8"),
    "QDQ per-tensor S8S8": dict(quant_format="QDQ", per_channel=False, activation_type="int8"),
    "QDQ per-channel U8S8 w8 (old)": dict(quant_format="QDQ", per_channel=True,
                                          activation_type="uint8", reduce_range=False),
    "QDQ per-channel U8S8 w7 (default)": dict(quant_format="QDQ", per_channel=True,
                                              activation_type="uint8", reduce_range=True),
    "QDQ per-tensor U8S8 w8": dict(quant_format="QDQ", per_channel=False, activation_type="uint8",
                                   reduce_range=False),
    "QDQ per-tensor U8S8 w7": dict(quant_format="QDQ", per_channel=False, activation_type="uint8",
                                   reduce_range=True),
    "QDQ per-channel U8U8": dict(quant_format="QDQ", per_channel=True, activation_type="uint8",
                                 weight_type="uint8"),
    "QOperator per-channel U8S8 w8": dict(quant_format="QOperator", per_channel=True,
                                          activation_type="uint8", reduce_range=False),
    "QOperator per-channel U8S8 w7": dict(quant_format="QOperator", per_channel=True,
                                          activation_type="uint8", reduce_range=True),
    "QOperator per-tensor U8S8 w8": dict(quant_format="QOperator", per_channel=False,
                                         activation_type="uint8", reduce_range=False),
}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, received {args.repeats}.")

    import onnx

    from edgecv.timing import time_backend
    from edgecv.converters.load import load_run
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
            backends = {name: OnnxRuntimeBackend(path, threads=threads)
                        for name, path in files.items()}
            p50 = {name: [] for name in files}
            p90 = {name: [] for name in files}
            try:
                names, order = list(backends), np.random.default_rng(threads)
                for _ in range(args.repeats):
                    for name in (names[i] for i in order.permutation(len(names))):
                        stats = time_backend(backends[name], run.test_x[:1], runs=300,
                                             min_time_s=0.5)
                        p50[name].append(stats.p50_ms)
                        p90[name].append(stats.p90_ms)
                for name, backend in backends.items():
                    accuracy = float((backend.run(run.test_x).argmax(1) == run.test_y).mean())
                    rows.append({"setting": name, "threads": threads,
                                 "p50_ms": round(float(np.median(p50[name])), 4),
                                 "p90_ms": round(float(np.median(p90[name])), 4),
                                 "p50_ms_repeats": [round(v, 4) for v in p50[name]],
                                 "accuracy": round(accuracy, 4),
                                 "size_bytes": files[name].stat().st_size})
            finally:
                for backend in backends.values():
                    backend.close()
    for threads in sorted({r["threads"] for r in rows}):
        base = next(r for r in rows if r["threads"] == threads and r["setting"] == "fp32")
        print(f"threads={threads} (p50 = median of {args.repeats} repeats; speedup min-max over "
              "repeats)")
        for r in (r for r in rows if r["threads"] == threads):
            r["speedup_vs_fp32"] = round(base["p50_ms"] / r["p50_ms"], 3)
            ratios = [b / v for b, v in zip(base["p50_ms_repeats"], r["p50_ms_repeats"])]
            r["speedup_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
            print(f"  {r['setting']:<34} p50 {r['p50_ms']:7.3f} ms  p90 {r['p90_ms']:7.3f} ms  "
                  f"{r['speedup_vs_fp32']:5.2f}x fp32 ({r['speedup_range'][0]:.2f}-"
                  f"{r['speedup_range'][1]:.2f})  acc {r['accuracy']:.4f}  "
                  f"{r['size_bytes'] / 1024:.0f} KiB")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
