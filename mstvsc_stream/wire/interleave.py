"""Semantic-level interleaving: one seeded permutation of all latent elements of a GOP.

Neighbouring latent elements are strongly correlated; spreading them over all segments turns the loss of
one datagram into scattered single-element erasures the decoder can fill in (paper, section II-A). Sender
and receiver derive the same permutation from a pre-shared 64-bit seed, so no index ever travels.

The permutation must be bit-identical on every install, so it is defined here rather than borrowed from
numpy's generators (whose streams may change between releases):

* key ``i`` (for element index ``i = 0..n-1``) is the SplitMix64 output for counter ``i + 1``:
  ``z = seed + (i + 1) * 0x9E3779B97F4A7C15 (mod 2**64)``, then
  ``z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9``, ``z = (z ^ z >> 27) * 0x94D049BB133111EB``, ``z ^= z >> 31``;
* ``perm`` is the ascending order of the keys (keys are distinct: the SplitMix64 finaliser is a bijection
  and the counters differ), ties impossible, a stable sort used anyway;
* interleaving sends ``codes[perm]``: transmitted position ``j`` carries latent element ``perm[j]``.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

DEFAULT_SEED = 0x4D53545653433031  # ASCII "MSTVSC01"

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _check_seed(seed: int) -> None:
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"interleaving seed must be an unsigned 64-bit integer, got {seed}")


def _splitmix64_keys(n: int, seed: int) -> np.ndarray:
    """SplitMix64 outputs for counters ``1..n`` after ``seed`` (uint64, wrapping arithmetic)."""
    _check_seed(seed)
    z = np.arange(1, n + 1, dtype=np.uint64)
    z *= _GAMMA
    z += np.uint64(seed)
    z ^= z >> np.uint64(30)
    z *= _MIX1
    z ^= z >> np.uint64(27)
    z *= _MIX2
    z ^= z >> np.uint64(31)
    return z


@functools.lru_cache(maxsize=16)
def permutation(n: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """The interleaving permutation of ``n`` elements (read-only, cached per ``(n, seed)``)."""
    if n < 0:
        raise ValueError(f"element count must be >= 0, got {n}")
    perm = np.argsort(_splitmix64_keys(n, seed), kind="stable")
    perm.setflags(write=False)
    return perm


def interleave(values: np.ndarray, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Reorder a flat vector into transmission order."""
    flat = np.asarray(values).reshape(-1)
    return flat[permutation(flat.size, seed)]


def deinterleave(values: np.ndarray, seed: int = DEFAULT_SEED) -> np.ndarray:
    """Put a transmission-order vector back into latent order (inverse of :func:`interleave`)."""
    flat = np.asarray(values).reshape(-1)
    out = np.empty_like(flat)
    out[permutation(flat.size, seed)] = flat
    return out


def seed_fingerprint(seed: int) -> bytes:
    """First 4 bytes of sha256 of the seed's 8 big-endian bytes: lets peers spot a seed mismatch
    without revealing the seed."""
    _check_seed(seed)
    return hashlib.sha256(seed.to_bytes(8, "big")).digest()[:4]
