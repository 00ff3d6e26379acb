"""Where the bundled sample clip lives once the package is installed."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from mstvsc_stream.media.errors import MediaError

SAMPLE_CLIP_NAME = "asl-again.mkv"
SAMPLE_CLIP_FRAMES = 77  # 640x480 at 30 fps: 2.6 s
SAMPLE_INPUT = "sample"  # what --input takes for it


def sample_clip_path() -> Path:
    """The path of ``samples/asl-again.mkv``: the demo's default input and the tests' real footage.

    Resolved through importlib.resources so it works from a checkout and from an installed wheel alike.
    """
    resource = files("mstvsc_stream.media") / "samples" / SAMPLE_CLIP_NAME
    if not isinstance(resource, Path) or not resource.is_file():
        raise MediaError(f"the sample clip {SAMPLE_CLIP_NAME} is missing from this installation of mstvsc-stream")
    return resource
