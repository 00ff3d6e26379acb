"""Writes RGB frames with PyAV to a video file, to standard output or to a URL (FFmpeg's muxers).

Where frames go is a :class:`RecordTarget`: a file (container and codec from the extension), ``-`` for
standard output (FFmpeg's convention: NUT with raw video unless another stream format is named), or a URL
such as ``udp://host:port?pkt_size=1316`` (MPEG-TS), ``srt://``, ``rtsp://`` (publish) or ``rtmp://``
(FLV), which gets live H.264.
"""

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


# Timestamps count in the 90 kHz clock of MPEG and RTP video: fine enough for any frame rate.
TIME_BASE = Fraction(1, 90_000)

# H.264 at crf 18 is visually lossless and plays everywhere; "veryfast" keeps a receiver recording live
# video on a laptop core.
_H264 = Encoding("libx264", "yuv420p", {"crf": "18", "preset": "veryfast"})
# FFV1 on bgr0 stores the RGB samples themselves (no YUV conversion, no chroma subsampling), so what is
# read back is bit for bit what was written: the format for evaluation material.
_FFV1 = Encoding("ffv1", "bgr0")
# Re-published live: no B-frames or lookahead (zerolatency), a keyframe a second so a viewer joining
# late (or after a lost packet) gets a picture within a second.
_LIVE_H264 = Encoding("libx264", "yuv420p", {"crf": "23", "preset": "veryfast", "tune": "zerolatency", "g": "30"})

ENCODINGS: dict[str, Encoding] = {
    ".mp4": _H264,
    ".mov": _H264,
    ".mkv": _FFV1,
    # FFV1 in AVI, as FFmpeg writes it: lossless, plays in ffplay, VLC and mpv (not in browsers)
    ".avi": _FFV1,
    ".webm": Encoding("libvpx-vp9", "yuv420p", {"crf": "24", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
}

# --record-format: a name for users -> (FFmpeg muxer, encoding)
FORMATS: dict[str, tuple[str, Encoding]] = {
    "nut": ("nut", Encoding("rawvideo", "rgb24")),  # raw RGB: exact, and what `ffmpeg -i -` reads best
    "y4m": ("yuv4mpegpipe", Encoding("wrapped_avframe", "yuv420p")),  # raw YUV 4:2:0, for y4m-only tools
    "matroska": ("matroska", _FFV1),  # lossless and compact, for GStreamer's matroskademux
    "mpegts": ("mpegts", _LIVE_H264),
    "flv": ("flv", _LIVE_H264),
    "rtsp": ("rtsp", _LIVE_H264),
}
STDOUT = "-"
STDOUT_FORMAT = "nut"
# the container a URL scheme gets unless --record-format names one
URL_FORMATS = {"udp": "mpegts", "srt": "mpegts", "tcp": "mpegts", "rist": "mpegts", "rtsp": "rtsp",
               "rtsps": "rtsp", "rtmp": "flv", "rtmps": "flv"}


@dataclass(frozen=True)
class RecordTarget:
    """Where a recording goes and how it is encoded; made by :func:`record_target`."""

    location: str  # what FFmpeg opens: a path, "pipe:1" or a URL
    muxer: str | None  # FFmpeg's container format; None: from the file's extension
    encoding: Encoding
    name: str  # for messages

    @property
    def is_file(self) -> bool:
        """A regular file: every frame must reach it (a pipe or a URL is live and may drop frames)."""
        return self.location != "pipe:1" and "://" not in self.location


def record_target(text: str | os.PathLike[str], record_format: str | None = None) -> RecordTarget:
    """Parses ``--record`` (and ``--record-format``); ValueError with a one-line reason when unusable."""
    text = os.fspath(text)
    if record_format is not None and record_format not in FORMATS:
        raise ValueError(f"unknown record format {record_format!r} (choose {', '.join(FORMATS)})")
    if text == STDOUT:
        muxer, encoding = FORMATS[record_format or STDOUT_FORMAT]
        return RecordTarget("pipe:1", muxer, encoding, "standard output")
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        name = record_format or URL_FORMATS.get(scheme)
        if name is None:
            raise ValueError(f"cannot record to {text}: no default container for {scheme}:// "
                             f"(name one with --record-format {'|'.join(FORMATS)})")
        return RecordTarget(text, *FORMATS[name], text)
    if record_format is not None:
        return RecordTarget(text, *FORMATS[record_format], text)
    encoding = ENCODINGS.get(Path(text).suffix.lower())
    if encoding is None:
        raise ValueError(f"cannot record to {text!r}: use one of {', '.join(ENCODINGS)} (.mp4 H.264, .mkv "
                         f"lossless FFV1), - for standard output, or a URL")
    return RecordTarget(text, None, encoding, text)


class OutputClosed(MediaError):
    """The reader of a pipe went away (``ffplay`` closed, ``head`` had enough): the end of the output,
    not a fault."""


@contextmanager
def _errors_as_media_error(name: str) -> Iterator[None]:
    """Turns an FFmpeg or OS error while writing (bad folder, disk full, refused URL) into a one-line
    MediaError; a closed pipe into :class:`OutputClosed`."""
    try:
        yield
    except BrokenPipeError as error:
        raise OutputClosed(f"{name} was closed by its reader") from error
    except (av.FFmpegError, OSError) as error:
        raise MediaError(f"cannot record to {name}: {one_line(error)}") from error


class Recorder:
    """Records frames of ``size`` ``(width, height)`` at ``fps`` to ``target``; a context manager.

    ``target`` is a :class:`RecordTarget` or a file path (container from the extension, codec from
    :data:`ENCODINGS`: ``.mp4``/``.mov`` H.264 (yuv420p, crf 18), ``.mkv``/``.avi`` lossless FFV1,
    ``.webm`` VP9). Frames get consecutive timestamps at ``fps``, or the times given to :meth:`write`
    (a stream whose rate changed midway, e.g. a sender that halved its frame rate for a while, then
    plays at its real speed). :meth:`close` (also run when the
    ``with`` block ends by an exception) flushes the encoder and writes the trailer, so the file is
    playable whatever happened. The output is opened in the constructor (the file created, the URL
    connected), so an unwritable path or an unreachable server fails at once with a :class:`MediaError`.
    """

    def __init__(self, target: RecordTarget | str | os.PathLike[str], fps: float, size: Size) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if not isinstance(target, RecordTarget):
            try:
                target = record_target(target)
            except ValueError as error:
                raise MediaError(str(error)) from None
        self.target = target
        self.size = check_size(size)
        encoding = target.encoding
        width, height = self.size
        if encoding.pixel_format == "yuv420p" and (width % 2 or height % 2):
            raise MediaError(f"cannot record {width}x{height} to {target.name}: {encoding.codec} needs even sizes")
        self.frames_written = 0
        with _errors_as_media_error(target.name):
            container = av.open(target.location, "w", format=target.muxer)
            try:
                stream = container.add_stream(
                    encoding.codec, rate=Fraction(fps).limit_denominator(1001), options=encoding.options
                )
                stream.width, stream.height = self.size
                stream.pix_fmt = encoding.pixel_format
                stream.codec_context.time_base = TIME_BASE
                container.start_encoding()
            except BaseException:
                container.close()
                raise
        self._container: OutputContainer | None = container
        self._stream = stream
        self._frame_ticks = max(1, round(1 / (fps * TIME_BASE)))
        self._last_pts: int | None = None
        self._origin: float | None = None  # the time given with the first timed frame, minus its pts

    def write(self, frame: np.ndarray, at: float | None = None) -> None:
        """Appends one uint8 RGB ``[H, W, 3]`` frame of the recorder's size, shown at ``at`` seconds (any
        clock, e.g. its capture time) or, without a time, one frame period after the previous frame. A
        time that goes backwards (a sender with another clock took over) restarts the count one frame
        period after the previous frame; gaps forward are kept (the picture froze that long)."""
        width, height = self.size
        if frame.dtype != np.uint8 or frame.shape != (height, width, 3):
            raise ValueError(f"expected uint8 frame of shape {(height, width, 3)}, got {frame.dtype} {frame.shape}")
        if self._container is None:
            raise ValueError(f"recorder for {self.target.name} is closed")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        following = 0 if self._last_pts is None else self._last_pts + self._frame_ticks
        if at is None:
            pts = following
        else:
            if self._origin is None:
                self._origin = at - following * TIME_BASE
            pts = round((at - self._origin) / TIME_BASE)
            if pts <= following - self._frame_ticks:  # time went backwards (another clock): continue from here
                self._origin, pts = at - following * TIME_BASE, following
        video_frame.pts = self._last_pts = pts
        video_frame.time_base = TIME_BASE
        with _errors_as_media_error(self.target.name):
            self._container.mux(self._stream.encode(video_frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flushes the encoder and finalises the file; later calls do nothing."""
        if self._container is None:
            return
        container, self._container = self._container, None
        with _errors_as_media_error(self.target.name):
            try:
                container.mux(self._stream.encode(None))
            finally:
                container.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
