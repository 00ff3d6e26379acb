"""The one error type of the media layer.

Capture, recording and display fail for reasons a user can fix (no camera, wrong path, no screen), so
they raise :class:`MediaError` with a one-line message that the CLI prints as is, instead of the
library's own multi-line exceptions or a traceback.
"""

from __future__ import annotations


class MediaError(Exception):
    """A camera, file, URL, recording or display problem, described in one line."""


def one_line(error: BaseException) -> str:
    """The reason an OS or FFmpeg error gives, on one line and without repeating the path.

    FFmpeg and OSError messages look like ``[Errno 2] No such file or directory: '/x.mp4'``; their
    ``strerror`` is the part worth showing next to a path the caller names itself.
    """
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return " ".join(str(reason).split())
