"""The answer a bench report opens with: which (artifact, runtime, threads) to deploy on each
target.

The choice is the fastest measured row whose accuracy is within ``max_drop`` percentage points of
the float reference (the Keras model, else TFLite fp32, else ONNX fp32, measured in the same
bench), and among the rows whose p50 interval overlaps that fastest row's (tied: the measurement
cannot tell them apart), the smallest file. Rows carry ``p50_ci_ms`` from the interleaved rounds
of :func:`edgecv.timing.time_rounds`. Rows of a target whose time was measured on this host's
reference kernels in place of the device's (the mcu target) are never recommended: that time
says nothing of the device's latency.

Rows measured under emulation (``emulated``: QEMU running an aarch64 Python here) never take
part: their accuracy is real, their timings say nothing about the emulated CPU's speed.
"""

from __future__ import annotations

from edgecv.runtime.targets import HOST_REFERENCE_TARGETS

REFERENCE_FORMATS = ("keras", "tflite_fp32", "onnx")


def intervals_overlap(a: dict, b: dict) -> bool:
    (a_lo, a_hi), (b_lo, b_hi) = a["p50_ci_ms"], b["p50_ci_ms"]
    return a_lo <= b_hi and b_lo <= a_hi


def reference_accuracy(rows: list[dict]) -> tuple[float | None, str | None]:
    """(accuracy, artifact) of the float reference among measured rows, or (None, None)."""
    for fmt in REFERENCE_FORMATS:
        for row in rows:
            if row["status"] == "ok" and row["format"] == fmt and row["accuracy"] is not None:
                return row["accuracy"], row["artifact"]
    return None, None


def within_budget(measured: list[dict], max_drop: float
                  ) -> tuple[list[dict], list[dict], float | None, str | None]:
    """(rows within ``max_drop`` pp of the reference accuracy, rows over it, the reference
    accuracy and artifact). Without a measured reference every row is within."""
    reference, reference_artifact = reference_accuracy(measured)
    if reference is None:
        return measured, [], None, None
    eligible = [r for r in measured if r["accuracy"] is not None
                and (reference - r["accuracy"]) * 100 <= max_drop + 1e-9]
    excluded = [r for r in measured if r not in eligible]  # never the reference itself
    return eligible, excluded, reference, reference_artifact


def recommend_target(rows: list[dict], max_drop: float) -> dict | None:
    """The recommendation for one target's rows (None when no row was measured). Marks each
    measured row's ``tied_with_best``."""
    measured = [r for r in rows if r["status"] == "ok" and r.get("p50_ci_ms")]
    if not measured:
        return None
    eligible, excluded, reference, reference_artifact = within_budget(measured, max_drop)
    for row in measured:
        row["tied_with_best"] = False
    fastest = min(eligible, key=lambda r: r["p50_ms"])
    tied = [r for r in eligible if intervals_overlap(r, fastest)]
    for row in tied:
        row["tied_with_best"] = True
    choice = min(tied, key=lambda r: (r["size_bytes"] or 0, r["p50_ms"]))
    others = [_label(r) for r in tied if r is not choice]
    drop = None if reference is None or choice["accuracy"] is None else \
        round((reference - choice["accuracy"]) * 100, 2)
    if reference is None:
        basis = "accuracy not measured (no test set): the fastest row"
    else:
        basis = f"the fastest within {max_drop} pp of {reference_artifact}'s accuracy"
    if others:
        basis += f"; tied with {', '.join(others)} (p50 intervals overlap), so the smallest"
    if excluded:
        basis += f"; over the accuracy budget: {', '.join(_label(r) for r in excluded)}"
    return {"target": choice["target"], "artifact": choice["artifact"], "path": choice["path"],
            "format": choice["format"], "runtime": choice["runtime"],
            "threads": choice["threads"], "p50_ms": choice["p50_ms"],
            "p50_ci_ms": choice["p50_ci_ms"], "fps": round(1000.0 / choice["p50_ms"], 1),
            "accuracy": choice["accuracy"], "accuracy_drop_pp": drop,
            "size_bytes": choice["size_bytes"], "max_drop_pp": max_drop,
            "tied_with": others, "reason": basis}


def _with_summary(choice: dict) -> dict:
    return {**choice, "summary": sentence(choice)}


def recommend(rows: list[dict], max_drop: float) -> list[dict]:
    """One recommendation per target that has a measured row, in the rows' target order; none
    for a host-reference target (mcu), whatever its rows hold; rows timed under emulation are
    left out."""
    rows = [r for r in rows if not r.get("emulated")]
    targets = list(dict.fromkeys(r["target"] for r in rows
                                 if r["target"] not in HOST_REFERENCE_TARGETS))
    found = (recommend_target([r for r in rows if r["target"] == t], max_drop) for t in targets)
    return [_with_summary(r) for r in found if r is not None]


def recommend_deployments(rows: list[dict], max_drop: float) -> list[dict]:
    """What to deploy for one image at a time: :func:`recommend` over the batch-1 rows (larger
    batches are throughput figures for multi-camera boxes and offline labelling)."""
    return recommend([r for r in rows if r["batch"] in (1, None)], max_drop)


def _label(row: dict) -> str:
    threads = f" x{row['threads']}" if row.get("threads") else ""
    return f"{row['artifact']}{threads}"


def sentence(choice: dict) -> str:
    """``deploy model_int8.tflite on litert (cpu) with 1 thread: p50 0.29 ms (0.27..0.31), 3448
    FPS, accuracy 78.20% (-0.30 pp), 110.2 KiB``."""
    threads = "" if choice["threads"] is None else \
        f" with {choice['threads']} thread{'s' if choice['threads'] != 1 else ''}"
    lo, hi = choice["p50_ci_ms"]
    accuracy = "accuracy not measured" if choice["accuracy"] is None else \
        f"accuracy {choice['accuracy'] * 100:.2f}%" + (
            "" if choice["accuracy_drop_pp"] is None else f" ({-choice['accuracy_drop_pp'] or 0.0:+.2f} pp)")
    return (f"deploy {choice['artifact']} on {choice['runtime']} ({choice['target']}){threads}: "
            f"p50 {choice['p50_ms']:.3f} ms ({lo:.3f}..{hi:.3f}), {choice['fps']:.0f} FPS, "
            f"{accuracy}, {choice['size_bytes'] / 1024:.1f} KiB")
