"""Writes RGB frames to a video file with PyAV, choosing the codec from the file's extension."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.container import OutputContainer

from mstvsc_stream.media.errors import MediaError, one_line
from mstvsc_stream.media.source import Size, check_size


@dataclass(frozen=True)
class Encoding:
    """How frames are stored: an FFmpeg encoder, the pixel format it gets, and its options."""

    codec: str
    pixel_format: str
    options: dict[str, str] = field(default_factory=dict)


# H.264 at crf 18 is visually lossless and plays everywhere; "veryfast" keeps a receiver recording live
# video on a laptop core.
_H264 = Encoding("libx264", "yuv420p", {"crf": "18", "preset": "veryfast"})

ENCODINGS: dict[str, Encoding] = {
    ".mp4": _H264,
    ".mov": _H264,
    # FFV1 on bgr0 stores the RGB samples themselves (no YUV conversion, no chroma subsampling), so what
    # is read back is bit for bit what was written: the format for evaluation material.
    ".mkv": Encoding("ffv1", "bgr0"),
    ".avi": Encoding("ffv1", "bgr0"),
    ".webm": Encoding("libvpx-vp9", "yuv420p", {"crf": "24", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
}


@contextmanager
def _errors_as_media_error(path: Path) -> Iterator[None]:
    """Turns an FFmpeg or OS error while writing (bad folder, disk full) into a one-line MediaError."""
    try:
        yield
    except (av.FFmpegError, OSError) as error:
        raise MediaError(f"cannot record to {path}: {one_line(error)}") from error


class Recorder:
    """Records frames of ``size`` ``(width, height)`` at ``fps`` to ``path``; a context manager.

    The container comes from the extension and the codec from :data:`ENCODINGS`: ``.mp4``/``.mov``
    H.264 (yuv420p, crf 18), ``.mkv``/``.avi`` lossless FFV1, ``.webm`` VP9. Frames get consecutive
    timestamps at ``fps``. :meth:`close` (also run when the ``with`` block ends by an exception) flushes
    the encoder and writes the trailer, so the file is playable whatever happened. The file is created in
    the constructor, so an unwritable path fails at once with a :class:`MediaError`.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: Size) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.size = check_size(size)
        encoding = ENCODINGS.get(self.path.suffix.lower())
        if encoding is None:
            known = ", ".join(ENCODINGS)
            raise MediaError(f"cannot record to {self.path}: unknown extension (use one of {known})")
        width, height = self.size
        if encoding.pixel_format == "yuv420p" and (width % 2 or height % 2):
            raise MediaError(f"cannot record {width}x{height} to {self.path}: {encoding.codec} needs even sizes")
        self.frames_written = 0
        with _errors_as_media_error(self.path):
            container = av.open(str(self.path), "w")
            try:
                stream = container.add_stream(
                    encoding.codec, rate=Fraction(fps).limit_denominator(1001), options=encoding.options
                )
                stream.width, stream.height = self.size
                stream.pix_fmt = encoding.pixel_format
                container.start_encoding()
            except BaseException:
                container.close()
                raise
        self._container: OutputContainer | None = container
        self._stream = stream

    def write(self, frame: np.ndarray) -> None:
        """Appends one uint8 RGB ``[H, W, 3]`` frame of the recorder's size."""
        width, height = self.size
        if frame.dtype != np.uint8 or frame.shape != (height, width, 3):
            raise ValueError(f"expected uint8 frame of shape {(height, width, 3)}, got {frame.dtype} {frame.shape}")
        if self._container is None:
            raise ValueError(f"recorder for {self.path} is closed")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        video_frame.pts = self.frames_written
        with _errors_as_media_error(self.path):
            self._container.mux(self._stream.encode(video_frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flushes the encoder and finalises the file; later calls do nothing."""
        if self._container is None:
            return
        container, self._container = self._container, None
        with _errors_as_media_error(self.path):
            try:
                container.mux(self._stream.encode(None))
            finally:
                container.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
