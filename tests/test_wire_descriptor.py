"""Segment header, session descriptor and GOP serial numbers: pinned layouts, round trips, reasons."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mstvsc_stream.wire import (
    DEFAULT_SEED,
    DESCRIPTOR_FIXED_SIZE,
    SegmentHeader,
    SessionDescriptor,
    WireError,
    gop_number,
    segment_count,
    seed_fingerprint,
    serial_distance,
    serial_lt,
    split_model_id,
    unwrap_gop_number,
)

EXAMPLE = SessionDescriptor(
    session_id=0x0102030405060708,
    gop_counter=0x01000102,
    capture_time_us=1_700_000_000_000_000,
    width=320,
    height=240,
    fps_milli=30000,
    gop_length=4,
    n_elements=7680,
    payload_size=189,
    n_segments=16,
    seed_fingerprint=seed_fingerprint(DEFAULT_SEED),
    model_name="m",
    model_hash=bytes(range(8)),
    flags=1,
)
EXAMPLE_DATAGRAM = bytes.fromhex(
    "02ffff" "01" "01" "0102030405060708" "01000102" "00060a24181e4000" "0140" "00f0" "00007530" "04"
    "00001e00" "00bd" "0010" "26a834e5" "0001020304050607" "01" "6d"
)  # fmt: skip


def reason_of(data: bytes) -> str:
    with pytest.raises(WireError) as err:
        SessionDescriptor.parse(data)
    return err.value.reason


@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=20))
def test_segment_header_round_trip(gop: int, label: int, payload: bytes) -> None:
    datagram = SegmentHeader(gop, label).pack(payload)
    assert datagram[3:] == payload
    assert SegmentHeader.parse(datagram) == SegmentHeader(gop, label)


def test_segment_header_layout_and_short_datagram() -> None:
    assert SegmentHeader(0x2C, 0x0102).pack() == b"\x2c\x01\x02"
    assert SegmentHeader.parse(b"\x00\xff\xff").is_descriptor
    with pytest.raises(WireError) as err:
        SegmentHeader.parse(b"\x01\x02")
    assert err.value.reason == "short"


def test_descriptor_layout_is_pinned() -> None:
    assert EXAMPLE.datagram() == EXAMPLE_DATAGRAM
    assert SessionDescriptor.parse(EXAMPLE_DATAGRAM[3:]) == EXAMPLE
    assert len(EXAMPLE.pack()) == DESCRIPTOR_FIXED_SIZE + 1


@st.composite
def descriptors(draw: st.DrawFn) -> SessionDescriptor:
    n_elements = draw(st.integers(1, 1 << 20))
    payload = 3 * draw(st.integers(max(1, -(-n_elements * 3 // 8 // 3 // 0xFFFF) + 1), 400))
    return SessionDescriptor(
        session_id=draw(st.integers(0, (1 << 64) - 1)),
        gop_counter=draw(st.integers(0, 0xFFFFFFFF)),
        capture_time_us=draw(st.integers(0, (1 << 64) - 1)),
        width=draw(st.integers(1, 0xFFFF)),
        height=draw(st.integers(1, 0xFFFF)),
        fps_milli=draw(st.integers(1, 0xFFFFFFFF)),
        gop_length=draw(st.integers(1, 255)),
        n_elements=n_elements,
        payload_size=payload,
        n_segments=segment_count(n_elements, payload),
        seed_fingerprint=draw(st.binary(min_size=4, max_size=4)),
        model_name=draw(st.text(max_size=16)),
        model_hash=draw(st.binary(min_size=8, max_size=8)),
        flags=draw(st.integers(0, 255)),
    )


@given(descriptors())
def test_descriptor_round_trip(descriptor: SessionDescriptor) -> None:
    datagram = descriptor.datagram()
    header = SegmentHeader.parse(datagram)
    assert (header.gop, header.label) == (gop_number(descriptor.gop_counter), 0xFFFF)
    assert SessionDescriptor.parse(datagram[3:]) == descriptor


@given(st.binary(max_size=80))
def test_parsing_arbitrary_bytes_raises_only_wire_error(data: bytes) -> None:
    try:
        SessionDescriptor.parse(data)
    except WireError as err:
        assert err.reason


def test_every_truncation_is_a_wire_error() -> None:
    body = EXAMPLE.pack()
    for cut in range(len(body)):
        assert reason_of(body[:cut]) in {"short", "descriptor_length"}


def test_parse_reasons() -> None:
    body = bytearray(EXAMPLE.pack())
    assert reason_of(b"\x02" + bytes(body[1:])) == "version"
    assert reason_of(bytes(body) + b"x") == "descriptor_length"
    n_segments_at = 37  # version, flags, session, counter, time, width, height, fps, gop, elements, payload
    wrong_count = body[:n_segments_at] + (17).to_bytes(2, "big") + body[n_segments_at + 2 :]
    assert reason_of(bytes(wrong_count)) == "descriptor_inconsistent"
    assert reason_of(bytes(body[:-1]) + b"\xff") == "model_name"
    long_name = bytes(body[:-2]) + bytes([65]) + b"x" * 65
    assert reason_of(long_name) == "model_name"


def test_inconsistent_descriptor_cannot_be_built() -> None:
    for change in ({"n_segments": 15}, {"payload_size": 190}, {"width": 0}, {"model_hash": b"short"}):
        with pytest.raises(WireError, match="descriptor_inconsistent"):
            dataclasses.replace(EXAMPLE, **change)
    with pytest.raises(WireError, match="descriptor_field"):
        dataclasses.replace(EXAMPLE, width=70_000)


def test_model_id_round_trip() -> None:
    assert split_model_id(EXAMPLE.model_id) == ("m", bytes(range(8)))
    expected = ("mstvsc-small-c48", bytes.fromhex("1a2b3c4d5e6f7a8b"))
    assert split_model_id("mstvsc-small-c48@1a2b3c4d5e6f7a8b") == expected
    for bad in ("plain", "x@123", "x@zz2b3c4d5e6f7a8b"):
        with pytest.raises(ValueError, match="is not 'name@"):
            split_model_id(bad)


def test_for_gop_extrapolates_capture_time_and_clears_flags() -> None:
    later = EXAMPLE.for_gop(EXAMPLE.gop_counter + 3)  # 3 GOPs of 4 frames at 30 fps = 0.4 s
    assert later.capture_time_us == EXAMPLE.capture_time_us + 400_000
    assert later.flags == 0 and EXAMPLE.end_of_input and not later.end_of_input
    assert later.stream_key() == EXAMPLE.stream_key()


def test_packetizer_checks_the_seed() -> None:
    assert EXAMPLE.packetizer(DEFAULT_SEED).n_segments == EXAMPLE.n_segments
    with pytest.raises(WireError, match="seed_mismatch"):
        EXAMPLE.packetizer(DEFAULT_SEED + 1)


@given(st.integers(0, 1 << 32), st.integers(-127, 127))
def test_unwrap_recovers_counters_within_127(reference: int, offset: int) -> None:
    counter = reference + offset
    assert unwrap_gop_number(gop_number(counter), reference) == counter
    assert serial_distance(gop_number(reference), gop_number(counter)) == offset


def test_serial_comparison_across_wraparound() -> None:
    assert serial_lt(250, 3) and not serial_lt(3, 250)
    assert serial_lt(0, 127) and not serial_lt(0, 128)
    assert serial_distance(255, 0) == 1
