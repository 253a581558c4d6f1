"""The typed row `edgecv bench` measures: one (artifact, target, threads), fields in bench.json
order. :mod:`edgecv.benchmarks.suite` creates and fills it; the report reads its dict form.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields


@dataclass(kw_only=True)
class BenchRow:
    """One (artifact, target, threads) row of a benchmark report, fields in bench.json order.

    Every measurement is None (``samples_ms`` empty) until the row is measured, and stays so for
    a row whose ``status`` is not ``ok``. ``warnings`` (the backend's) go to the report's
    warnings list, not into the row's JSON.
    """

    device: str | None = None  # the --on device that measured it (None: this machine, no --on)
    artifact: str
    path: str
    format: str | None
    runtime: str | None = None
    target: str
    threads: int | None
    batch: int | None = None  # images per call (None: the row did not run)
    # measured under emulation (machine record's "emulation"): its timings are not the emulated
    # CPU's, and no recommendation uses them; its accuracy and predictions are real
    emulated: bool = False
    status: str
    reason: str | None
    size_bytes: int | None = None
    sha256: str | None = None
    accuracy: float | None = None
    # top-1 agreement with the same file (SHA-256) on the same target on the device
    # `agreement_with` (`edgecv bench --on`: `local` when given, else the first device)
    agreement: float | None = None
    agreement_with: str | None = None
    test_images: int | None = None
    init_ms: float | None = None
    first_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    p50_ms: float | None = None
    p50_ci_ms: list[float] | None = None  # [low, high]: the interval of p50 over the rounds
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    throughput_per_s: float | None = None
    runs: int | None = None
    rounds: int | None = None
    preprocess_ms: float | None = None
    rss_delta_mb: float | None = None
    peak_rss_mb: float | None = None
    speedup_vs_fp32: float | None = None
    baseline: str | None = None
    integer_kernels: dict | None = None  # ONNX int8: quantized convs ORT runs as integer kernels
    # The mcu target (TFLite Micro on this machine): the tensor arena its recording allocator
    # measured and the one to reserve on a board (kTensorArenaSize), top-1 agreement with the
    # same file on LiteRT (its default kernels, XNNPACK) and the largest output difference in
    # quantization steps, the fit per --mcu-profile (edgecv.runtime.boards.fit), and the time
    # per inference of TFLM's reference kernels on this host: never a microcontroller's
    # latency, never in a recommendation (the latency fields above stay empty for these rows).
    arena_bytes: int | None = None
    arena_head_bytes: int | None = None
    arena_tail_bytes: int | None = None
    arena_reserved_bytes: int | None = None
    agreement_litert: float | None = None
    agreement_litert_counting_ties: float | None = None  # a tie agrees with each of its classes
    max_diff_steps_litert: int | None = None
    mcu_fit: list[dict] | None = None
    host_reference_kernels_p50_ms: float | None = None
    host_reference_kernels_p50_ci_ms: list[float] | None = None
    tied_with_best: bool | None = None  # p50 interval overlaps the fastest row within budget's
    samples_ms: list[float] = field(default_factory=list)
    predictions: list[int] | None = None  # top-1 class per test image, in the test set's order
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The row as bench.json stores it: every field but ``warnings``, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "warnings"}
