"""The bench issue's performance goals, measured on one run's artifacts, in one process.

    python benchmarks/experiments/goals.py RUN [--repeats 5] [--json PATH] [--zoo]

Every figure is a ratio of p50 latencies at batch 1 measured with the shared timing loop;
each pair is measured ``--repeats`` times interleaved (A, B, A, B, ...) so that machine drift
hits both sides, and the median ratio is reported with its spread (min..max).

- harness overhead: ``Classifier.infer`` (the call bench, predict and camera time: input
  checks, set_tensor, invoke, get_tensor, dequantization, output checks; an int8 model gets its
  integers from the pixel table in ``prepare``, outside this call) vs a bare
  ``interpreter.invoke()`` on the same interpreter, the two calls alternating (so that the
  machine's drift hits both). Goal: within 5%. And the timing loop alone: ``time_call`` on
  ``invoke`` vs a hand-written ``perf_counter_ns`` loop.
- int8 vs fp32 TFLite at 1 thread. Goal: at least 3x faster.
- deployed int8 TFLite vs the Keras model (batch 1): ``predict_on_batch`` (what bench uses),
  eager ``model(x)`` and a ``tf.function``. Goal: at least 20x faster.
- ONNX int8 vs ONNX fp32 at 1 and 2 threads. Goal: not slower.
- ``--zoo``: int8 vs fp32 TFLite for untrained registry models of several sizes (latency does
  not depend on the weights), to show where int8 pays off on this CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from edgecv.benchmarks.machine import machine_info
from edgecv.timing import time_call, time_interleaved


def _p50(fn, runs: int = 300, min_time_s: float = 0.5) -> float:
    stats, _ = time_call(fn, runs=runs, min_time_s=min_time_s, warmup=20)
    return stats.p50_ms


def _bare_loop_p50(fn, runs: int = 300) -> float:
    """p50 of ``fn`` in the simplest possible loop: what benchmark_model-style code does."""
    samples = []
    for _ in range(20):
        fn()
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return float(np.median(samples)) / 1e6


def summarise(name: str, a_ms: list[float], b_ms: list[float]) -> dict:
    """Median (min, max) of the per-repeat ratios a / b, printed and returned."""
    ratios = [a / b for a, b in zip(a_ms, b_ms)]
    result = {"name": name, "ratio": round(statistics.median(ratios), 3),
              "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
              "a_p50_ms": round(statistics.median(a_ms), 4),
              "b_p50_ms": round(statistics.median(b_ms), 4)}
    print(f"  {name:<58} {result['ratio']:6.3f}x  ({result['ratio_min']:.3f}..{result['ratio_max']:.3f})"
          f"  {result['a_p50_ms']:.3f} ms vs {result['b_p50_ms']:.3f} ms", flush=True)
    return result


def paired(name: str, slow, fast, repeats: int) -> dict:
    """p50(slow) / p50(fast), the two measured one after the other in each repeat."""
    slow_ms, fast_ms = [], []
    for _ in range(repeats):
        slow_ms.append(slow())
        fast_ms.append(fast())
    return summarise(name, slow_ms, fast_ms)


def overhead(name: str, classifier, batch: np.ndarray, repeats: int) -> dict:
    """p50 of ``classifier.infer(batch)`` (what bench, predict and camera time: for an int8
    model the pre-quantized batch of the pixel table) over p50 of a bare ``invoke()`` on the
    same interpreter, the two calls alternating within each repeat."""
    harness_ms, bare_ms = [], []
    infer, invoke = classifier.infer, classifier.backend.interpreter.invoke
    for _ in range(repeats):
        harness, bare = time_interleaved(lambda: infer(batch), invoke)
        harness_ms.append(float(np.median(harness)) / 1e6)
        bare_ms.append(float(np.median(bare)) / 1e6)
    return summarise(name, harness_ms, bare_ms)


def run_goals(run: Path, repeats: int) -> list[dict]:
    from edgecv.classify import Classifier
    from edgecv.preprocessing import model_pixels_to_bgr, prepare_image
    from edgecv.runtime import open_backend
    from edgecv.runtime.base import quantize
    from edgecv.rundir import RunDir
    from edgecv.testset import load_testset

    files = RunDir(run)
    export = files.export.path
    testset = load_testset(files.export.testset)
    results = []
    backends = {}

    def backend(name, threads=1):
        key = (name, threads)
        if key not in backends:
            backends[key] = open_backend(export / name if name != files.model.name else files.model,
                                         threads=threads)
        return backends[key]

    pre = backend("model_fp32.tflite").card.preprocessing
    batch = prepare_image(model_pixels_to_bgr(testset.x[0]), pre)[None]

    print("harness overhead (harness p50 / bare invoke p50, calls interleaved; goal <= 1.05)")
    for name in ("model_fp32.tflite", "model_int8.tflite"):
        classifier = Classifier(backend(name))
        prepared = classifier.prepare(model_pixels_to_bgr(testset.x[0]))
        classifier.infer(prepared)  # sets the input tensor, so the bare loop invokes on an image
        results.append(overhead(f"{name} 1 thread: harness / bare invoke", classifier, prepared,
                                repeats))

    print("int8 input path (hand-written float normalise + quantize p50 / edgecv's pixel table "
          "p50, one test image; goal > 1)")
    int8 = Classifier(backend("model_int8.tflite"))
    quantization = int8.backend.input_quantization
    image = model_pixels_to_bgr(testset.x[0])
    results.append(paired("int8 input: normalise + quantize / pixel table",
                          lambda: _p50(lambda: quantize(prepare_image(image, pre), *quantization)),
                          lambda: _p50(lambda: int8.prepare(image)), repeats))

    print("timing loop itself (time_call p50 / hand-written perf_counter_ns loop p50, invoke only)")
    for name in ("model_fp32.tflite", "model_int8.tflite"):
        invoke = backend(name).interpreter.invoke
        results.append(paired(f"{name} 1 thread: time_call / bare loop",
                              lambda i=invoke: _p50(i), lambda i=invoke: _bare_loop_p50(i), repeats))

    def fp32_over_int8(family: str, fp32_name: str, int8_name: str) -> None:
        for threads in (1, 2):
            fp32, int8 = backend(fp32_name, threads), backend(int8_name, threads)
            results.append(paired(f"{family} fp32 / int8, {threads} thread(s)",
                                  lambda f=fp32: _p50(lambda: f.run(batch)),
                                  lambda i=int8: _p50(lambda: i.run(batch)), repeats))

    print("int8 vs fp32 TFLite (fp32 p50 / int8 p50; goal >= 3)")
    fp32_over_int8("TFLite", "model_fp32.tflite", "model_int8.tflite")

    print("Keras vs deployed int8 TFLite, batch 1 (Keras p50 / int8 p50; goal >= 20)")
    keras = backend(RunDir(run).model.name)
    int8 = backend("model_int8.tflite")
    model = keras.model
    import tensorflow as tf

    compiled = tf.function(lambda x: model(x, training=False))
    for label, call in (("predict_on_batch (bench's reference)", lambda: model.predict_on_batch(batch)),
                        ("eager model(x)", lambda: model(batch, training=False)),
                        ("tf.function(model)", lambda: compiled(batch))):
        results.append(paired(f"Keras {label} / int8 TFLite 1 thread",
                              lambda c=call: _p50(c, runs=50, min_time_s=0.5),
                              lambda: _p50(lambda: int8.run(batch)), repeats))

    print("ONNX fp32 vs int8 (fp32 p50 / int8 p50; goal >= 1)")
    fp32_over_int8("ONNX", "model.onnx", "model_int8.onnx")
    for b in backends.values():
        b.close()
    return results


ZOO = (("resnet8", 32, 1), ("ds_cnn", 32, 1), ("mini_vgg", 32, 1), ("mobilenet_v2", 96, 3),
       ("mobilenet_v2", 160, 3))


def run_zoo(repeats: int) -> list[dict]:
    """int8 vs fp32 TFLite at 1 thread for untrained registry models of growing size."""
    from edgecv.converters.tflite import to_tflite_fp32, to_tflite_int8
    from edgecv.models import count_macs, create_model
    from edgecv.runtime import open_backend

    print("int8 vs fp32 TFLite across model sizes (untrained weights; fp32 p50 / int8 p50)")
    results = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as workdir:
        for name, size, channels in ZOO:
            model = create_model(name, (size, size, channels), 10)
            calibration = rng.uniform(0, 1, (32, size, size, channels)).astype(np.float32)
            paths = {}
            for kind, data in (("fp32", to_tflite_fp32(model)),
                               ("int8", to_tflite_int8(model, calibration))):
                paths[kind] = Path(workdir) / f"{name}_{size}_{kind}.tflite"
                paths[kind].write_bytes(data)
            batch = calibration[:1]
            with open_backend(paths["fp32"], threads=1) as fp32, \
                    open_backend(paths["int8"], threads=1) as int8:
                row = paired(f"{name} {size}x{size}x{channels} ({count_macs(model) / 1e6:.1f} M MACs)",
                             lambda: _p50(lambda: fp32.run(batch)),
                             lambda: _p50(lambda: int8.run(batch)), repeats)
            results.append({**row, "macs": int(count_macs(model))})
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--zoo", action="store_true", help="also compare int8/fp32 across the zoo")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    info = machine_info()
    print(f"{info['cpu']}, {info['usable_cores']} cores, governor {info['governor']}")
    result = {"machine": info, "run": str(args.run), "repeats": args.repeats,
              "goals": run_goals(args.run, args.repeats)}
    if args.zoo:
        result["zoo"] = run_zoo(args.repeats)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
