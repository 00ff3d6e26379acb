"""Frame sources: anything that yields RGB frames at a known rate and size, and video files in particular.

Every frame inside the project is uint8 RGB ``[H, W, 3]``; sizes are ``(width, height)`` as on the
command line (``640x480``). :class:`FileSource` decodes with PyAV, which reads every container and codec
FFmpeg knows, including network URLs (``rtsp://``, ``http://``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

import av
import numpy as np
from av.container import InputContainer

from mstvsc_stream.media.errors import MediaError, one_line

Size = tuple[int, int]
"""``(width, height)`` in pixels."""

# Lanczos in swscale widens its kernel when shrinking, so it anti-aliases downscales and stays sharp on
# upscales: one good filter for both directions.
RESIZE_FILTER = "LANCZOS"
# A stalled network stream or server raises after this long instead of hanging the sender.
NETWORK_TIMEOUT_S = 10.0
# FFmpeg's name for standard input ("-" on the command line, as in FFmpeg's own)
STDIN = "-"
# How far, in source frame periods, timestamps may be off their ideal grid when retiming.
TIMESTAMP_SLACK = 0.1


def _reason(error: BaseException) -> str:
    """Why FFmpeg failed, in one line; its 'Immediate exit requested' means NETWORK_TIMEOUT_S ran out."""
    if isinstance(error, av.ExitError):
        return f"no answer for {NETWORK_TIMEOUT_S:g} s (timed out)"
    return one_line(error)


@runtime_checkable
class FrameSource(Protocol):
    """Frames for the sender: iterate to get uint8 RGB ``[H, W, 3]`` arrays of ``size`` at ``fps``.

    Iteration ends at the end of the input; a source that fails mid-way raises :class:`MediaError`.
    ``close()`` releases the device or file and may be called more than once.
    """

    fps: float
    size: Size

    def __iter__(self) -> Iterator[np.ndarray]: ...

    def close(self) -> None: ...


def check_size(size: Size) -> Size:
    """``size`` as a pair of ints, rejecting sizes no encoder or window can take."""
    width, height = size
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    return int(width), int(height)


class FileSource:
    """Decodes a video file or URL into RGB frames, optionally resized, retimed, limited and looped.

    * ``size``: resize every frame to ``(width, height)`` with a Lanczos filter; default: the stream's size.
    * ``fps``: resample the stream in time to this rate, keeping the content's speed: each output frame
      is the decoded frame nearest to its time slot, so frames are dropped when ``fps`` is below the
      file's rate and repeated when above. Paced playback (:class:`CaptureThread` with ``realtime=True``)
      then plays the clip at natural speed at the new rate. Default: the file's own rate, frames untouched.
    * ``frames``: stop after this many frames in total (across loops); default: no limit.
    * ``loop``: start again from the beginning at the end of the input (reopening it, so URLs loop too).

    ``"-"`` reads standard input: any container FFmpeg can read without seeking (NUT, Matroska, MPEG-TS,
    y4m, ...), e.g. from ``ffmpeg ... -f nut -`` or GStreamer's ``matroskamux ! fdsink``. It is read once
    (no ``loop``) and may stay quiet as long as its producer likes (no network timeout).

    The input is opened in the constructor so a missing file or dead URL fails at once with a
    :class:`MediaError`, not at the first frame.
    """

    def __init__(
        self,
        path_or_url: str | os.PathLike[str],
        size: Size | None = None,
        fps: float | None = None,
        frames: int | None = None,
        loop: bool = False,
    ) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if frames is not None and frames < 0:
            raise ValueError(f"frames must be >= 0, got {frames}")
        requested_size = check_size(size) if size is not None else None
        self.location = os.fspath(path_or_url)
        self.name = "standard input" if self.location == STDIN else self.location
        if loop and self.location == STDIN:
            raise MediaError("standard input cannot be looped: it can only be read once")
        self.frames = frames
        self.loop = loop
        self._container: InputContainer | None = self._open()
        stream = self._container.streams.video[0]
        rate = stream.guessed_rate or stream.average_rate or fps
        if rate is None:
            self.close()
            raise MediaError(f"{self.name}: the video has no frame rate; give one with fps")
        self.source_fps = float(rate)
        self.fps = float(fps) if fps is not None else self.source_fps
        self._retime = fps is not None
        self.size = requested_size or (stream.width, stream.height)

    def __iter__(self) -> Iterator[np.ndarray]:
        remaining = self.frames
        while remaining is None or remaining > 0:
            decoded = 0
            container = self._container or self._open()
            self._container = None
            with container:
                for image in self._images(container):
                    yield image
                    decoded += 1
                    if remaining is not None:
                        remaining -= 1
                        if remaining == 0:
                            return
            if decoded == 0:
                raise MediaError(f"{self.name}: no video frame could be decoded")
            if not self.loop:
                return

    def close(self) -> None:
        """Closes the input opened by the constructor if iteration never took it over."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self) -> InputContainer:
        try:
            if self.location == STDIN:
                container = av.open("pipe:0")
            else:
                container = av.open(self.location, timeout=NETWORK_TIMEOUT_S)
        except (av.FFmpegError, OSError, ValueError) as error:
            raise MediaError(f"cannot open video {self.name}: {_reason(error)}") from error
        if not isinstance(container, InputContainer) or not container.streams.video:
            container.close()
            raise MediaError(f"{self.name} has no video stream")
        return container

    def _images(self, container: InputContainer) -> Iterator[np.ndarray]:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = self.size
        try:
            decoded = container.decode(stream)
            for frame in self._retimed(decoded) if self._retime else decoded:
                yield frame.to_ndarray(width=width, height=height, format="rgb24", interpolation=RESIZE_FILTER)
        except av.FFmpegError as error:
            raise MediaError(f"{self.name}: decoding failed: {_reason(error)}") from error

    def _retimed(self, frames: Iterable[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """Yields, for each slot ``k / fps`` of the output, the decoded frame nearest to it in time.

        A frame covers the slots up to just under half a source period past its own timestamp, which
        picks the nearest frame without looking ahead; the slack makes a slot exactly between two frames
        go to the later one even when the container rounded the timestamps (to milliseconds in Matroska).
        Frames without timestamps are taken as evenly spaced.
        """
        reach = (0.5 - TIMESTAMP_SLACK) / self.source_fps
        start: float | None = None
        slot = 0
        for index, frame in enumerate(frames):
            time_s = frame.time if frame.time is not None else index / self.source_fps
            start = time_s if start is None else start
            while slot / self.fps < time_s - start + reach:
                yield frame
                slot += 1


def read_frames(path: str | os.PathLike[str], n: int | None = None, size: Size | None = None) -> np.ndarray:
    """The first ``n`` frames of a video (all if ``n`` is None) as one uint8 RGB array ``[N, H, W, 3]``.

    For tests and offline evaluation, where a clip fits in memory and is compared frame by frame.
    """
    with FileSource(path, size=size, frames=n) as source:
        images = list(source)
    if not images:
        raise MediaError(f"{os.fspath(path)}: no frames read")
    return np.stack(images)
