"""3-bit packing: exact inverse, pinned bit order, zero bytes mean code 0, clear errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mstvsc_stream.wire import CODE_MAX, CODE_MIN, pack_codes, packed_size, unpack_codes

codes_arrays = arrays(np.int8, st.integers(0, 300), elements=st.integers(CODE_MIN, CODE_MAX))


@given(codes_arrays)
def test_unpack_inverts_pack_for_any_length(codes: np.ndarray) -> None:
    packed = pack_codes(codes)
    assert len(packed) == 3 * -(-codes.size // 8) == packed_size(codes.size)
    restored = unpack_codes(packed, codes.size)
    assert restored.dtype == np.int8
    np.testing.assert_array_equal(restored, codes)


def test_bit_order_is_msb_first_twos_complement() -> None:
    # -4..3 as 3-bit two's complement: 100 101 110 111 000 001 010 011 -> 0x977053
    assert pack_codes(np.arange(-4, 4, dtype=np.int8)) == bytes.fromhex("977053")
    # a tail is zero-padded to a whole group: 3 (011) then seven zero fields
    assert pack_codes(np.array([3], dtype=np.int64)) == bytes.fromhex("600000")


def test_zero_bytes_unpack_to_code_zero() -> None:
    np.testing.assert_array_equal(unpack_codes(bytes(30), 77), np.zeros(77, np.int8))


def test_out_of_range_or_float_codes_are_rejected() -> None:
    with pytest.raises(ValueError, match="-4..3"):
        pack_codes(np.array([4]))
    with pytest.raises(ValueError, match="integers"):
        pack_codes(np.zeros(8, np.float32))


def test_unpack_rejects_wrong_byte_count() -> None:
    with pytest.raises(ValueError, match="need 6 bytes"):
        unpack_codes(bytes(5), 16)
