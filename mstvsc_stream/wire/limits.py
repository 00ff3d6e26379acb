"""What a GOP may claim, shared by both ends: a sender refuses settings beyond these limits before it starts,
and a receiver drops descriptors beyond them (``descriptor_limit``, ``frame_size``).

The wire format itself allows 65,535 segments and 4 GiB of codes per GOP; nothing real comes close (the
defaults give 16 to 60 segments up to 1080p, and the paper's N_p is at most a few hundred), while a
receiver must not let a stranger's descriptor make it set up that much.
"""

from __future__ import annotations

from mstvsc_stream.wire.pack3 import packed_size

MAX_GOP_BYTES = 1 << 20  # packed codes per GOP: 1080p needs 73,440, 4K about 293,760
MAX_SEGMENTS_PER_GOP = 4096
MAX_FRAME_PIXELS = 3840 * 2160  # 4K UHD


def frame_size_problem(width: int, height: int) -> str:
    """Why frames of this size are larger than every receiver accepts ("" when they are not)."""
    if width * height > MAX_FRAME_PIXELS:
        return f"{width}x{height} frames exceed the limit of {MAX_FRAME_PIXELS} pixels (3840x2160)"
    return ""


def stream_limit_problem(width: int, height: int, n_elements: int, n_segments: int) -> str:
    """Why a stream of this geometry exceeds the shared limits ("" when it does not)."""
    if problem := frame_size_problem(width, height):
        return problem
    if packed_size(n_elements) > MAX_GOP_BYTES:
        return f"{packed_size(n_elements)} bytes of codes per GOP exceed the limit of {MAX_GOP_BYTES}"
    if n_segments > MAX_SEGMENTS_PER_GOP:
        return f"{n_segments} segments per GOP exceed the limit of {MAX_SEGMENTS_PER_GOP}; use larger payloads"
    return ""
