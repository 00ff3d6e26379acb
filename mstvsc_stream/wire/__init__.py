"""Wire format: 3-bit packing, interleaving, segment header, session descriptor, segmentation.

Pure, vectorised and I/O-free, so the same code runs in the sender, the receiver, the relay and tests.
The byte layout is specified in docs/wire-format.md.
"""

from mstvsc_stream.wire.descriptor import (
    DESCRIPTOR_COPIES,
    DESCRIPTOR_FIXED_SIZE,
    FLAG_END_OF_INPUT,
    MODEL_NAME_MAX_BYTES,
    PROTOCOL_VERSION,
    SessionDescriptor,
    header_overhead,
    new_session_id,
    split_model_id,
)
from mstvsc_stream.wire.errors import WireError
from mstvsc_stream.wire.header import DESCRIPTOR_LABEL, HEADER_SIZE, MAX_SEGMENT_LABEL, SegmentHeader
from mstvsc_stream.wire.interleave import DEFAULT_SEED, deinterleave, interleave, permutation, seed_fingerprint
from mstvsc_stream.wire.pack3 import CODE_MAX, CODE_MIN, pack_codes, packed_size, unpack_codes
from mstvsc_stream.wire.segment import (
    DEFAULT_MAX_PAYLOAD,
    MAX_PAYLOAD,
    MIN_DEFAULT_SEGMENTS,
    GopPacketizer,
    check_segment,
    default_payload_size,
    payload_size_for_packets,
    segment_count,
)
from mstvsc_stream.wire.serial import gop_number, serial_distance, serial_lt, unwrap_gop_number

__all__ = [
    "CODE_MAX",
    "CODE_MIN",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_SEED",
    "DESCRIPTOR_COPIES",
    "DESCRIPTOR_FIXED_SIZE",
    "DESCRIPTOR_LABEL",
    "FLAG_END_OF_INPUT",
    "HEADER_SIZE",
    "MAX_PAYLOAD",
    "MAX_SEGMENT_LABEL",
    "MIN_DEFAULT_SEGMENTS",
    "MODEL_NAME_MAX_BYTES",
    "PROTOCOL_VERSION",
    "GopPacketizer",
    "SegmentHeader",
    "SessionDescriptor",
    "WireError",
    "check_segment",
    "default_payload_size",
    "deinterleave",
    "gop_number",
    "header_overhead",
    "interleave",
    "new_session_id",
    "pack_codes",
    "packed_size",
    "payload_size_for_packets",
    "permutation",
    "seed_fingerprint",
    "segment_count",
    "serial_distance",
    "serial_lt",
    "split_model_id",
    "unpack_codes",
    "unwrap_gop_number",
]
