"""The numbers of one ``edgecv camera`` run: :class:`CameraSummary` and :func:`summarize`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class CameraSummary:
    """The run in numbers. ``fps`` is end to end: processed frames / seconds from the start of
    capture to the last processed frame. ``*_ms`` are the inference times (``Classifier.infer``).
    ``failure`` is set when the run did not end normally (stream lost, bad recording)."""

    source: str
    frames: int
    duration_s: float
    fps: float | None
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    dropped: int
    failed_decodes: int
    reconnects: int
    ended: str
    recording: str | None = None
    recorded_frames: int | None = None
    # times the recording's writer queue was full and the loop waited for it (never dropped)
    recording_waits: int | None = None
    recording_wait_s: float | None = None
    failure: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The summary for a terminal."""
        def ms(value):
            return "-" if value is None else f"{value:.3f} ms"

        lines = [
            f"summary: {self.frames} frames from {self.source} in {self.duration_s:.2f} s, "
            f"{'-' if self.fps is None else f'{self.fps:.1f}'} FPS end to end; ended: {self.ended}",
            f"inference: mean {ms(self.mean_ms)}, p50 {ms(self.p50_ms)}, p90 {ms(self.p90_ms)}",
            f"dropped frames {self.dropped}, failed decodes {self.failed_decodes}, "
            f"reconnects {self.reconnects}",
        ]
        if self.recording and self.recorded_frames:
            waits = (f"; the writer fell behind {self.recording_waits} time(s), "
                     f"{self.recording_wait_s:.2f} s waited" if self.recording_waits else "")
            lines.append(f"recording: {self.recording} ({self.recorded_frames} frames, verified"
                         f"{waits})")
        elif self.recording:
            lines.append(f"recording: {self.recording} not written"
                         + (" (no frame was processed)" if self.recorded_frames == 0 else ""))
        return lines


def summarize(latencies_ms, *, duration_s: float, source: str, ended: str, dropped: int = 0,
              failed_decodes: int = 0, reconnects: int = 0) -> CameraSummary:
    """Build the summary from the per-frame inference times in ms (one per processed frame)."""
    from edgecv.timing import latency_percentiles

    ms = np.asarray(latencies_ms, np.float64)
    frames = int(ms.size)
    mean = p50 = p90 = None
    if frames:
        stats = latency_percentiles(ms * 1e6, first_ns=int(ms[0] * 1e6), batch_size=1)
        mean, p50, p90 = stats.mean_ms, stats.p50_ms, stats.p90_ms
    fps = frames / duration_s if frames and duration_s > 0 else None
    return CameraSummary(source=source, frames=frames, duration_s=round(duration_s, 4),
                         fps=None if fps is None else round(fps, 2),
                         mean_ms=None if mean is None else round(mean, 4),
                         p50_ms=None if p50 is None else round(p50, 4),
                         p90_ms=None if p90 is None else round(p90, 4),
                         dropped=dropped, failed_decodes=failed_decodes, reconnects=reconnects,
                         ended=ended)
