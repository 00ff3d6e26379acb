"""The session descriptor: everything a receiver must know to rebuild a GOP, in one small datagram.

Sent under segment label ``0xFFFF`` several times per GOP, because at high loss most copies are lost and a
receiver must be able to join mid-stream. Fixed big-endian layout, version 1 (see docs/wire-format.md)::

    version u8 | flags u8 | session_id u64 | gop_counter u32 | capture_time_us u64 | width u16 |
    height u16 | fps_milli u32 | gop_length u8 | n_elements u32 | payload_size u16 | n_segments u16 |
    seed_fingerprint 4s | model_hash 8s | model_name_len u8 | model_name (UTF-8, model_name_len bytes)
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass, replace

from mstvsc_stream.wire.errors import WireError
from mstvsc_stream.wire.header import DESCRIPTOR_LABEL, HEADER_SIZE, SegmentHeader
from mstvsc_stream.wire.interleave import seed_fingerprint
from mstvsc_stream.wire.pack3 import GROUP_BYTES, packed_size
from mstvsc_stream.wire.segment import MAX_PAYLOAD, GopPacketizer, segment_count
from mstvsc_stream.wire.serial import gop_number

PROTOCOL_VERSION = 1
FLAG_END_OF_INPUT = 0x01
MODEL_NAME_MAX_BYTES = 64
MODEL_HASH_BYTES = 8
# Copies a sender should send per GOP: at 90 % loss, 3 copies still reach the receiver for ~27 % of GOPs,
# and the receiver infers the rest from the last one it saw.
DESCRIPTOR_COPIES = 3

_FIXED = struct.Struct(">BBQIQHHIBIHH4s8sB")
DESCRIPTOR_FIXED_SIZE = _FIXED.size


def new_session_id() -> int:
    """A random 64-bit session id, drawn once per sender start."""
    return secrets.randbits(64)


def split_model_id(model_id: str) -> tuple[str, bytes]:
    """Split a codec ``model_id`` ("name@16 hex digits") into the descriptor's name and 8-byte hash."""
    name, sep, digest = model_id.rpartition("@")
    try:
        weights_hash = bytes.fromhex(digest)
    except ValueError:
        weights_hash = b""
    if not sep or len(weights_hash) != MODEL_HASH_BYTES:
        raise ValueError(f"model id {model_id!r} is not 'name@<16 hex digits>'")
    return name, weights_hash


@dataclass(frozen=True, slots=True)
class SessionDescriptor:
    """One GOP's view of the stream: fixed per session except the counter, capture time and flags."""

    session_id: int
    gop_counter: int
    capture_time_us: int
    width: int
    height: int
    fps_milli: int
    gop_length: int
    n_elements: int
    payload_size: int
    n_segments: int
    seed_fingerprint: bytes
    model_name: str
    model_hash: bytes
    flags: int = 0

    def __post_init__(self) -> None:
        name = self.model_name.encode("utf-8")
        if len(name) > MODEL_NAME_MAX_BYTES:
            raise WireError("model_name", f"model name is {len(name)} bytes, at most {MODEL_NAME_MAX_BYTES}")
        try:
            self._fixed_bytes()
        except struct.error as err:
            raise WireError("descriptor_field", f"descriptor field out of range ({err})") from None
        problem = self._inconsistency()
        if problem:
            raise WireError("descriptor_inconsistent", problem)

    def _inconsistency(self) -> str:
        if len(self.seed_fingerprint) != 4 or len(self.model_hash) != MODEL_HASH_BYTES:
            return "seed fingerprint must be 4 bytes and model hash 8 bytes"
        if min(self.width, self.height, self.fps_milli, self.gop_length, self.n_elements) < 1:
            return "width, height, fps, GOP length and element count must be positive"
        if self.payload_size < GROUP_BYTES or self.payload_size % GROUP_BYTES or self.payload_size > MAX_PAYLOAD:
            return f"payload size {self.payload_size} is not a multiple of 3 in 3..{MAX_PAYLOAD}"
        expected = segment_count(self.n_elements, self.payload_size)
        if self.n_segments != expected:
            return f"{self.n_segments} segments, {self.n_elements} elements at {self.payload_size} B need {expected}"
        return ""

    def _fixed_bytes(self) -> bytes:
        name_len = len(self.model_name.encode("utf-8"))
        return _FIXED.pack(
            PROTOCOL_VERSION, self.flags, self.session_id, self.gop_counter, self.capture_time_us, self.width,
            self.height, self.fps_milli, self.gop_length, self.n_elements, self.payload_size, self.n_segments,
            self.seed_fingerprint, self.model_hash, name_len,
        )  # fmt: skip

    def pack(self) -> bytes:
        """The descriptor body (without the segment header)."""
        return self._fixed_bytes() + self.model_name.encode("utf-8")

    def datagram(self) -> bytes:
        """A whole descriptor datagram: header (this GOP's number, label 0xFFFF) plus body."""
        return SegmentHeader(gop_number(self.gop_counter), DESCRIPTOR_LABEL).pack(self.pack())

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> SessionDescriptor:
        """Parse a descriptor body; raises :class:`WireError` on any version, length or consistency error."""
        if len(data) >= 1 and data[0] != PROTOCOL_VERSION:
            raise WireError("version", f"descriptor version {data[0]}, this receiver speaks {PROTOCOL_VERSION}")
        if len(data) < _FIXED.size:
            raise WireError("short", f"descriptor of {len(data)} bytes, at least {_FIXED.size} needed")
        (_, flags, session_id, counter, capture_us, width, height, fps_milli, gop_length, n_elements,
         payload_size, n_segments, fingerprint, model_hash, name_len) = _FIXED.unpack_from(data)  # fmt: skip
        if len(data) != _FIXED.size + name_len:
            raise WireError("descriptor_length", f"descriptor of {len(data)} bytes, expected {_FIXED.size + name_len}")
        try:
            name = bytes(data[_FIXED.size :]).decode("utf-8")
        except UnicodeDecodeError:
            raise WireError("model_name", "model name is not valid UTF-8") from None
        return cls(
            session_id, counter, capture_us, width, height, fps_milli, gop_length, n_elements, payload_size,
            n_segments, fingerprint, name, model_hash, flags,
        )  # fmt: skip

    @property
    def fps(self) -> float:
        return self.fps_milli / 1000

    @property
    def gop_duration_s(self) -> float:
        return self.gop_length * 1000 / self.fps_milli

    @property
    def end_of_input(self) -> bool:
        """The sender's input is finite and this is its last GOP."""
        return bool(self.flags & FLAG_END_OF_INPUT)

    @property
    def model_id(self) -> str:
        """The codec's ``model_id`` form: name, '@', weights hash in hex."""
        return f"{self.model_name}@{self.model_hash.hex()}"

    def stream_key(self) -> tuple[object, ...]:
        """Everything that must stay fixed within a session (all but counter, capture time and flags)."""
        return (
            self.session_id, self.width, self.height, self.fps_milli, self.gop_length, self.n_elements,
            self.payload_size, self.seed_fingerprint, self.model_name, self.model_hash,
        )  # fmt: skip

    def for_gop(self, counter: int) -> SessionDescriptor:
        """This session's descriptor extrapolated to another GOP: capture time advanced at the nominal
        frame rate, flags cleared. Used for GOPs whose own descriptor copies were all lost."""
        shift_us = (counter - self.gop_counter) * self.gop_length * 1_000_000_000 // self.fps_milli
        return replace(self, gop_counter=counter, capture_time_us=max(0, self.capture_time_us + shift_us), flags=0)

    def packetizer(self, seed: int) -> GopPacketizer:
        """The packetizer for this stream, after checking that ``seed`` is the sender's seed."""
        if seed_fingerprint(seed) != self.seed_fingerprint:
            raise WireError("seed_mismatch", "the interleaving seed differs from the sender's (fingerprint mismatch)")
        return GopPacketizer(self.n_elements, seed, self.payload_size)


def header_overhead(
    n_elements: int, payload_size: int, model_name: str = "", descriptor_copies: int = DESCRIPTOR_COPIES
) -> float:
    """Share of our application bytes per GOP that are headers rather than codes.

    Counts the 3-byte header of every segment plus ``descriptor_copies`` descriptor datagrams (header and
    body) against the packed codes; UDP/IP headers are not included.
    """
    n_segments = segment_count(n_elements, payload_size)
    descriptor_bytes = HEADER_SIZE + DESCRIPTOR_FIXED_SIZE + len(model_name.encode("utf-8"))
    overhead = n_segments * HEADER_SIZE + descriptor_copies * descriptor_bytes
    return overhead / (overhead + packed_size(n_elements))
