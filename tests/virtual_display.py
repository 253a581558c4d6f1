"""A virtual X display for the camera's window-mode tests.

Xvfb keeps its screen in a file (``-fbdir``, XWD format), so a test reads exactly the pixels the
window shows. Keys go through the X server like a keyboard's (xdotool, XTEST extension) to the
focused window, where OpenCV's own ``waitKey`` reads them. Closing sends the window the
``WM_DELETE_WINDOW`` message that a window manager sends when the user clicks the close button
(Xvfb has no window manager to click).

Needs Debian's ``xvfb`` and ``xdotool`` (``.ci/run`` installs them); :class:`DisplayUnavailable`
says which is missing or why Xvfb did not start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np

SCREEN_SIZE = (1024, 768)  # width, height: room for a 640x480 frame plus OpenCV's Qt toolbar


class DisplayUnavailable(Exception):
    """Xvfb or xdotool is missing, or Xvfb did not start; the message says which."""


class VirtualDisplay:
    """An Xvfb server on a free display number, its screen in ``folder``. Stop it with
    :meth:`stop`."""

    def __init__(self, folder: Path, start_timeout_s: float = 15.0):
        for tool, package in (("Xvfb", "xvfb"), ("xdotool", "xdotool")):
            if shutil.which(tool) is None:
                raise DisplayUnavailable(f"{tool} is not installed (Debian: apt-get install "
                                         f"{package})")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        width, height = SCREEN_SIZE
        self._log = open(self.folder / "xvfb.log", "wb")  # noqa: SIM115 (closed in stop)
        read_end, write_end = os.pipe()
        # -displayfd: Xvfb picks a free display and writes its number once it accepts clients.
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24",
             "-fbdir", str(self.folder), "-nolisten", "tcp", "-noreset"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            pass_fds=(write_end,))
        os.close(write_end)
        try:
            number = self._read_display_number(read_end, start_timeout_s)
        finally:
            os.close(read_end)
        if number is None:
            self.stop()
            raise DisplayUnavailable(f"Xvfb did not start (waited {start_timeout_s:g} s): "
                                     f"{self._last_log_line() or 'no message'}")
        self.name = f":{number}"
        self.env = {**os.environ, "DISPLAY": self.name}
        self.env.pop("WAYLAND_DISPLAY", None)

    def _read_display_number(self, fd: int, timeout_s: float) -> str | None:
        deadline = time.monotonic() + timeout_s
        text = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 64)
                if not chunk:  # Xvfb exited
                    return None
                text += chunk
                if text.endswith(b"\n"):
                    return text.decode().strip()
            elif self.process.poll() is not None:
                return None
        return None

    def _last_log_line(self) -> str:
        text = (self.folder / "xvfb.log").read_text(errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def xdotool(self, *args: str, timeout: float = 10.0) -> str:
        result = subprocess.run(["xdotool", *args], check=False, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0 and result.stderr.strip():
            raise RuntimeError(f"xdotool {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def wait_for_window(self, title: str, process: subprocess.Popen,
                        timeout_s: float = 60.0) -> int:
        """The id of the visible window named ``title``; fails if ``process`` ends first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.xdotool("search", "--onlyvisible", "--name", f"^{title}$").split()
            if found:
                return int(found[0])
            if process.poll() is not None:
                raise AssertionError(f"the process ended (code {process.returncode}) before its "
                                     f"window '{title}' appeared")
            time.sleep(0.1)
        raise AssertionError(f"no window '{title}' within {timeout_s:g} s")

    def press(self, window: int, key: str) -> None:
        """Focus ``window`` and press and release ``key`` (an X keysym name: q, s, Escape)."""
        self.xdotool("windowfocus", "--sync", str(window))
        self.xdotool("key", key)

    def park_pointer(self) -> None:
        """Move the mouse pointer to the bottom-right corner, away from the window."""
        self.xdotool("mousemove", str(SCREEN_SIZE[0] - 1), str(SCREEN_SIZE[1] - 1))

    def close_window(self, window: int) -> None:
        """Ask ``window`` to close, as a window manager's close button does."""
        send_wm_delete_window(self.name, window)

    def remap(self, window: int) -> None:
        """Unmap and map ``window`` again. Without a window manager, OpenCV's Qt window
        sometimes stays black (about one start in four here, with plain ``cv2.imshow`` as well
        as with edgecv): Qt missed its first expose, and an Expose event alone does not make it
        paint; being mapped again does, and the window stays open."""
        self.xdotool("windowunmap", "--sync", str(window))
        self.xdotool("windowmap", "--sync", str(window))

    def screenshot(self) -> np.ndarray:
        """The whole screen as 8-bit BGR, read from Xvfb's framebuffer file."""
        return read_xwd((self.folder / "Xvfb_screen0").read_bytes())


def read_xwd(data: bytes) -> np.ndarray:
    """A 24-bit TrueColor XWD image (what Xvfb's ``-fbdir`` keeps) as 8-bit BGR."""
    fields = struct.unpack(">25I", data[:100])
    header_size, depth, width, height = fields[0], fields[3], fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line = fields[7], fields[11], fields[12]
    red_mask, green_mask, blue_mask = fields[14:17]
    colours = fields[19]  # XWDColor entries (12 bytes each) between the header and the pixels
    if (depth, bits_per_pixel, byte_order) != (24, 32, 0) or \
            (red_mask, green_mask, blue_mask) != (0xFF0000, 0xFF00, 0xFF):
        raise ValueError(f"unexpected XWD layout: depth {depth}, {bits_per_pixel} bits per "
                         f"pixel, byte order {byte_order}")
    offset = header_size + colours * 12
    rows = np.frombuffer(data, np.uint8, count=height * bytes_per_line, offset=offset)
    pixels = rows.reshape(height, bytes_per_line)[:, :width * 4].reshape(height, width, 4)
    return pixels[..., :3].copy()  # little-endian 0x00RRGGBB: bytes B, G, R, unused


class _ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
                ("message_type", ctypes.c_ulong), ("format", ctypes.c_int),
                ("data", ctypes.c_long * 5)]


class _XEvent(ctypes.Union):
    _fields_ = [("xclient", _ClientMessage), ("pad", ctypes.c_long * 24)]


def _xlib():
    """libX11 through ctypes, with the signatures the functions below use."""
    x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
    pointer, window, atom = ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong
    signatures = {
        "XOpenDisplay": (pointer, [ctypes.c_char_p]),
        "XInternAtom": (atom, [pointer, ctypes.c_char_p, ctypes.c_int]),
        "XSendEvent": (ctypes.c_int, [pointer, window, ctypes.c_int, ctypes.c_long,
                                      ctypes.POINTER(_XEvent)]),
        "XFlush": (ctypes.c_int, [pointer]),
        "XCloseDisplay": (ctypes.c_int, [pointer]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(x11, name)
        function.restype, function.argtypes = restype, argtypes
    return x11


def send_wm_delete_window(display_name: str, window: int) -> None:
    """Send ``window`` the ICCCM ``WM_PROTOCOLS``/``WM_DELETE_WINDOW`` client message."""
    x11 = _xlib()
    display = x11.XOpenDisplay(display_name.encode())
    if not display:
        raise RuntimeError(f"cannot open X display {display_name}")
    try:
        event = _XEvent()
        event.xclient.type = 33  # ClientMessage
        event.xclient.window = window
        event.xclient.message_type = x11.XInternAtom(display, b"WM_PROTOCOLS", 0)
        event.xclient.format = 32
        event.xclient.data[0] = x11.XInternAtom(display, b"WM_DELETE_WINDOW", 0)
        event.xclient.data[1] = 0  # CurrentTime
        if not x11.XSendEvent(display, window, 0, 0, ctypes.byref(event)):
            raise RuntimeError(f"XSendEvent to window {window} failed")
        x11.XFlush(display)
    finally:
        x11.XCloseDisplay(display)
