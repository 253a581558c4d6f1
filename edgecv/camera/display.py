"""The window of ``edgecv camera``: can a window open here (:func:`display_problem`), the
overlay drawn on each frame (:func:`draw_overlay`), the :class:`Window` and its keys (q/Esc
quit, s saves a snapshot).
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgecv.camera.capture import Frame
from edgecv.camera.opencv import to_bgr8
from edgecv.classify import Prediction

WINDOW_TITLE = "edgecv camera"
QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27: Esc
SNAPSHOT_KEYS = (ord("s"), ord("S"))
OVERLAY_MIN_WIDTH = 480  # smaller frames are enlarged (nearest neighbour) so the text fits


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
    rows = [choice.to_dict() for choice in prediction.top_k] or [
        {"label": "(below threshold)", "score": None}]
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


def save_snapshot(image: np.ndarray, frame: Frame, folder: Path,
                  log: Callable[[str], None]) -> None:
    """Save the annotated frame as ``edgecv-snapshot-<index>.png`` in ``folder``."""
    import cv2

    path = Path(folder) / f"edgecv-snapshot-{frame.index:06d}.png"
    if cv2.imwrite(str(path), image):
        log(f"saved snapshot {path}")
    else:
        log(f"could not save snapshot {path}")
