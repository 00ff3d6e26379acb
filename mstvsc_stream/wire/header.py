"""The 3-byte application header in front of every datagram (paper, section II-B).

Byte 0 is the GOP number (counter mod 256); bytes 1-2 the segment label, big-endian, i.e. the segment's
position in the GOP's packed, interleaved data. Label ``0xFFFF`` marks a session-descriptor datagram.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mstvsc_stream.wire.errors import WireError

_HEADER = struct.Struct(">BH")
HEADER_SIZE = _HEADER.size
DESCRIPTOR_LABEL = 0xFFFF
MAX_SEGMENT_LABEL = DESCRIPTOR_LABEL - 1


@dataclass(frozen=True, slots=True)
class SegmentHeader:
    """GOP number and segment label of one datagram."""

    gop: int
    label: int

    def __post_init__(self) -> None:
        if not 0 <= self.gop <= 0xFF:
            raise ValueError(f"GOP number must be 0..255, got {self.gop}")
        if not 0 <= self.label <= DESCRIPTOR_LABEL:
            raise ValueError(f"segment label must be 0..65535, got {self.label}")

    @property
    def is_descriptor(self) -> bool:
        return self.label == DESCRIPTOR_LABEL

    def pack(self, payload: bytes = b"") -> bytes:
        """The header bytes, followed by ``payload`` if given (a whole datagram)."""
        return _HEADER.pack(self.gop, self.label) + payload

    @classmethod
    def parse(cls, datagram: bytes | bytearray | memoryview) -> SegmentHeader:
        """Read the header from the start of a datagram; the payload is ``datagram[HEADER_SIZE:]``."""
        if len(datagram) < HEADER_SIZE:
            raise WireError("short", f"datagram of {len(datagram)} bytes has no {HEADER_SIZE}-byte header")
        gop, label = _HEADER.unpack_from(datagram)
        return cls(gop, label)


def is_descriptor_datagram(datagram: bytes | bytearray | memoryview) -> bool:
    """Whether a datagram carries the descriptor label, without building a header (per-datagram filters)."""
    return len(datagram) >= HEADER_SIZE and _HEADER.unpack_from(datagram)[1] == DESCRIPTOR_LABEL
