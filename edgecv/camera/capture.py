"""The capture thread of ``edgecv camera``: :class:`FrameGrabber` reads a source in its own
thread into a bounded :class:`FrameQueue`.

For a live source (camera, URL) the queue holds only the newest frame and counts the stale ones
it drops; for a file or folder it blocks the reader instead, so every frame is processed. A live
source that stops delivering is re-opened with backoff for ``reconnect_s`` seconds.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgecv.camera.sources import FrameReader, SourceSpec, open_source
from edgecv.errors import DataError, SourceUnavailable


@dataclass
class Frame:
    """One decoded frame: ``index`` in the source, ``t`` in seconds (see FrameGrabber), and the
    model input made from it in the capture thread, if the grabber was given ``prepare``."""

    index: int
    t: float
    image: np.ndarray
    batch: np.ndarray | None = None


class FrameQueue:
    """A small frame queue between the capture thread and the consumer.

    ``drop_stale=True`` (live sources): ``put`` never blocks; when the queue is full the oldest
    frame is discarded and counted in ``dropped``, so the consumer always gets the newest frame.
    ``drop_stale=False`` (files, folders): ``put`` blocks until there is room; nothing is lost.
    ``close()`` (by either side) wakes everyone: ``put`` then returns False, and ``get`` returns
    what is left, then None. Default capacity: 1 when dropping, 4 otherwise.
    """

    def __init__(self, capacity: int | None = None, *, drop_stale: bool):
        capacity = capacity if capacity is not None else (1 if drop_stale else 4)
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, received {capacity}.")
        self.capacity = capacity
        self.drop_stale = drop_stale
        self.dropped = 0
        self._items: collections.deque = collections.deque()
        self._closed = False
        self._changed = threading.Condition()

    def put(self, item) -> bool:
        """Queue ``item``; False if the queue was closed (the item is not queued)."""
        with self._changed:
            if not self.drop_stale:
                while len(self._items) >= self.capacity and not self._closed:
                    self._changed.wait()
            if self._closed:
                return False
            while len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._changed.notify_all()
            return True

    def get(self, timeout: float | None = None):
        """The oldest queued item; None on timeout or once the queue is closed and empty."""
        with self._changed:
            if not self._items and not self._closed:
                self._changed.wait(timeout)
            if not self._items:
                return None
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def finished(self) -> bool:
        """Closed and drained: nothing more will come."""
        with self._changed:
            return self._closed and not self._items


class FrameGrabber(threading.Thread):
    """Reads ``reader`` into ``queue`` in a daemon thread until the source ends, ``stop()`` is
    called, or ``max_frames`` frames were queued.

    ``Frame.index`` counts the source's frames (a frame that failed to decode takes its index
    too); ``Frame.t`` is the frame's time in a video file (index / the file's frame rate) and,
    for live sources, folders and files without a frame rate, ``clock()`` when the frame was
    read. A live source that stops delivering is re-opened with ``open_source`` after 0.25, 0.5,
    1, 2, 2 ... seconds for at most ``reconnect_s`` seconds (0: never). Counters: ``frames``,
    ``failed``, ``reconnects``; ``end_reason`` says why it stopped; the first five failed frames
    are reported through ``log``.

    ``prepare`` (image -> model input), if given, runs here for every frame, so that the
    consumer's thread only runs the model: for files and folders, where every frame is used, this
    overlaps preprocessing with inference. A frame it refuses (DataError) counts as failed.
    """

    def __init__(self, reader: FrameReader, spec: SourceSpec, queue: FrameQueue, *,
                 clock: Callable[[], float],
                 reconnect_s: float = 10.0, open_timeout_s: float = 2.5,
                 max_frames: int | None = None, log: Callable[[str], None] | None = None,
                 prepare: Callable[[np.ndarray], np.ndarray] | None = None):
        super().__init__(name="edgecv-frame-grabber", daemon=True)
        self.reader = reader
        self.spec = spec
        self.queue = queue
        self.clock = clock
        self.reconnect_s = reconnect_s
        self.open_timeout_s = open_timeout_s
        self.max_frames = max_frames
        self.log = log or (lambda _line: None)
        self.prepare = prepare
        self.frames = 0
        self.failed = 0
        self.reconnects = 0
        self.end_reason: str | None = None
        self.error: BaseException | None = None
        self.last_frame_at = time.monotonic()
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the thread to finish (it may be inside a blocking OpenCV call)."""
        self._stop_event.set()
        self.queue.close()

    def run(self) -> None:
        index = 0
        try:
            while not self._stop_event.is_set():
                image, failed = self.reader.read()
                if failed:
                    self._count_failures(index, failed)
                    index += failed
                if image is None:
                    if not self.spec.live:
                        kind = "video" if self.spec.kind == "file" else "folder"
                        self.end_reason = f"end of {kind}"
                        break
                    if self._reconnect():
                        continue
                    self.end_reason = (f"stream lost (no frame for {self.reconnect_s:g} s after "
                                       f"{self.reconnects} reconnect(s))")
                    break
                fps = self.reader.fps
                t = index / fps if fps and self.spec.kind == "file" else self.clock()
                batch = None
                if self.prepare is not None:
                    try:
                        batch = self.prepare(image)
                    except DataError as exc:
                        self.count_failure(index, str(exc))
                        index += 1
                        continue
                if not self.queue.put(Frame(index, t, image, batch)):
                    break
                index += 1
                self.frames += 1
                self.last_frame_at = time.monotonic()
                if self.max_frames is not None and self.frames >= self.max_frames:
                    self.end_reason = "max frames"
                    break
        except Exception as exc:  # handed to the consumer, which re-raises it
            self.error = exc
        finally:
            with contextlib.suppress(Exception):
                self.reader.release()
            self.queue.close()

    def _count_failures(self, index: int, failed: int) -> None:
        reasons = getattr(self.reader, "failures", [])[-failed:] or [None] * failed
        for offset, reason in enumerate(reasons):
            self.count_failure(index + offset, reason)

    def count_failure(self, index: int, reason: str | None = None) -> None:
        """Count frame ``index`` as failed; the first five are reported through ``log``."""
        self.failed += 1
        if self.failed <= 5:
            self.log(f"warning: frame {index} could not be decoded"
                     + (f": {reason}" if reason else "") + "; skipped")
        if self.failed == 5:
            self.log("warning: further frames that fail to decode are only counted")

    def _reconnect(self) -> bool:
        with contextlib.suppress(Exception):
            self.reader.release()
        deadline = time.monotonic() + self.reconnect_s
        delay = 0.25
        while not self._stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop_event.wait(min(delay, remaining)):
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self.reader = open_source(self.spec, min(self.open_timeout_s, max(remaining, 0.5)))
            except SourceUnavailable:
                delay = min(delay * 2, 2.0)
                continue
            self.reconnects += 1
            self.log(f"{self.spec}: reconnected")
            return True
        return False
