"""docs/wire-format.md's test vectors, checked against the implementation: packing, the permutation, a
descriptor datagram, and a whole small GOP from codes to datagrams and back with a segment lost."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from mstvsc_stream.pipeline.batching import end_of_input_datagrams, gop_datagrams
from mstvsc_stream.wire import (
    DEFAULT_SEED,
    DESCRIPTOR_COPIES,
    GopPacketizer,
    SessionDescriptor,
    pack_codes,
    permutation,
    seed_fingerprint,
    unwrap_gop_number,
)

SPEC = Path(__file__).resolve().parents[1] / "docs" / "wire-format.md"
CAPTURE_US = 1_700_000_000_000_000


def spec_vectors() -> dict[str, str]:
    """``name = value`` lines of the fenced block under the spec's "Test vectors" heading."""
    text = SPEC.read_text().split("## Test vectors", 1)[1]
    block = text.split("```text\n", 1)[1].split("```", 1)[0]
    return dict(line.split(" = ", 1) for line in block.strip().splitlines())


VECTORS = spec_vectors()


def ints(name: str) -> list[int]:
    return [int(v) for v in VECTORS[name].split()]


def small_gop() -> tuple[GopPacketizer, SessionDescriptor, np.ndarray]:
    codes = np.array(ints("gop.codes"), dtype=np.int8)
    packetizer = GopPacketizer(codes.size, DEFAULT_SEED, 6)
    descriptor = SessionDescriptor(
        0x1122334455667788, 258, CAPTURE_US, 64, 64, 30000, 4, codes.size, 6, packetizer.n_segments,
        seed_fingerprint(DEFAULT_SEED), "tiny", bytes.fromhex("0011223344556677"),
    )  # fmt: skip
    return packetizer, descriptor, codes


@pytest.mark.parametrize("name", ["pack", "pack_tail"])
def test_packing(name: str) -> None:
    assert pack_codes(np.array(ints(f"{name}.codes"))).hex() == VECTORS[f"{name}.bytes"]


def test_permutation() -> None:
    assert permutation(10).tolist() == ints("perm.n10")
    digest = hashlib.sha256(permutation(1000).astype("<u4").tobytes()).hexdigest()
    assert digest == VECTORS["perm.n1000.sha256"]


def test_descriptor_bytes() -> None:
    descriptor = SessionDescriptor(
        0x0102030405060708, 0x01000102, CAPTURE_US, 320, 240, 30000, 4, 7680, 189, 16,
        seed_fingerprint(DEFAULT_SEED), "m", bytes(range(8)), flags=1,
    )  # fmt: skip
    datagram = bytes.fromhex(VECTORS["descriptor.datagram"])
    assert descriptor.datagram() == datagram
    assert SessionDescriptor.parse(datagram[3:]) == descriptor


def test_a_whole_small_gop_codes_in_datagrams_out() -> None:
    packetizer, descriptor, codes = small_gop()
    assert permutation(codes.size).tolist() == ints("gop.perm")
    segments = packetizer.segments(codes)
    assert b"".join(segments).hex() == VECTORS["gop.packed"]
    datagrams = gop_datagrams(descriptor, segments, range(len(segments)), DESCRIPTOR_COPIES)
    assert [d.hex() for d in datagrams] == [VECTORS[f"gop.datagram.{k}"] for k in range(6)]
    ending = end_of_input_datagrams(descriptor)
    assert len(ending) == 8 and {d.hex() for d in ending} == {VECTORS["gop.end_flag_datagram"]}


def test_the_receivers_view_of_a_gop_with_a_segment_lost() -> None:
    packetizer, _, _ = small_gop()
    sent = packetizer.segments(np.array(ints("gop.codes"), dtype=np.int8))
    codes, received = packetizer.reassemble({label: sent[label] for label in ints("gop.received_labels")})
    assert codes.tolist() == ints("gop.received_codes")
    assert "".join("1" if r else "0" for r in received) == VECTORS["gop.received_mask"]


def test_padding_codes_of_the_tail_group_are_ignored() -> None:
    """The spec: a receiver ignores non-zero padding codes in the last group."""
    packetizer, _, codes = small_gop()
    last = bytearray(packetizer.segments(codes)[-1])
    last[-1] |= 0b111  # the last padding code: 7 (-1)
    decoded, received = packetizer.reassemble({2: bytes(last)})
    assert decoded[received].tolist() == codes[received].tolist()


def test_a_gop_number_128_away_is_read_as_behind() -> None:
    assert unwrap_gop_number(128, 1000 - 1000 % 256) == 1000 - 1000 % 256 - 128
    assert unwrap_gop_number(127, 256) == 383 and unwrap_gop_number(129, 256) == 129
