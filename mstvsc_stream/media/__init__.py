"""Frames in and out: capture (camera, file, URL), display, recording and quality metrics.

This layer knows frames, not the network. Frames are uint8 RGB ``[H, W, 3]`` everywhere; BGR exists only
inside the OpenCV calls at the edge. Sizes are ``(width, height)``. Problems a user can fix raise
:class:`MediaError` with a one-line message.
"""

from mstvsc_stream.media.camera import CameraSource
from mstvsc_stream.media.capture import CapturedFrame, CaptureThread
from mstvsc_stream.media.display import Display
from mstvsc_stream.media.errors import MediaError
from mstvsc_stream.media.quality import ms_ssim, psnr
from mstvsc_stream.media.recorder import Recorder
from mstvsc_stream.media.sample import sample_clip_path
from mstvsc_stream.media.source import FileSource, FrameSource, Size, read_frames

__all__ = [
    "CameraSource",
    "CaptureThread",
    "CapturedFrame",
    "Display",
    "FileSource",
    "FrameSource",
    "MediaError",
    "Recorder",
    "Size",
    "ms_ssim",
    "psnr",
    "read_frames",
    "sample_clip_path",
]
