"""The bench recommendation: fastest within the accuracy budget, ties broken by size (no
TensorFlow; the rows are what bench writes, the interleaved measurement is tested in
test_timing and test_bench)."""

from edgecv.benchmarks.recommend import recommend, sentence


def row(artifact, fmt, p50, ci, accuracy, size, threads=1, target="cpu", status="ok"):
    return {"artifact": artifact, "path": f"/x/{artifact}", "format": fmt, "runtime": "litert",
            "target": target, "threads": threads, "status": status, "p50_ms": p50,
            "p50_ci_ms": ci, "accuracy": accuracy, "size_bytes": size}


def test_fastest_within_budget_wins():
    rows = [row("model_fp32.tflite", "tflite_fp32", 0.30, [0.29, 0.31], 0.80, 400_000),
            row("model_int8.tflite", "tflite_int8", 0.20, [0.19, 0.21], 0.70, 110_000),
            row("model_fp16.tflite", "tflite_fp16", 0.25, [0.24, 0.26], 0.80, 200_000)]
    (choice,) = recommend(rows, max_drop=1.0)
    assert choice["artifact"] == "model_fp16.tflite"  # int8 is faster but lost 10 pp
    assert "model_int8.tflite x1" in choice["reason"]
    assert choice["accuracy_drop_pp"] == 0.0
    assert rows[2]["tied_with_best"] and not rows[0]["tied_with_best"]
    assert sentence(choice).startswith("deploy model_fp16.tflite on litert (cpu) with 1 thread: p50 0.250 ms")


def test_a_tie_goes_to_the_smaller_file():
    rows = [row("model_fp32.tflite", "tflite_fp32", 0.20, [0.19, 0.23], 0.80, 400_000),
            row("model_int8.tflite", "tflite_int8", 0.22, [0.21, 0.24], 0.799, 110_000),
            row("model_fp32.tflite", "tflite_fp32", 0.35, [0.33, 0.37], 0.80, 400_000, threads=2)]
    (choice,) = recommend(rows, max_drop=1.0)
    assert choice["artifact"] == "model_int8.tflite"
    assert choice["tied_with"] == ["model_fp32.tflite x1"]
    assert not rows[2]["tied_with_best"]


def test_separated_rows_are_not_tied():
    rows = [row("model_fp32.tflite", "tflite_fp32", 0.20, [0.19, 0.205], 0.80, 400_000),
            row("model_int8.tflite", "tflite_int8", 0.22, [0.21, 0.24], 0.80, 110_000)]
    (choice,) = recommend(rows, max_drop=1.0)
    assert choice["artifact"] == "model_fp32.tflite" and choice["tied_with"] == []


def test_per_target_and_unmeasured_rows():
    rows = [row("model_fp32.tflite", "tflite_fp32", 0.3, [0.29, 0.31], None, 400_000),
            row("*", "*", None, None, None, None, threads=None, target="gpu", status="unavailable")]
    (choice,) = recommend(rows, max_drop=1.0)
    assert choice["target"] == "cpu" and "accuracy not measured" in choice["reason"]
    assert "accuracy not measured" in sentence(choice)


def test_the_reference_is_always_within_budget():
    rows = [row("model_fp32.tflite", "tflite_fp32", 0.3, [0.29, 0.31], 0.8, 400_000),
            row("model_int8.tflite", "tflite_int8", 0.2, [0.19, 0.21], 0.5, 100_000)]
    (choice,) = recommend(rows, max_drop=1.0)
    assert choice["artifact"] == "model_fp32.tflite"
    assert "over the accuracy budget: model_int8.tflite x1" in choice["reason"]
