"""``edgecv camera``: classify a live source (webcam, stream, video file, folder) frame by frame.

One loop in the main thread takes the newest frame from the capture thread
(:class:`edgecv.video.FrameGrabber`), runs the deployed path of :class:`edgecv.classify.Classifier`
(the same preprocessing and runtime as ``predict`` and ``bench``), and then, only for the outputs
that were asked for, writes a JSON line, annotates the frame for the window or the recording, and
prints a status line once a second. numpy + OpenCV only.

Each processed frame gives the record ``{"frame", "t", "label", "score", "top_k": [{"label",
"score"}...], "ms"}`` (:func:`frame_record`); the run ends with a :class:`CameraSummary`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgecv.classify import Classifier, Prediction
from edgecv.errors import DataError, UsageError
from edgecv.video import (RECORD_CODECS, Frame, FrameGrabber, FrameQueue, RecordingError,
                          SourceSpec, VideoRecorder, abandon, open_source, quiet_opencv_logs,
                          to_bgr8)

WINDOW_TITLE = "edgecv camera"
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27: Esc
SNAPSHOT_KEYS = (ord("s"), ord("S"))
OVERLAY_MIN_WIDTH = 480  # smaller frames are enlarged (nearest neighbour) so the text fits
# Without a frame for this long on top of the reconnect window, a live source whose capture
# thread is stuck inside OpenCV is given up on.
STALL_MARGIN_S = 5.0


@dataclass
class CameraSettings:
    """What ``edgecv camera`` does besides classifying.

    Args:
        source: from :func:`edgecv.video.parse_source`.
        headless: no window; a status line per second on stderr (default False).
        record: write the annotated video here (.mp4 or .avi; default none).
        json_path: one JSON line per processed frame to this file, or ``-`` for stdout.
        max_frames: stop after this many processed frames (default: until the source ends).
        reconnect_s: how long a lost live source is re-opened before giving up (default 10).
        open_timeout_s: how long opening a source and reading its first frame may take (default
            2.5, so that a bad source is reported within 5 s of starting the command).
        snapshot_dir: where ``s`` saves snapshots (default the current folder).
    """

    source: SourceSpec
    headless: bool = False
    record: str | None = None
    json_path: str | None = None
    max_frames: int | None = None
    reconnect_s: float = 10.0
    open_timeout_s: float = 2.5
    snapshot_dir: Path = field(default_factory=Path)

    def __post_init__(self) -> None:
        if self.max_frames is not None and self.max_frames < 1:
            raise UsageError(f"--max-frames must be at least 1, received {self.max_frames}.")
        if not 0 <= self.reconnect_s <= 24 * 3600:
            raise UsageError(f"--reconnect must be between 0 and 86400 seconds, "
                             f"received {self.reconnect_s:g}.")
        if self.record and Path(self.record).suffix.lower() not in RECORD_CODECS:
            raise UsageError(f"--record must end in {' or '.join(RECORD_CODECS)} (mp4v or MJPG), "
                             f"received '{Path(self.record).name}'.")
        if (self.record and self.source.kind == "file"
                and Path(self.record).resolve() == Path(self.source.target).resolve()):
            raise UsageError(f"--record '{self.record}' is the video being read; choose another "
                             "file name.")
        if self.open_timeout_s <= 0:
            raise UsageError(f"--open-timeout must be positive, received "
                             f"{self.open_timeout_s:g}.")


@dataclass
class CameraSummary:
    """The run in numbers. ``fps`` is end to end: processed frames / seconds from the start of
    capture to the last processed frame. ``*_ms`` are the inference times (``Backend.run``).
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
            lines.append(f"recording: {self.recording} ({self.recorded_frames} frames, verified)")
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


def frame_record(frame: Frame, prediction: Prediction) -> dict:
    """The JSON record of one processed frame: frame (source index), t (s), label, score,
    top_k, ms (inference)."""
    return {"frame": frame.index, "t": round(frame.t, 4), "label": prediction.label,
            "score": prediction.score, "top_k": prediction.top_k, "ms": prediction.ms}


class JsonLines:
    """One JSON object per line to a file (flushed once a second and at the end) or to stdout
    (``-``, flushed per line so a reading program sees every frame at once)."""

    def __init__(self, target: str):
        self.to_stdout = target == "-"
        if self.to_stdout:
            self._handle = sys.stdout
        else:
            try:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                self._handle = open(target, "w", encoding="utf-8")  # noqa: SIM115 (closed in close)
            except OSError as exc:
                raise UsageError(f"cannot write --json '{target}': {exc.strerror or exc}.") from exc

    def write(self, record: dict) -> None:
        """Raises BrokenPipeError when the program reading stdout has gone (``| head``)."""
        self._handle.write(json.dumps(record) + "\n")
        if self.to_stdout:
            self._handle.flush()

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        if not self.to_stdout:
            self._handle.close()
            return
        try:
            self._handle.flush()
        except BrokenPipeError:
            # Nobody reads stdout any more: point it at /dev/null so that the interpreter's own
            # flush at exit does not fail again (the recipe of the Python signal docs).
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


def draw_overlay(image: np.ndarray, prediction: Prediction, fps: float,
                 ms: float | None) -> np.ndarray:
    """The frame as 8-bit BGR with the top-k labels and scores (with bars) at the top left and
    the smoothed FPS and inference time at the bottom. Frames narrower than 480 px are enlarged
    first. Draws in place when the frame already is 8-bit BGR."""
    import cv2

    canvas = to_bgr8(image)
    height, width = canvas.shape[:2]
    if width < OVERLAY_MIN_WIDTH:
        factor = math.ceil(OVERLAY_MIN_WIDTH / width)
        canvas = cv2.resize(canvas, (width * factor, height * factor),
                            interpolation=cv2.INTER_NEAREST)
        height, width = canvas.shape[:2]
    scale = max(0.4, min(height, width) / 600)
    thickness = max(1, round(scale * 2))
    line = int(34 * scale)
    font = cv2.FONT_HERSHEY_SIMPLEX
    rows = prediction.top_k or [{"label": "(below threshold)", "score": None}]
    panel_w, panel_h = min(width, int(330 * scale)), min(height, line * len(rows) + line // 2)
    region = canvas[:panel_h, :panel_w]
    region[:] = (region * 0.4).astype(np.uint8)  # darken behind the text
    for i, row in enumerate(rows):
        y = line * (i + 1)
        colour = (80, 255, 80) if i == 0 else (230, 230, 230)
        if row["score"] is not None:
            bar = int((panel_w - 12) * max(0.0, min(1.0, row["score"])))
            cv2.rectangle(canvas, (6, y - line + 10), (6 + bar, y + 4), (90, 60, 20), cv2.FILLED)
            text = f"{row['label']}  {row['score']:.2f}"
        else:
            text = row["label"]
        cv2.putText(canvas, text, (10, y), font, 0.8 * scale, colour, thickness, cv2.LINE_AA)
    status = (f"{f'{fps:.1f}' if fps > 0 else '--'} FPS   "
              f"{'--' if ms is None else f'{ms:.2f}'} ms")
    cv2.putText(canvas, status, (10, height - 12), font, 0.7 * scale, (0, 0, 0), thickness + 2,
                cv2.LINE_AA)
    cv2.putText(canvas, status, (10, height - 12), font, 0.7 * scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
    return canvas


_PROBE = ("import cv2; cv2.namedWindow('edgecv-probe'); cv2.waitKey(1); "
          "cv2.destroyAllWindows()")


def display_problem() -> str | None:
    """None if OpenCV can open a window here, else why not. Without DISPLAY/WAYLAND_DISPLAY on
    Linux there is none; otherwise a child process tries, because OpenCV's Qt backend aborts the
    whole process (it does not raise) when it cannot reach the display."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY and WAYLAND_DISPLAY are not set)"
    try:
        probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                               timeout=10)
    except subprocess.TimeoutExpired:
        return "opening a test window took more than 10 s"
    if probe.returncode != 0:
        detail = [line for line in probe.stderr.strip().splitlines() if line.strip()]
        return "OpenCV cannot open a window" + (f" ({detail[-1].strip()[:160]})" if detail else "")
    return None


class Window:
    """The OpenCV window: :meth:`show` returns the key pressed (or -1)."""

    def __init__(self, title: str = WINDOW_TITLE):
        import cv2

        self.title = title
        # opencv-python points Qt at a font folder its wheel does not ship; Qt then prints five
        # warnings on every start. Use the system fonts when that folder is missing.
        fonts = os.environ.get("QT_QPA_FONTDIR")
        if fonts and not Path(fonts).is_dir() and Path("/usr/share/fonts").is_dir():
            os.environ["QT_QPA_FONTDIR"] = "/usr/share/fonts"
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
        self._shown = 0

    def show(self, image: np.ndarray) -> int:
        import cv2

        cv2.imshow(self.title, image)
        self._shown += 1
        return self.poll()

    def poll(self) -> int:
        """Handle window events without a new frame; the key pressed (or -1)."""
        import cv2

        key = cv2.waitKey(1)
        return -1 if key < 0 else key & 0xFF

    @property
    def closed(self) -> bool:
        """True once the user closed the window with its title bar button."""
        import cv2

        try:
            return self._shown > 1 and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def close(self) -> None:
        import cv2

        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)


@contextlib.contextmanager
def _graceful_interrupts(stop: threading.Event):
    """The first Ctrl-C (or SIGTERM) asks the loop to finish its frame and stop; a second one
    interrupts at once. Only the main thread can install signal handlers; elsewhere this is a
    no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def check_labels(classifier: Classifier) -> None:
    """Run the model once on a black input (also a warm-up, so the first frame's time is not an
    outlier) and check it has one output per label; UsageError otherwise."""
    shape = classifier.preprocessing.input_shape
    scores = classifier.backend.run(np.zeros((1, *shape), np.float32))
    classifier.decode(scores[0])


def run_camera(classifier: Classifier, settings: CameraSettings, *,
               log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)
               ) -> CameraSummary:
    """Classify ``settings.source`` until it ends, ``max_frames`` are done, the user quits
    (q/Esc in the window, Ctrl-C) or a live source stays lost for ``reconnect_s`` seconds.

    Writes the JSON lines, the recording (verified and renamed at the end) and, with a JSON
    file, a final ``{"summary": {...}}`` line; returns the summary. ``log`` gets the status
    lines and notes (default: stderr). Raises SourceUnavailable when the source cannot be
    opened, UsageError for unusable settings.
    """
    from edgecv.timing import FpsMeter, Stopwatch, timed

    quiet_opencv_logs()
    check_labels(classifier)
    spec = settings.source
    reader = open_source(spec, settings.open_timeout_s)
    sink = recorder = window = None
    try:
        sink = JsonLines(settings.json_path) if settings.json_path else None
        recorder = VideoRecorder(settings.record, reader.fps) if settings.record else None
        window = None if settings.headless else Window()
    except BaseException:
        reader.release()
        if sink:
            sink.close()
        raise

    stopwatch = Stopwatch()
    queue = FrameQueue(drop_stale=spec.live)
    run = classifier.backend.run
    prepare, decode = classifier.prepare, classifier.decode
    # Files and folders: preprocess in the capture thread too (every frame is used, so the
    # work overlaps inference); live sources: only the frame that is not dropped is prepared.
    grabber = FrameGrabber(reader, spec, queue, clock=stopwatch.elapsed,
                           reconnect_s=settings.reconnect_s,
                           open_timeout_s=settings.open_timeout_s, log=log,
                           prepare=None if spec.live else prepare)
    stall_limit = settings.reconnect_s + 2 * settings.open_timeout_s + STALL_MARGIN_S
    stop = threading.Event()
    meter = FpsMeter()
    annotate = recorder is not None or window is not None
    latencies: list[float] = []
    last_done = 0.0
    next_status = 1.0
    ended = "interrupted"
    error: BaseException | None = None

    with _graceful_interrupts(stop):
        grabber.start()
        try:
            while not stop.is_set():
                frame = queue.get(timeout=0.1)
                if frame is None:
                    if queue.finished:
                        if grabber.error is not None:
                            raise grabber.error
                        ended = grabber.end_reason or "source closed"
                        break
                    if spec.live and time.monotonic() - grabber.last_frame_at > stall_limit:
                        ended = f"stream lost (stalled for {stall_limit:g} s)"
                        break
                    if window is not None and (window.poll() in QUIT_KEYS or window.closed):
                        ended = "quit"  # the window stays responsive while the source stalls
                        break
                    waited = stopwatch.elapsed()
                    if settings.headless and waited >= next_status:
                        next_status = math.floor(waited) + 1.0
                        log(f"[{waited:7.1f} s] waiting for {spec}: no frame for "
                            f"{time.monotonic() - grabber.last_frame_at:.1f} s, "
                            f"reconnects {grabber.reconnects}")
                    continue
                batch = frame.batch
                if batch is None:
                    try:
                        batch = prepare(frame.image)
                    except DataError as exc:
                        grabber.count_failure(frame.index, str(exc))
                        continue
                scores, ms = timed(run, batch)
                prediction = decode(scores[0], ms)
                latencies.append(ms)
                fps = meter.tick()
                last_done = stopwatch.elapsed()
                if sink is not None:
                    sink.write(frame_record(frame, prediction))
                if annotate:
                    annotated = draw_overlay(frame.image, prediction, fps, ms)
                    if recorder is not None:
                        recorder.write(annotated)
                    if window is not None:
                        key = window.show(annotated)
                        if key in QUIT_KEYS or window.closed:
                            ended = "quit"
                            break
                        if key in SNAPSHOT_KEYS:
                            _save_snapshot(annotated, frame, settings.snapshot_dir, log)
                if settings.max_frames is not None and len(latencies) >= settings.max_frames:
                    ended = "max frames"
                    break
                if last_done >= next_status:
                    next_status = math.floor(last_done) + 1.0
                    if settings.headless:
                        log(_status_line(last_done, frame, prediction, fps, ms, queue.dropped,
                                         grabber))
                    if sink is not None:
                        sink.flush()
        except BrokenPipeError:
            ended = "output closed (the reader of --json - went away)"
        except BaseException as exc:  # finish the outputs, then re-raise
            error = exc
            ended = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"error: {exc}"
        finally:
            grabber.stop()
            grabber.join(timeout=2.0)
            if grabber.is_alive():  # stuck in a read that OpenCV does not let us interrupt
                abandon(grabber)
            if window is not None:
                window.close()

    summary = summarize(latencies, duration_s=last_done, source=str(spec), ended=ended,
                        dropped=queue.dropped, failed_decodes=grabber.failed,
                        reconnects=grabber.reconnects)
    if ended.startswith("stream lost"):
        summary.failure = f"{spec}: {ended}"
    if recorder is not None:
        summary.recording = str(recorder.path)
        try:
            summary.recorded_frames = recorder.finish()
        except RecordingError as exc:
            summary.failure = str(exc)
    if sink is not None:
        if not sink.to_stdout:
            sink.write({"summary": summary.to_dict()})
        sink.close()
    if error is not None:
        raise error
    return summary


def _status_line(elapsed: float, frame: Frame, prediction: Prediction, fps: float, ms: float,
                 dropped: int, grabber: FrameGrabber) -> str:
    best = "-" if prediction.label is None else f"{prediction.label} {prediction.score:.2f}"
    return (f"[{elapsed:7.1f} s] frame {frame.index}: {best}  {fps:.1f} FPS  {ms:.2f} ms  "
            f"dropped {dropped}  failed {grabber.failed}  reconnects {grabber.reconnects}")


def _save_snapshot(image: np.ndarray, frame: Frame, folder: Path,
                   log: Callable[[str], None]) -> None:
    import cv2

    path = Path(folder) / f"edgecv-snapshot-{frame.index:06d}.png"
    if cv2.imwrite(str(path), image):
        log(f"saved snapshot {path}")
    else:
        log(f"could not save snapshot {path}")
