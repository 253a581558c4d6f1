"""``edgecv camera``: classify a live source (webcam, stream, video file, folder) frame by frame.

One loop in the main thread takes the newest frame from the capture thread
(:class:`edgecv.camera.capture.FrameGrabber`), runs the deployed path of
:class:`edgecv.classify.Classifier` (the same preprocessing and runtime as ``predict`` and
``bench``), and then, only for the outputs that were asked for, annotates the frame, hands it to
the sinks (JSON lines, recording; :mod:`edgecv.camera.sinks`) and the window, and prints a status
line once a second. The run ends with a :class:`edgecv.camera.summary.CameraSummary`. numpy +
OpenCV only.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv.camera.capture import Frame, FrameGrabber, FrameQueue
from edgecv.camera.display import QUIT_KEYS, SNAPSHOT_KEYS, Window, draw_overlay, save_snapshot
from edgecv.camera.opencv import abandon, quiet_opencv_logs
from edgecv.camera.sinks import RECORD_CODECS, JsonLinesSink, RecordingSink, Sink
from edgecv.camera.sources import SourceSpec, open_source
from edgecv.camera.summary import CameraSummary, summarize
from edgecv.classify import Classifier, Prediction
from edgecv.errors import DataError, UsageError

# Without a frame for this long on top of the reconnect window, a live source whose capture
# thread is stuck inside OpenCV is given up on.
STALL_MARGIN_S = 5.0


@dataclass
class CameraSettings:
    """What ``edgecv camera`` does besides classifying.

    Args:
        source: from :func:`edgecv.camera.sources.parse_source`.
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
            raise UsageError(f"`max_frames` must be at least 1, received {self.max_frames}.")
        if not 0 <= self.reconnect_s <= 24 * 3600:
            raise UsageError(f"`reconnect` must be between 0 and 86400 seconds, "
                             f"received {self.reconnect_s:g}.")
        if self.record and Path(self.record).suffix.lower() not in RECORD_CODECS:
            raise UsageError(f"`record` must end in {' or '.join(RECORD_CODECS)} (mp4v or MJPG), "
                             f"received '{Path(self.record).name}'.")
        if (self.record and self.source.kind == "file"
                and Path(self.record).resolve() == Path(self.source.target).resolve()):
            raise UsageError(f"`record` '{self.record}' is the video being read; choose another "
                             "file name.")
        if self.open_timeout_s <= 0:
            raise UsageError(f"`open_timeout` must be positive, received "
                             f"{self.open_timeout_s:g}.")


def make_sinks(settings: CameraSettings) -> list[Sink]:
    """The sinks ``settings`` ask for, in the order they are opened: JSON lines, recording."""
    sinks: list[Sink] = []
    if settings.json_path:
        sinks.append(JsonLinesSink(settings.json_path))
    if settings.record:
        sinks.append(RecordingSink(settings.record))
    return sinks


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
    sinks: list[Sink] = []
    window = None
    try:
        for sink in make_sinks(settings):
            sink.open(reader.fps)
            sinks.append(sink)
        window = None if settings.headless else Window()
    except BaseException:
        reader.release()
        for sink in reversed(sinks):
            sink.close(None)
        raise

    stopwatch = Stopwatch()
    queue = FrameQueue(drop_stale=spec.live)
    run = classifier.infer
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
    annotate = window is not None or any(sink.wants_overlay for sink in sinks)
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
                annotated = draw_overlay(frame.image, prediction, fps, ms) if annotate else None
                for sink in sinks:
                    sink.write(frame, prediction, annotated)
                if window is not None:
                    key = window.show(annotated)
                    if key in QUIT_KEYS or window.closed:
                        ended = "quit"
                        break
                    if key in SNAPSHOT_KEYS:
                        save_snapshot(annotated, frame, settings.snapshot_dir, log)
                if settings.max_frames is not None and len(latencies) >= settings.max_frames:
                    ended = "max frames"
                    break
                if last_done >= next_status:
                    next_status = math.floor(last_done) + 1.0
                    if settings.headless:
                        log(_status_line(last_done, frame, prediction, fps, ms, queue.dropped,
                                         grabber))
                    for sink in sinks:
                        sink.flush()
        except BrokenPipeError:
            ended = "output closed (the reader of `json_path` - went away)"
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
    # Reverse order: the recording's result is in the summary before the JSON lines end with it.
    for sink in reversed(sinks):
        sink.close(summary)
    if error is not None:
        raise error
    return summary


def _status_line(elapsed: float, frame: Frame, prediction: Prediction, fps: float, ms: float,
                 dropped: int, grabber: FrameGrabber) -> str:
    best = "-" if prediction.label is None else f"{prediction.label} {prediction.score:.2f}"
    return (f"[{elapsed:7.1f} s] frame {frame.index}: {best}  {fps:.1f} FPS  {ms:.2f} ms  "
            f"dropped {dropped}  failed {grabber.failed}  reconnects {grabber.reconnects}")


