"""The receiver report: what a unicast receiver tells its sender every 100-250 ms (the closed loop).

Sent back to the sender's source address under segment label ``0xFFFE`` (GOP number 0), so a receiver
that gets one counts it invalid like any unknown label. Fixed big-endian layout, version 1::

    header (GOP u8 = 0, label u16 = 0xFFFE) | version u8 | flags u8 | session_id u64 | sequence u32 |
    newest_gop u8 | newest_label u16 | held_us u32 | spread_us u32 | jitter_us u32 | backlog u8 |
    first_gop u8 | gop_count u8 | received u16 x gop_count

``session_id`` is the sender session reported on; ``sequence`` counts this receiver's reports. The newest
segment datagram received (GOP number, label) and ``held_us``, how long the receiver held it before this
report left, let the sender compute the round-trip time from its own send time of that datagram: no clocks
are compared. ``spread_us`` is the first-to-last arrival time of the newest finished GOP, ``jitter_us`` the
RFC 3550-style interarrival jitter of GOP first arrivals against the stream's GOP interval, ``backlog`` the
GOPs waiting for the decoder. ``received[i]`` is how many distinct segment labels arrived of GOP number
``(first_gop + i) mod 256``: the sender compares it with what it actually sent, so withheld segments are
never read as loss.

Sealed streams seal reports too, under a key of their own (:func:`report_key`, HKDF from the stream key)
and with a receiver-chosen random id in the nonce's session field, so a report's (key, nonce) pair can
never be a segment's, nor another receiver's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mstvsc_stream.wire.errors import WireError
from mstvsc_stream.wire.header import HEADER_SIZE, SegmentHeader

REPORT_LABEL = 0xFFFE
REPORT_VERSION = 1
MAX_REPORTED_GOPS = 32  # 4 s of GOPs at 7.5 GOPs/s: more than any round trip the controller acts on
_FIXED = struct.Struct(">BBQIBHIIIBBB")
_HEADER = SegmentHeader(0, REPORT_LABEL).pack()
REPORT_FIXED_SIZE = HEADER_SIZE + _FIXED.size
REPORT_MAX_SIZE = REPORT_FIXED_SIZE + 2 * MAX_REPORTED_GOPS
_U32 = (1 << 32) - 1
_REPORT_KEY_INFO = b"mstvsc-stream receiver reports v1"


def report_key(stream_key: bytes) -> bytes:
    """The key reports are sealed under: HKDF-SHA256 of the stream key, one key per direction."""
    return HKDF(hashes.SHA256(), 32, salt=None, info=_REPORT_KEY_INFO).derive(stream_key)


def is_report(datagram: bytes | bytearray | memoryview) -> bool:
    """True for a datagram under the report label (plain or sealed: the header is in clear in both)."""
    return len(datagram) >= HEADER_SIZE and datagram[1] == REPORT_LABEL >> 8 and datagram[2] == REPORT_LABEL & 0xFF


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """One report; :meth:`datagram` and :meth:`parse` are exact inverses."""

    session_id: int
    sequence: int
    newest_gop: int
    newest_label: int
    held_us: int
    spread_us: int
    jitter_us: int
    backlog: int
    first_gop: int
    received: tuple[int, ...]
    flags: int = 0

    def __post_init__(self) -> None:
        for name, limit in (("session_id", (1 << 64) - 1), ("sequence", _U32), ("held_us", _U32),
                            ("spread_us", _U32), ("jitter_us", _U32), ("newest_gop", 0xFF),
                            ("newest_label", REPORT_LABEL - 1), ("backlog", 0xFF), ("first_gop", 0xFF),
                            ("flags", 0xFF)):  # fmt: skip
            value = getattr(self, name)
            if not 0 <= value <= limit:
                raise ValueError(f"report {name} must be 0..{limit}, got {value}")
        if len(self.received) > MAX_REPORTED_GOPS or not all(0 <= n <= REPORT_LABEL for n in self.received):
            raise ValueError(f"a report covers at most {MAX_REPORTED_GOPS} GOPs of at most 65534 labels each")

    def datagram(self) -> bytes:
        """The whole datagram: header, fixed fields, one u16 per reported GOP."""
        fixed = _FIXED.pack(
            REPORT_VERSION, self.flags, self.session_id, self.sequence, self.newest_gop, self.newest_label,
            self.held_us, self.spread_us, self.jitter_us, self.backlog, self.first_gop, len(self.received),
        )  # fmt: skip
        return _HEADER + fixed + struct.pack(f">{len(self.received)}H", *self.received)

    @classmethod
    def parse(cls, datagram: bytes | bytearray | memoryview) -> ReceiverReport:
        """Read a plain report datagram; raises WireError (``short``, ``not_report``, ``version``, ``size``,
        ``field``) for anything else."""
        if len(datagram) < REPORT_FIXED_SIZE:
            raise WireError("short", f"report of {len(datagram)} bytes, at least {REPORT_FIXED_SIZE}")
        if not is_report(datagram):
            raise WireError("not_report", "datagram is not under the report label")
        (version, flags, session_id, sequence, newest_gop, newest_label, held_us, spread_us, jitter_us, backlog,
         first_gop, count) = _FIXED.unpack_from(datagram, HEADER_SIZE)  # fmt: skip
        if version != REPORT_VERSION:
            raise WireError("version", f"report version {version}, this build reads {REPORT_VERSION}")
        if count > MAX_REPORTED_GOPS or len(datagram) != REPORT_FIXED_SIZE + 2 * count:
            raise WireError("size", f"report of {len(datagram)} bytes does not hold {count} GOPs")
        received = struct.unpack_from(f">{count}H", datagram, REPORT_FIXED_SIZE)
        try:
            return cls(session_id, sequence, newest_gop, newest_label, held_us, spread_us, jitter_us, backlog,
                       first_gop, received, flags)  # fmt: skip
        except ValueError as err:
            raise WireError("field", str(err)) from None
