"""Segmentation and reassembly: exact inverse, exact loss mask, default and N_p payload sizes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mstvsc_stream.wire import (
    DEFAULT_MAX_PAYLOAD,
    MIN_DEFAULT_SEGMENTS,
    GopPacketizer,
    WireError,
    default_payload_size,
    header_overhead,
    packed_size,
    payload_size_for_packets,
    permutation,
)


@st.composite
def gops(draw: st.DrawFn) -> tuple[GopPacketizer, np.ndarray]:
    """A packetizer of random geometry and seed, with random codes for it."""
    n = draw(st.integers(1, 2000))
    payload = 3 * draw(st.integers(1, packed_size(n) // 3 + 2))
    packetizer = GopPacketizer(n, draw(st.integers(0, (1 << 64) - 1)), payload)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return packetizer, rng.integers(-4, 4, n, dtype=np.int8)


@given(gops())
def test_reassemble_inverts_segments(gop: tuple[GopPacketizer, np.ndarray]) -> None:
    packetizer, codes = gop
    segments = packetizer.segments(codes)
    assert len(segments) == packetizer.n_segments
    assert all(len(s) == packetizer.payload_size for s in segments[:-1])
    assert 0 < len(segments[-1]) <= packetizer.payload_size
    restored, received = packetizer.reassemble(dict(enumerate(segments)))
    np.testing.assert_array_equal(restored, codes)
    assert received.all()


@given(gops(), st.data())
def test_mask_is_false_exactly_on_elements_of_dropped_segments(
    gop: tuple[GopPacketizer, np.ndarray], data: st.DataObject
) -> None:
    packetizer, codes = gop
    segments = packetizer.segments(codes)
    dropped = data.draw(st.sets(st.integers(0, len(segments) - 1)))
    restored, received = packetizer.reassemble({k: s for k, s in enumerate(segments) if k not in dropped})
    # element i travels at position p where perm[p] == i; 8 elements per 3 payload bytes
    position = np.argsort(permutation(packetizer.n_elements, packetizer.seed))
    segment_of_element = position // (packetizer.payload_size // 3 * 8)
    expected = ~np.isin(segment_of_element, sorted(dropped))
    np.testing.assert_array_equal(received, expected)
    np.testing.assert_array_equal(restored[received], codes[received])
    assert not restored[~received].any()


@given(st.integers(1, 400_000))
def test_default_payload_is_the_largest_that_keeps_16_segments(n: int) -> None:
    payload = default_payload_size(n)
    total = packed_size(n)
    assert payload % 3 == 0 and 3 <= payload <= DEFAULT_MAX_PAYLOAD
    assert -(-total // payload) >= MIN_DEFAULT_SEGMENTS or payload == 3
    bigger = payload + 3
    assert bigger > DEFAULT_MAX_PAYLOAD or -(-total // bigger) < MIN_DEFAULT_SEGMENTS


@pytest.mark.parametrize(("n", "payload", "segments"), [(7680, 189, 16), (97920, 1227, 30), (5, 3, 1)])
def test_default_payload_for_known_sizes(n: int, payload: int, segments: int) -> None:
    packetizer = GopPacketizer(n)
    assert (packetizer.payload_size, packetizer.n_segments) == (payload, segments)


@given(st.integers(1, 200_000), st.integers(1, 500))
def test_packets_option_gives_at_most_n_segments(n: int, packets: int) -> None:
    payload = payload_size_for_packets(n, packets)
    per_packet = -(-packed_size(n) // packets)  # ceil(bytes / N)
    assert payload % 3 == 0 and per_packet <= payload < per_packet + 3
    assert -(-packed_size(n) // payload) <= packets


def test_reassemble_rejects_bad_label_and_size_with_reasons() -> None:
    packetizer = GopPacketizer(100, payload_size=12)  # 39 bytes: 12, 12, 12, 3
    with pytest.raises(WireError) as err:
        packetizer.reassemble({4: bytes(3)})
    assert err.value.reason == "label_range"
    with pytest.raises(WireError) as err:
        packetizer.reassemble({3: bytes(12)})
    assert err.value.reason == "payload_size"


@pytest.mark.parametrize(("n", "payload"), [(0, 3), (10, 4), (10, 0), (10, 70_000), (600_000, 3)])
def test_bad_geometry_is_rejected(n: int, payload: int) -> None:
    with pytest.raises(ValueError):
        GopPacketizer(n, payload_size=payload)


def test_segments_rejects_wrong_code_count() -> None:
    with pytest.raises(ValueError, match="expected 16 codes"):
        GopPacketizer(16).segments(np.zeros(15, np.int8))


def test_header_overhead_counts_segment_headers_and_descriptor_copies() -> None:
    # 7680 elements = 2880 bytes in 16 segments; 3 descriptors of 3 + 52 + 4 ("abcd") bytes
    overhead = 16 * 3 + 3 * 59
    assert header_overhead(7680, 189, "abcd", 3) == pytest.approx(overhead / (overhead + 2880))
