"""GOP serial numbers: 8-bit numbers on the wire, 32-bit counters in the descriptor.

The segment header carries only ``counter mod 256``. Like RFC 1982 serial-number arithmetic, a number is
read as the counter nearest to a known reference counter, so ordering survives wraparound as long as the
receiver's idea of "now" is within 127 GOPs of the truth.
"""

from __future__ import annotations

GOP_NUMBER_MODULUS = 256


def gop_number(counter: int) -> int:
    """The 8-bit GOP number that goes into the segment header for a 32-bit counter."""
    return counter % GOP_NUMBER_MODULUS


def serial_distance(a: int, b: int) -> int:
    """Signed forward distance from GOP number ``a`` to ``b``, in -128..127."""
    half = GOP_NUMBER_MODULUS // 2
    return (b - a + half) % GOP_NUMBER_MODULUS - half


def serial_lt(a: int, b: int) -> bool:
    """RFC 1982 ``a < b`` for 8-bit GOP numbers (the undefined half-way case counts as not less)."""
    return serial_distance(a, b) > 0


def unwrap_gop_number(number: int, reference_counter: int) -> int:
    """The counter with GOP number ``number`` closest to ``reference_counter`` (-128..+127 around it)."""
    return reference_counter + serial_distance(gop_number(reference_counter), number)
