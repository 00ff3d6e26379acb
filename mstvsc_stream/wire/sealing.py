"""Authenticated, encrypted datagrams (optional): the 3-byte header stays in clear, the rest is sealed.

The interleaving seed only scrambles; anyone who reads one descriptor can forge segments. With a
pre-shared 32-byte key, every datagram is sealed with ChaCha20-Poly1305 (RFC 8439)::

    +--------+-----------+------------+--------------+----------------------------+---------+
    | GOP u8 | label u16 | session u64| sequence u32 | ciphertext (payload bytes) | tag 16B |
    +--------+-----------+------------+--------------+----------------------------+---------+
    |<------------ associated data (15 bytes, clear) ------------>|

The nonce is the 12 clear bytes after the header: the sender's random session id and a per-datagram
sequence number counting from 0. A session id is drawn once per sender start, so under one key a nonce
never repeats as long as a session sends fewer than 2**32 datagrams (the sender starts a new session
before that). Repeated descriptor copies get their own sequence numbers, so a byte-identical datagram
arriving twice is a network duplicate or a replay, and the receiver's replay window drops it.
Sealing adds :data:`SEAL_OVERHEAD` (28) bytes, so sealed payloads are that much smaller to keep
datagrams within the same MTU.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from mstvsc_stream.wire.errors import WireError
from mstvsc_stream.wire.header import HEADER_SIZE
from mstvsc_stream.wire.pack3 import GROUP_BYTES
from mstvsc_stream.wire.segment import DEFAULT_MAX_PAYLOAD, MAX_PAYLOAD, default_payload_size

KEY_BYTES = 32
TAG_BYTES = 16
SEAL_FIELDS = struct.Struct(">QI")  # session id, sequence number: together the 12-byte nonce
SEALED_CLEAR_SIZE = HEADER_SIZE + SEAL_FIELDS.size
SEAL_OVERHEAD = SEAL_FIELDS.size + TAG_BYTES
SEALED_MIN_SIZE = SEALED_CLEAR_SIZE + TAG_BYTES
SEQUENCE_LIMIT = 1 << 32  # sequence numbers per session
# The plain limits less the sealing overhead, down to whole 3-byte groups: same MTU, same datagram size cap.
SEALED_DEFAULT_MAX_PAYLOAD = (DEFAULT_MAX_PAYLOAD - SEAL_OVERHEAD) // GROUP_BYTES * GROUP_BYTES
SEALED_MAX_PAYLOAD = (MAX_PAYLOAD - SEAL_OVERHEAD) // GROUP_BYTES * GROUP_BYTES


def parse_key(text: str) -> bytes:
    """The key from a key file's text: 64 hex digits (32 bytes), surrounding white space ignored."""
    digits = text.strip()
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES or len(digits) != 2 * KEY_BYTES:
        raise ValueError(f"a key is {2 * KEY_BYTES} hex digits ({KEY_BYTES} bytes); mstvsc-keygen writes one")
    return key


def format_key(key: bytes) -> str:
    """A key file's text: the key as 64 lower-case hex digits and a newline."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a key is {KEY_BYTES} bytes, got {len(key)}")
    return key.hex() + "\n"


def sealed_payload_size(n_elements: int, requested: int | None) -> int:
    """The segment payload size for a sealed stream: the plain default capped so that a sealed datagram is
    no larger than a plain default one, or ``requested`` if it still fits the UDP maximum once sealed."""
    if requested is None:
        return min(default_payload_size(n_elements), SEALED_DEFAULT_MAX_PAYLOAD)
    if requested > SEALED_MAX_PAYLOAD:
        raise ValueError(f"payload of {requested} B is too large for a sealed stream (at most {SEALED_MAX_PAYLOAD})")
    return requested


def _cipher(key: bytes) -> ChaCha20Poly1305:
    if len(key) != KEY_BYTES:
        raise ValueError(f"a key is {KEY_BYTES} bytes, got {len(key)}")
    return ChaCha20Poly1305(key)


class Sealer:
    """Seals one session's datagrams in sending order; a sender uses a new Sealer (and session id) when
    :attr:`remaining` runs out."""

    def __init__(self, key: bytes, session_id: int) -> None:
        self.session_id = session_id
        self._cipher = _cipher(key)
        self._sequence = 0
        self._limit = SEQUENCE_LIMIT

    @property
    def remaining(self) -> int:
        """Datagrams this session can still seal without reusing a nonce."""
        return self._limit - self._sequence

    def seal(self, datagram: bytes) -> bytes:
        """A plain datagram (header + payload) as a sealed one."""
        if len(datagram) < HEADER_SIZE:
            raise ValueError(f"a datagram has at least a {HEADER_SIZE}-byte header, got {len(datagram)} bytes")
        if self._sequence >= self._limit:
            raise RuntimeError("this session has used all its sequence numbers; start a new session")
        clear = datagram[:HEADER_SIZE] + SEAL_FIELDS.pack(self.session_id, self._sequence)
        self._sequence += 1
        return clear + self._cipher.encrypt(clear[HEADER_SIZE:], datagram[HEADER_SIZE:], clear)


class SealedDatagram:
    """The clear fields of a sealed datagram, read before it is authenticated (and trusted only after)."""

    __slots__ = ("clear", "session_id", "sequence")

    def __init__(self, datagram: bytes) -> None:
        if len(datagram) < SEALED_MIN_SIZE:
            raise WireError("short", f"sealed datagram of {len(datagram)} bytes, at least {SEALED_MIN_SIZE}")
        self.clear = datagram[:SEALED_CLEAR_SIZE]
        self.session_id, self.sequence = SEAL_FIELDS.unpack_from(datagram, HEADER_SIZE)


class Unsealer:
    """Authenticates and decrypts sealed datagrams under one key (no replay state: see net.opening)."""

    def __init__(self, key: bytes) -> None:
        self._cipher = _cipher(key)

    def open(self, datagram: bytes, sealed: SealedDatagram) -> bytes:
        """The plain datagram (header + payload); raises WireError("forged") unless it authenticates."""
        try:
            payload = self._cipher.decrypt(sealed.clear[HEADER_SIZE:], datagram[SEALED_CLEAR_SIZE:], sealed.clear)
        except InvalidTag:
            raise WireError("forged", "datagram does not authenticate under the key") from None
        return sealed.clear[:HEADER_SIZE] + payload
