"""3-bit packing of codec codes: 8 values in 3 bytes.

The codec emits int8 codes in -4..3. Each is stored as its 3-bit two's complement (``code & 7``), so a
zero byte unpacks to value 0 and a zero-filled (lost) segment reads as code 0, which is what the decoder
was trained to see for erased elements.

Bit order: a group of 8 consecutive values ``v0..v7`` forms the 24-bit big-endian word
``v0<<21 | v1<<18 | ... | v7<<0``, written as 3 bytes most significant first (``v0`` fills the top three
bits of the first byte). A tail shorter than 8 values is padded with zeros to a whole group, so the packed
size is always ``3 * ceil(n / 8)`` bytes and segments cut on 3-byte boundaries hold whole groups.
"""

from __future__ import annotations

import numpy as np

CODE_MIN = -4
CODE_MAX = 3
GROUP_ELEMENTS = 8
GROUP_BYTES = 3

# Left shift of each of the 8 fields inside the 24-bit group word.
_FIELD_SHIFTS = np.arange(21, -1, -3, dtype=np.uint32)


def packed_size(n_elements: int) -> int:
    """Bytes needed for ``n_elements`` codes (whole 3-byte groups)."""
    if n_elements < 0:
        raise ValueError(f"element count must be >= 0, got {n_elements}")
    return GROUP_BYTES * -(-n_elements // GROUP_ELEMENTS)


def pack_codes(codes: np.ndarray) -> bytes:
    """Pack integer codes in -4..3 (any shape, flattened in C order) into ``packed_size`` bytes."""
    flat = np.asarray(codes).reshape(-1)
    if not np.issubdtype(flat.dtype, np.integer):
        raise ValueError(f"codes must be integers, got dtype {flat.dtype}")
    if flat.size and (int(flat.min()) < CODE_MIN or int(flat.max()) > CODE_MAX):
        raise ValueError(f"codes must lie in {CODE_MIN}..{CODE_MAX}")
    n_groups = -(-flat.size // GROUP_ELEMENTS)
    fields = np.zeros(n_groups * GROUP_ELEMENTS, dtype=np.uint32)
    fields[: flat.size] = flat & 7
    words = (fields.reshape(n_groups, GROUP_ELEMENTS) << _FIELD_SHIFTS).sum(axis=1, dtype=np.uint32)
    return words.astype(">u4").view(np.uint8).reshape(n_groups, 4)[:, 1:].tobytes()


def unpack_codes(data: bytes | bytearray | memoryview, n_elements: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: int8 codes of length ``n_elements`` (padding discarded)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size != packed_size(n_elements):
        raise ValueError(f"{n_elements} codes need {packed_size(n_elements)} bytes, got {raw.size}")
    words = np.zeros((raw.size // GROUP_BYTES, 4), dtype=np.uint8)
    words[:, 1:] = raw.reshape(-1, GROUP_BYTES)
    fields = (words.view(">u4") >> _FIELD_SHIFTS) & 7
    return ((fields.astype(np.int8) ^ 4) - 4).reshape(-1)[:n_elements]
