"""An OpenCV window for RGB frames, the receiver's screen."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from mstvsc_stream.media.errors import MediaError

_QUIT_KEYS = {ord("q"), ord("Q"), 27}  # 27: Esc


def _require_display() -> None:
    """Fails with a MediaError where there is no screen to draw on.

    On Linux OpenCV's Qt backend aborts the whole process when it cannot reach a display server, so
    this is checked before the first window is made, not caught after.
    """
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise MediaError("no display available (neither DISPLAY nor WAYLAND_DISPLAY is set); record to a file instead")


class Display:
    """A resizable window titled ``title`` that shows uint8 RGB ``[H, W, 3]`` frames.

    :attr:`closed` turns True once the user presses q or Esc or closes the window, which the receiver
    takes as the signal to stop. Call :meth:`show` from the main thread (a GUI rule on macOS).
    """

    def __init__(self, title: str = "mstvsc") -> None:
        _require_display()
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
        except cv2.error as error:
            raise MediaError(f"cannot open a window: {' '.join(str(error.err).split())}") from error
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def show(self, frame: np.ndarray) -> None:
        """Draws ``frame`` and handles pending window events (keys, the close button)."""
        if self._closed:
            return
        cv2.imshow(self.title, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        # waitKey also runs the GUI event loop: without it the window never repaints.
        key = cv2.waitKey(1) & 0xFF
        if key in _QUIT_KEYS or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            cv2.destroyWindow(self.title)
        except cv2.error:
            pass  # the user already closed it

    def __enter__(self) -> Display:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
