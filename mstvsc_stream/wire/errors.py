"""The one exception type for bad bytes from the network.

A receiver must never crash on what a socket hands it. Every parse or validation failure raises
:class:`WireError` carrying a short machine-readable ``reason`` so the caller can drop the datagram and
bump a per-reason counter, and a one-line human message for logs.
"""

from __future__ import annotations


class WireError(ValueError):
    """Malformed or inconsistent wire data; ``reason`` is a stable key for drop counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
