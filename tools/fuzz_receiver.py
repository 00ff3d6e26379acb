"""Fuzz the receiver's datagram path with a seeded mutation loop mixed into a valid stream.

The path is the receiving application's, without sockets or decoder: [opening (sealed streams)] ->
admission -> GOP buffer (guarded, --accept first), on a virtual clock at 30 fps. A valid stream of
``mstvsc-small-c48`` GOPs at 320x240 (random codes; no weights needed) is sent; between its datagrams
come attacker datagrams: random bytes, bit flips, truncations and extensions of real datagrams,
rewritten headers, segments with made-up GOP numbers, replays of old datagrams, descriptors with one
field changed, and (sealed) forgeries with random tags, changed clear fields or another key. A share of
them (``--spoofed``, half by default) claim the stream's own address, the rest come from a pool of others.

Checks: no exception escapes, RSS grows less than 20 MB, the stream's GOPs still come out in order;
sealed, or plain with nothing spoofed: not one attacker datagram is accepted and every GOP comes out whole
and genuine. Plain with spoofed datagrams, nothing can tell a forged segment from the sender's, so
the report says how many GOPs came out genuine and how many made-up GOPs came out.

    python tools/fuzz_receiver.py --datagrams 1000000
    python tools/fuzz_receiver.py --datagrams 100000 --sealed
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import secrets
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.net.gopbuffer import GopBuffer, ReleasedGop
from mstvsc_stream.net.opening import DatagramOpener
from mstvsc_stream.net.sources import SourcePolicy
from mstvsc_stream.pipeline.admission import StreamAdmission
from mstvsc_stream.pipeline.batching import gop_datagrams
from mstvsc_stream.wire import (
    DEFAULT_SEED,
    DESCRIPTOR_COPIES,
    HEADER_SIZE,
    GopPacketizer,
    SegmentHeader,
    SessionDescriptor,
    WireError,
    new_session_id,
)
from mstvsc_stream.wire.sealing import KEY_BYTES, SEAL_FIELDS, Sealer, sealed_payload_size

MODEL = "mstvsc-small-c48"
MODEL_HASH = bytes(range(8))
SIZE = (320, 240)
FPS = 30.0
SENDER = ("192.0.2.1", 40000)
HISTORY = 4096  # valid datagrams remembered for replays and mutations
RSS_LIMIT_MB = 20.0


def rss_mb() -> float:
    """Resident set size of this process (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class ValidStream:
    """The sender: one session, GOPs of random codes, datagrams paced over 0.8 of each GOP interval."""

    def __init__(self, key: bytes | None, rng: np.random.Generator) -> None:
        config = CONFIGS["small-c48"]
        width, height = SIZE
        n_elements = config.latent_length(height, width)
        payload = sealed_payload_size(n_elements, None) if key is not None else None
        self.packetizer = GopPacketizer(n_elements, DEFAULT_SEED, payload)
        self.base = SessionDescriptor(
            new_session_id(), 0, 0, width, height, int(FPS * 1000), config.gop, n_elements,
            self.packetizer.payload_size, self.packetizer.n_segments, self.packetizer.seed_fingerprint,
            MODEL, MODEL_HASH,
        )  # fmt: skip
        self.sealer = None if key is None else Sealer(key, self.base.session_id)
        self.rng = rng
        self.sent: dict[int, list[bytes]] = {}  # by counter, until released
        self.latest = (0, list[bytes]())  # the newest GOP's counter and segment payloads

    def gop(self, counter: int) -> list[bytes]:
        codes = self.rng.integers(-4, 4, self.packetizer.n_elements, dtype=np.int8)
        segments = self.packetizer.segments(codes)
        self.sent[counter] = segments
        self.latest = (counter, segments)
        descriptor = dataclasses.replace(self.base.for_gop(counter), capture_time_us=counter * 133_333)
        plain = gop_datagrams(descriptor, segments, len(segments), DESCRIPTOR_COPIES)
        return plain if self.sealer is None else [self.sealer.seal(d) for d in plain]


class Attacker:
    """Seeded mutations of what it has seen, and inventions of its own."""

    def __init__(self, rng: random.Random, stream: ValidStream, sealed: bool, spoofed: float) -> None:
        self.rng = rng
        self.spoofed = spoofed
        self.stream = stream
        self.sealed = sealed
        self.history: list[bytes] = []
        self.others = [(f"198.51.100.{i % 250 + 1}", 1024 + i) for i in range(1000)]
        self.wrong_sealer = Sealer(secrets.token_bytes(KEY_BYTES), stream.base.session_id) if sealed else None
        self.kinds = [self.noise, self.flip, self.resize, self.rewrite_header, self.replay, self.duplicate_latest]
        self.kinds += [self.sealed_forgery, self.wrong_key] if sealed else [self.made_up_gop, self.descriptor_field]

    def remember(self, datagram: bytes) -> None:
        if len(self.history) < HISTORY:
            self.history.append(datagram)
        else:
            self.history[self.rng.randrange(HISTORY)] = datagram

    def datagram(self) -> tuple[bytes, tuple[str, int], str]:
        kind = self.rng.choice(self.kinds)
        addr = SENDER if self.rng.random() < self.spoofed else self.rng.choice(self.others)
        return kind(), addr, kind.__name__

    def _seen(self) -> bytes:
        return self.rng.choice(self.history)

    def noise(self) -> bytes:
        return self.rng.randbytes(self.rng.choice([0, 1, 2, 3, 4, 20, 55, 200, 1500, self.rng.randrange(2000)]))

    def flip(self) -> bytes:
        data = bytearray(self._seen())
        for _ in range(self.rng.randint(1, 8)):
            data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)
        return bytes(data)

    def resize(self) -> bytes:
        data = self._seen()
        cut = self.rng.randrange(len(data) + 1)
        return data[:cut] if self.rng.random() < 0.5 else data + self.rng.randbytes(self.rng.randint(1, 64))

    def rewrite_header(self) -> bytes:
        label = self.rng.choice([0xFFFF, self.rng.randrange(0x10000), self.rng.randrange(40)])
        return SegmentHeader(self.rng.randrange(256), label).pack(self._seen()[HEADER_SIZE:])

    def replay(self) -> bytes:
        return self._seen()

    def duplicate_latest(self) -> bytes:
        return self.history[-1]

    def _latest_segment(self) -> tuple[int, int, bytes]:
        counter, segments = self.stream.latest
        label = self.rng.randrange(len(segments))
        return counter, label, segments[label]

    def made_up_gop(self) -> bytes:
        """A real segment payload under a random GOP number: the flood of new GOP numbers."""
        _, label, payload = self._latest_segment()
        return SegmentHeader(self.rng.randrange(256), label).pack(payload)

    def descriptor_field(self) -> bytes:
        """A well-formed descriptor of the stream with one field randomised (the counter: a high bit
        flipped, keeping it consistent with the header's GOP number)."""
        latest = self.stream.base.for_gop(self.stream.latest[0])
        name, value = self.rng.choice([
            ("session_id", self.rng.getrandbits(64)),
            ("gop_counter", latest.gop_counter ^ 1 << self.rng.randrange(8, 32)),
            ("width", self.rng.randrange(1, 65536)),
            ("flags", self.rng.randrange(256)),
            ("capture_time_us", self.rng.getrandbits(63)),
        ])  # fmt: skip
        try:
            return dataclasses.replace(latest, **{name: value}).datagram()
        except (WireError, ValueError):
            return self.noise()

    def sealed_forgery(self) -> bytes:
        """A real sealed datagram with its clear fields or tag changed."""
        data = bytearray(self._seen())
        where = self.rng.choice(["tag", "sequence", "session", "header"])
        if where == "tag":
            data[-1 - self.rng.randrange(16)] ^= 1 << self.rng.randrange(8)
        elif where == "sequence" and len(data) >= HEADER_SIZE + SEAL_FIELDS.size:
            session, sequence = SEAL_FIELDS.unpack_from(data, HEADER_SIZE)
            SEAL_FIELDS.pack_into(data, HEADER_SIZE, session, (sequence + self.rng.randint(1, 10**6)) % (1 << 32))
        elif where == "session" and len(data) >= HEADER_SIZE + SEAL_FIELDS.size:
            data[HEADER_SIZE + self.rng.randrange(8)] ^= 1 << self.rng.randrange(8)
        else:
            data[self.rng.randrange(HEADER_SIZE)] ^= 1 << self.rng.randrange(8)
        return bytes(data)

    def wrong_key(self) -> bytes:
        """A real segment sealed under another key (with the stream's own session id)."""
        assert self.wrong_sealer is not None
        counter, label, payload = self._latest_segment()
        return self.wrong_sealer.seal(SegmentHeader(counter % 256, label).pack(payload))


@dataclass
class FuzzReport:
    datagrams: int = 0
    attack_datagrams: int = 0
    valid_datagrams: int = 0
    attacks_by_kind: Counter[str] = field(default_factory=Counter)
    exceptions: int = 0
    first_exception: str = ""
    attacks_opened: int = 0  # sealed: attacker datagrams that authenticated (must be 0)
    gops_sent: int = 0
    gops_out: int = 0  # of the stream's session, sent ones, in counter order
    gops_out_with_data: int = 0  # not concealed
    gops_out_made_up: int = 0  # released GOPs the sender never sent (flooded GOP numbers)
    gops_out_genuine: int = 0  # every segment present and exactly what was sent
    gops_out_of_order: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    seconds: float = 0.0
    invalid_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def rss_growth_mb(self) -> float:
        return round(self.rss_end_mb - self.rss_start_mb, 2)

    def passed(self, protected: bool) -> bool:
        """``protected``: sealed, or nothing spoofed, so every GOP must come out genuine."""
        if self.exceptions or self.rss_growth_mb >= RSS_LIMIT_MB or self.gops_out_of_order:
            return False
        if protected:
            return self.attacks_opened == 0 and self.gops_out_genuine == self.gops_sent
        return self.gops_out >= 0.9 * self.gops_sent

    def as_dict(self) -> dict[str, object]:
        document = dataclasses.asdict(self)  # a Counter does not survive asdict
        return {**document, "attacks_by_kind": dict(self.attacks_by_kind), "rss_growth_mb": self.rss_growth_mb}


class ReceivePath:
    """What the receiving application does with a datagram before decoding, on a virtual clock."""

    def __init__(self, key: bytes | None) -> None:
        config = CONFIGS["small-c48"]
        own = f"{MODEL}@{MODEL_HASH.hex()}"
        self.opener = None if key is None else DatagramOpener(key)
        self.admission = StreamAdmission(DEFAULT_SEED, {own: config}, own)
        self.buffer = GopBuffer(sources=SourcePolicy(lock=True), guarded=True)

    def push(self, datagram: bytes, addr: tuple[str, int], now: float) -> list[ReleasedGop] | None:
        """The GOPs released, or None when the datagram was dropped before the buffer."""
        session_id = None
        if self.opener is not None:
            opened = self.opener.open(datagram)
            if opened is None:
                return None
            datagram, session_id = opened
        if not self.admission.admit(datagram, addr, followed=addr == self.buffer.source):
            return None
        return self.buffer.push(datagram, addr, now, session_id)

    def invalid_by_reason(self) -> dict[str, int]:
        reasons = self.buffer.stats.invalid_by_reason + self.admission.refused_by_reason
        if self.opener is not None:
            reasons += self.opener.dropped_by_reason
        return dict(sorted(reasons.items()))


def fuzz(
    datagrams: int, seed: int = 1, sealed: bool = False, attack_share: float = 0.9, spoofed: float = 0.5
) -> FuzzReport:
    """Push ``datagrams`` datagrams, ``attack_share`` of them from the attacker (``spoofed`` of those from the
    sender's address), through the receive path."""
    rng = random.Random(seed)
    key = rng.randbytes(KEY_BYTES) if sealed else None
    stream = ValidStream(key, np.random.default_rng(seed))
    attacker = Attacker(rng, stream, sealed, spoofed)
    path = ReceivePath(key)
    report = FuzzReport()
    gop_s = stream.base.gop_duration_s
    counter, last_out = 0, -1
    queue: list[bytes] = []
    started = time.perf_counter()

    def collect(released: list[ReleasedGop] | None) -> None:
        nonlocal last_out
        for gop in released or []:
            if gop.descriptor.session_id != stream.base.session_id:
                continue
            if gop.counter >= counter:
                report.gops_out_made_up += 1
                continue
            report.gops_out_of_order += gop.counter <= last_out
            last_out = gop.counter
            report.gops_out += 1
            report.gops_out_with_data += not gop.concealed
            sent = stream.sent.pop(gop.counter, None)
            report.gops_out_genuine += sent is not None and dict(enumerate(sent)) == dict(gop.payloads)

    while report.datagrams < datagrams:
        if not queue:
            queue = stream.gop(counter)
            report.gops_sent += 1
            counter += 1
        now = (counter - 1 + 0.8 * (1 - len(queue) / (stream.packetizer.n_segments + DESCRIPTOR_COPIES))) * gop_s
        attack = bool(attacker.history) and rng.random() < attack_share
        if attack:
            datagram, addr, kind = attacker.datagram()
            report.attacks_by_kind[kind] += 1
        else:
            datagram, addr = queue.pop(0), SENDER
            attacker.remember(datagram)
        opened_before = path.opener.opened if path.opener is not None else 0
        try:
            collect(path.push(datagram, addr, now))
        except Exception:  # noqa: BLE001 - counting what escapes is the point
            report.exceptions += 1
            report.first_exception = report.first_exception or traceback.format_exc()
        if attack and path.opener is not None:
            report.attacks_opened += path.opener.opened - opened_before
        report.datagrams += 1
        report.attack_datagrams += attack
        report.valid_datagrams += not attack
        if report.datagrams == min(20_000, datagrams // 10):
            report.rss_start_mb = rss_mb()  # after warm-up: caches, history and windows are full
    for datagram in queue:  # the last GOP goes out whole, then every pending GOP is released
        collect(path.push(datagram, SENDER, (counter - 0.1) * gop_s))
        report.valid_datagrams += 1
    collect(path.buffer.poll(float("inf")))
    report.rss_end_mb = rss_mb()
    report.seconds = round(time.perf_counter() - started, 1)
    report.invalid_by_reason = path.invalid_by_reason()
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datagrams", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sealed", action="store_true", help="seal the stream with a key; count accepted forgeries")
    p.add_argument("--spoofed", type=float, default=0.5, help="share of attacker datagrams from the sender's address")
    p.add_argument("--json", type=Path, help="write the report here")
    args = p.parse_args(argv)
    report = fuzz(args.datagrams, args.seed, args.sealed, spoofed=args.spoofed)
    document = report.as_dict()
    print(json.dumps(document, indent=2, default=str))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    passed = report.passed(args.sealed or args.spoofed == 0)
    print("PASS" if passed else "FAIL", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
