"""Segmentation of one GOP's codes into datagram payloads, and reassembly with a loss mask.

Sender: interleave the codes, pack them 3 bits each, cut the bytes into segments of ``payload_size``
bytes (a multiple of 3, so each segment holds whole 8-element groups and a lost segment erases exactly
its own elements; the last segment may be shorter). Receiver: place each arrived payload at its label,
zero-fill the rest (zero bytes unpack to code 0), unpack, de-interleave, and report which latent elements
actually arrived, in the codec's latent order.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mstvsc_stream.wire.errors import WireError
from mstvsc_stream.wire.header import HEADER_SIZE, MAX_SEGMENT_LABEL
from mstvsc_stream.wire.interleave import DEFAULT_SEED, deinterleave, interleave, seed_fingerprint
from mstvsc_stream.wire.pack3 import GROUP_BYTES, GROUP_ELEMENTS, pack_codes, packed_size, unpack_codes

# 1280-byte IPv6 minimum MTU - 40 (IPv6) - 8 (UDP) - 3 (our header) = 1229, down to a multiple of 3:
# a default datagram never needs IP fragmentation on any IPv6 path.
DEFAULT_MAX_PAYLOAD = 1227
# Fewer, larger segments make each loss erase a bigger share of the GOP; small GOPs still get this many.
MIN_DEFAULT_SEGMENTS = 16
# Largest UDP payload over IPv4 (65507) less our header, down to a multiple of 3.
MAX_PAYLOAD = (65507 - HEADER_SIZE) // GROUP_BYTES * GROUP_BYTES
MAX_SEGMENTS = MAX_SEGMENT_LABEL + 1


def _check_elements(n_elements: int) -> None:
    if n_elements < 1:
        raise ValueError(f"a GOP needs at least one latent element, got {n_elements}")


def segment_count(n_elements: int, payload_size: int) -> int:
    """Number of segments (labels ``0..count-1``) for a GOP of ``n_elements`` codes."""
    return -(-packed_size(n_elements) // payload_size)


def check_segment(label: int, size: int, n_elements: int, payload_size: int) -> None:
    """Raise :class:`WireError` unless ``size`` payload bytes are exactly right for segment ``label``."""
    total = packed_size(n_elements)
    n_segments = segment_count(n_elements, payload_size)
    if not 0 <= label < n_segments:
        raise WireError("label_range", f"label {label} outside 0..{n_segments - 1}")
    expected = min(payload_size, total - label * payload_size)
    if size != expected:
        raise WireError("payload_size", f"segment {label} has {size} bytes, expected {expected}")


def default_payload_size(n_elements: int) -> int:
    """Largest multiple of 3, at most 1227, that still cuts the GOP into >= 16 segments (3 at least)."""
    _check_elements(n_elements)
    total = packed_size(n_elements)
    # segment_count >= 16  <=>  total > 15 * payload  <=>  payload <= (total - 1) // 15
    fitting = (total - 1) // (MIN_DEFAULT_SEGMENTS - 1) // GROUP_BYTES * GROUP_BYTES
    return max(GROUP_BYTES, min(DEFAULT_MAX_PAYLOAD, fitting))


def payload_size_for_packets(n_elements: int, n_packets: int) -> int:
    """Payload size giving (at most) ``n_packets`` segments: the paper's N_p, rounded up to whole groups."""
    _check_elements(n_elements)
    if n_packets < 1:
        raise ValueError(f"packet count must be >= 1, got {n_packets}")
    per_packet = -(-packed_size(n_elements) // n_packets)
    return -(-per_packet // GROUP_BYTES) * GROUP_BYTES


class GopPacketizer:
    """Turns a GOP's flat codes into segment payloads and back, for one fixed geometry and seed."""

    def __init__(self, n_elements: int, seed: int = DEFAULT_SEED, payload_size: int | None = None) -> None:
        _check_elements(n_elements)
        size = default_payload_size(n_elements) if payload_size is None else payload_size
        if size < GROUP_BYTES or size % GROUP_BYTES or size > MAX_PAYLOAD:
            raise ValueError(f"payload size must be a multiple of 3 in 3..{MAX_PAYLOAD}, got {size}")
        self.n_elements = n_elements
        self.seed = seed
        self.payload_size = size
        self.packed_size = packed_size(n_elements)
        self.n_segments = segment_count(n_elements, size)
        if self.n_segments > MAX_SEGMENTS:
            raise ValueError(f"{self.n_segments} segments exceed the {MAX_SEGMENTS} labels; use larger payloads")
        self.seed_fingerprint = seed_fingerprint(seed)

    def segments(self, codes: np.ndarray) -> list[bytes]:
        """Payloads indexed by label (no header) for a flat vector of ``n_elements`` codes."""
        flat = np.asarray(codes).reshape(-1)
        if flat.size != self.n_elements:
            raise ValueError(f"expected {self.n_elements} codes, got {flat.size}")
        packed = memoryview(pack_codes(interleave(flat, self.seed)))
        step = self.payload_size
        return [bytes(packed[start : start + step]) for start in range(0, self.packed_size, step)]

    def reassemble(self, payloads: Mapping[int, bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Codes (int8, 0 where missing) and received mask (True = arrived), both in latent order."""
        packed = np.zeros(self.packed_size, dtype=np.uint8)
        arrived = np.zeros(self.n_segments, dtype=bool)
        for label, payload in payloads.items():
            check_segment(label, len(payload), self.n_elements, self.payload_size)
            start = label * self.payload_size
            packed[start : start + len(payload)] = np.frombuffer(payload, dtype=np.uint8)
            arrived[label] = True
        codes = deinterleave(unpack_codes(packed, self.n_elements), self.seed)
        elements_per_segment = self.payload_size // GROUP_BYTES * GROUP_ELEMENTS
        received = deinterleave(np.repeat(arrived, elements_per_segment)[: self.n_elements], self.seed)
        return codes, received
