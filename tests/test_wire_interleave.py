"""Interleaving: the permutation is pinned by golden hashes and a pure-Python reference of the spec."""

import hashlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mstvsc_stream.wire import DEFAULT_SEED, deinterleave, interleave, permutation, seed_fingerprint

MASK64 = (1 << 64) - 1
seeds = st.integers(0, MASK64)


def splitmix64(seed: int, index: int) -> int:
    """SplitMix64 output for counter ``index + 1``, written from the spec with Python integers."""
    z = (seed + (index + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def test_reference_generator_matches_published_splitmix64_vector() -> None:
    assert splitmix64(1234567, 0) == 6457827717110365317


@given(st.integers(0, 300), seeds)
def test_permutation_matches_pure_python_reference(n: int, seed: int) -> None:
    expected = sorted(range(n), key=lambda i: splitmix64(seed, i))
    assert permutation(n, seed).tolist() == expected


@pytest.mark.parametrize(
    ("n", "seed", "digest"),
    [
        (1000, DEFAULT_SEED, "e747210ddedbd1980af48236deb1ad693eab0c2ba4efe0e8a8d4804f84c378ed"),
        (97920, DEFAULT_SEED, "66dd442ad12fa2088f32d0f80a90ecf69345279700fad3882e1c0c972b62f77c"),
        (7680, 1, "d7649a08e8ad399122896ece459e11864dfa06a1a51dd40174b58f3861a668a1"),
    ],
)
def test_golden_permutation_hash(n: int, seed: int, digest: str) -> None:
    assert hashlib.sha256(permutation(n, seed).astype("<u4").tobytes()).hexdigest() == digest


@given(arrays(np.int8, st.integers(0, 500), elements=st.integers(-4, 3)), seeds)
def test_deinterleave_inverts_interleave(values: np.ndarray, seed: int) -> None:
    shuffled = interleave(values, seed)
    assert sorted(shuffled.tolist()) == sorted(values.tolist())
    np.testing.assert_array_equal(deinterleave(shuffled, seed), values)


def test_permutation_is_cached_and_read_only() -> None:
    perm = permutation(4096, 7)
    assert permutation(4096, 7) is perm
    assert not perm.flags.writeable
    assert np.array_equal(np.sort(perm), np.arange(4096))


def test_different_seeds_give_different_orders() -> None:
    assert not np.array_equal(permutation(1000, 1), permutation(1000, 2))


def test_seed_fingerprint_is_pinned_and_does_not_reveal_the_seed() -> None:
    assert seed_fingerprint(DEFAULT_SEED).hex() == "26a834e5"
    assert seed_fingerprint(DEFAULT_SEED) == hashlib.sha256(DEFAULT_SEED.to_bytes(8, "big")).digest()[:4]


@pytest.mark.parametrize("seed", [-1, 1 << 64])
def test_seed_outside_64_bits_is_rejected(seed: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        permutation(10, seed)
