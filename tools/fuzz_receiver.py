"""Fuzz the receiver's datagram path with a seeded mutation loop mixed into a valid stream.

The path is the receiving application's, without sockets or decoder: source filter -> [opening (sealed
streams)] -> admission -> GOP buffer (guarded, --accept first, as with --stay), on a virtual clock at 30
fps. A valid stream of ``mstvsc-small-c48`` GOPs at 320x240 (random codes; no weights needed) is sent in
sessions of :data:`SESSION_GOPS` GOPs from one address: every other session ends with the end flag and
the next sender starts there two GOPs later, the others are cut short by a sender restarting behind that
address at once (a relay, a NAT keeping the port) with counters from anywhere. Between its datagrams
come attacker datagrams: random bytes, bit flips, truncations and extensions of real datagrams,
rewritten headers, segments with made-up GOP numbers, replays of old datagrams and of earlier (ended or
replaced) sessions, and (plain) descriptors with one field changed, end flags for the stream, random
model ids and new session ids, or (sealed) forgeries with random tags, changed clear fields or another
key. A share of them (``--spoofed``, half by default) claim the stream's own address, the rest come from
a pool of others.

Checks: no exception escapes, RSS grows less than 20 MB, each session's GOPs come out in order; sealed,
or plain with nothing spoofed: not one attacker datagram is taken and every GOP of every session comes
out whole and genuine. Plain with spoofed datagrams nothing can tell a forgery from the sender's: a
spoofed new session id replaces the session at once, exactly as a sender restarting behind that address
does, and a spoofed segment lands in a GOP, so the report says how many GOPs came out, and genuine.

The sender's report path gets the same treatment (``--reports``): genuine receiver reports of a stream
with 10 % loss, every 100 ms, mixed with mutated and replayed reports, reflected segments and made-up
reports, into the sender's closed loop (report reader, ledger, controller). Checks: no exception, RSS,
the rate never leaves [floor, ceiling] and never grows faster than the controller's probe rate; sealed,
not one attacker report is accepted.

    python tools/fuzz_receiver.py --datagrams 1000000
    python tools/fuzz_receiver.py --datagrams 100000 --sealed
    python tools/fuzz_receiver.py --reports --datagrams 200000 [--sealed]
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
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.net.congestion import PROBE_GROWTH_PER_S
from mstvsc_stream.net.feedback import ReceptionLog, ReportSealer
from mstvsc_stream.net.gopbuffer import GopBuffer, ReleasedGop
from mstvsc_stream.net.opening import DatagramOpener
from mstvsc_stream.net.sources import SourcePolicy
from mstvsc_stream.pipeline.admission import StreamAdmission
from mstvsc_stream.pipeline.batching import end_of_input_datagrams, gop_datagrams, sending_labels
from mstvsc_stream.pipeline.closedloop import SenderLoop
from mstvsc_stream.wire import (
    DEFAULT_SEED,
    DESCRIPTOR_COPIES,
    FLAG_END_OF_INPUT,
    HEADER_SIZE,
    GopPacketizer,
    SegmentHeader,
    SessionDescriptor,
    WireError,
    new_session_id,
)
from mstvsc_stream.wire.report import ReceiverReport
from mstvsc_stream.wire.sealing import KEY_BYTES, SEAL_FIELDS, SEAL_OVERHEAD, Sealer, sealed_payload_size

MODEL = "mstvsc-small-c48"
MODEL_HASH = bytes(range(8))
SIZE = (320, 240)
FPS = 30.0
SENDER = ("192.0.2.1", 40000)
HISTORY = 4096  # valid datagrams remembered for replays and mutations (current session, and earlier ones)
SESSION_GOPS = 200  # GOPs per session of the valid stream (default)
SENT_KEPT = 512  # sent GOPs remembered until released: older ones can no longer come out (bounds this tool's memory)
RSS_LIMIT_MB = 20.0


def rss_mb() -> float:
    """Resident set size of this process (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass(frozen=True, slots=True)
class Timed:
    at: float  # virtual arrival time
    datagram: bytes
    closes_gop: bool  # the last datagram of a GOP (or of an end) of the valid stream


class ValidStream:
    """The sender: sessions of GOPs of random codes, each GOP's datagrams paced over 0.8 of its interval;
    see the module docstring for how sessions end or restart."""

    def __init__(self, key: bytes | None, rng: np.random.Generator, session_gops: int = SESSION_GOPS) -> None:
        config = CONFIGS["small-c48"]
        width, height = SIZE
        n_elements = config.latent_length(height, width)
        payload = sealed_payload_size(n_elements, None) if key is not None else None
        self.packetizer = GopPacketizer(n_elements, DEFAULT_SEED, payload)
        self.key = key
        self.base = SessionDescriptor(
            new_session_id(), 0, 0, width, height, int(FPS * 1000), config.gop, n_elements,
            self.packetizer.payload_size, self.packetizer.n_segments, self.packetizer.seed_fingerprint,
            MODEL, MODEL_HASH,
        )  # fmt: skip
        self.sealer = None if key is None else Sealer(key, self.base.session_id)
        self.rng = rng
        self.session_gops = session_gops
        self.sessions = [self.base.session_id]
        self.sent: dict[tuple[int, int], list[bytes]] = {}  # by session id and counter, until released
        self._sent_order: deque[tuple[int, int]] = deque()
        self.latest = (0, list[bytes]())  # the newest GOP's counter and segment payloads
        self.gops_sent = 0

    def restart(self, counter: int) -> None:
        """A new sender process at the same address: a new session id, counters from ``counter``."""
        self.base = dataclasses.replace(self.base, session_id=new_session_id(), gop_counter=counter)
        self.sessions.append(self.base.session_id)
        self.sealer = None if self.key is None else Sealer(self.key, self.base.session_id)

    def descriptor(self, counter: int) -> SessionDescriptor:
        return dataclasses.replace(self.base.for_gop(counter), capture_time_us=counter * 133_333)

    def gop(self, counter: int) -> list[bytes]:
        codes = self.rng.integers(-4, 4, self.packetizer.n_elements, dtype=np.int8)
        segments = self.packetizer.segments(codes)
        self.sent[self.base.session_id, counter] = segments
        self._sent_order.append((self.base.session_id, counter))
        if len(self._sent_order) > SENT_KEPT:
            self.sent.pop(self._sent_order.popleft(), None)
        self.latest = (counter, segments)
        self.gops_sent += 1
        return self._sealed(gop_datagrams(self.descriptor(counter), segments, range(len(segments)), DESCRIPTOR_COPIES))

    def end(self, last: int) -> list[bytes]:
        return self._sealed(end_of_input_datagrams(self.descriptor(last)))

    def _sealed(self, plain: list[bytes]) -> list[bytes]:
        return plain if self.sealer is None else [self.sealer.seal(d) for d in plain]

    def datagrams(self, restarts: random.Random) -> Iterator[Timed]:
        """The stream, forever: sessions that end (end flag, two GOPs of silence, a new sender) or are cut
        short by a restart behind the same address at once, alternately."""
        gop_s, at, counter = self.base.gop_duration_s, 0.0, 0
        while True:
            for _ in range(self.session_gops):
                datagrams = self.gop(counter)
                for k, datagram in enumerate(datagrams):
                    yield Timed(at + 0.8 * gop_s * k / len(datagrams), datagram, k == len(datagrams) - 1)
                at, counter = at + gop_s, counter + 1
            if len(self.sessions) % 2:
                ending = self.end(counter - 1)
                for k, datagram in enumerate(ending):
                    yield Timed(at - 0.15 * gop_s + 0.01 * gop_s * k, datagram, k == len(ending) - 1)
                at, counter = at + 2 * gop_s, 0
            else:
                counter = restarts.randrange(1 << 31)
            self.restart(counter)


class Attacker:
    """Seeded mutations of what it has seen, and inventions of its own."""

    def __init__(self, rng: random.Random, stream: ValidStream, sealed: bool, spoofed: float) -> None:
        self.rng = rng
        self.spoofed = spoofed
        self.stream = stream
        self.sealed = sealed
        self.history: list[bytes] = []  # the current session's datagrams
        self.earlier: list[bytes] = []  # datagrams of sessions that ended or were replaced
        self.history_session = stream.base.session_id
        self.others = [(f"198.51.100.{i % 250 + 1}", 1024 + i) for i in range(1000)]
        self.wrong_sealer = Sealer(secrets.token_bytes(KEY_BYTES), stream.base.session_id) if sealed else None
        self.kinds = [self.noise, self.flip, self.resize, self.rewrite_header, self.replay, self.duplicate_latest,
                      self.earlier_session]  # fmt: skip
        self.kinds += [self.sealed_forgery, self.wrong_key] if sealed else [
            self.made_up_gop, self.descriptor_field, self.end_flag, self.random_model, self.new_session]

    def remember(self, datagram: bytes) -> None:
        if self.stream.base.session_id != self.history_session:  # the sender restarted: keep the old session's
            self.history_session = self.stream.base.session_id
            for old in self.history:
                _keep(self.earlier, old, self.rng)
            self.history = []
        _keep(self.history, datagram, self.rng)

    def datagram(self) -> tuple[bytes, tuple[str, int], str]:
        kind = self.rng.choice(self.kinds)
        addr = SENDER if self.rng.random() < self.spoofed else self.rng.choice(self.others)
        return kind(), addr, kind.__name__

    def _seen(self) -> bytes:
        return self.rng.choice(self.history or self.earlier)

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
        return (self.history or self.earlier)[-1]

    def earlier_session(self) -> bytes:
        """A real datagram of a session that ended or was replaced: phantom streams after the end."""
        return self.rng.choice(self.earlier) if self.earlier else self._seen()

    def _latest_segment(self) -> tuple[int, int, bytes]:
        counter, segments = self.stream.latest
        label = self.rng.randrange(len(segments))
        return counter, label, segments[label]

    def _latest_descriptor(self) -> SessionDescriptor:
        return self.stream.descriptor(self.stream.latest[0])

    def made_up_gop(self) -> bytes:
        """A real segment payload under a random GOP number: the flood of new GOP numbers."""
        _, label, payload = self._latest_segment()
        return SegmentHeader(self.rng.randrange(256), label).pack(payload)

    def descriptor_field(self) -> bytes:
        """A well-formed descriptor of the stream with one field randomised (the counter: a high bit
        flipped, keeping it consistent with the header's GOP number)."""
        latest = self._latest_descriptor()
        name, value = self.rng.choice([
            ("session_id", self.rng.getrandbits(64)),
            ("gop_counter", latest.gop_counter ^ 1 << self.rng.randrange(8, 32)),
            ("width", self.rng.randrange(1, 65536)),
            ("flags", self.rng.randrange(256)),
            ("capture_time_us", self.rng.getrandbits(63)),
        ])  # fmt: skip
        return self._descriptor(latest, **{name: value})

    def end_flag(self) -> bytes:
        """The stream's own descriptor with the end flag, for an old, the newest or a coming GOP."""
        latest = self._latest_descriptor()
        counter = max(0, latest.gop_counter + self.rng.choice([-50, -3, -1, 0, 0, 1, 2, 5]))
        return self._descriptor(latest.for_gop(counter), flags=FLAG_END_OF_INPUT)

    def random_model(self) -> bytes:
        """The stream's descriptor naming a model nobody has installed (random weights hash, name)."""
        latest = self._latest_descriptor()
        name = self.rng.choice([MODEL, f"m{self.rng.getrandbits(32):x}"])
        return self._descriptor(latest, model_hash=self.rng.randbytes(8), model_name=name)

    def new_session(self) -> bytes:
        """The stream's descriptor under a new session id: a restart behind the sender's address when
        spoofed, a second sender otherwise."""
        return self._descriptor(self._latest_descriptor(), session_id=self.rng.getrandbits(64))

    def _descriptor(self, descriptor: SessionDescriptor, **changes: object) -> bytes:
        try:
            return dataclasses.replace(descriptor, **changes).datagram()
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


def _keep(memory: list[bytes], datagram: bytes, rng: random.Random) -> None:
    """Reservoir of at most :data:`HISTORY` datagrams."""
    if len(memory) < HISTORY:
        memory.append(datagram)
    else:
        memory[rng.randrange(HISTORY)] = datagram


@dataclass
class FuzzReport:
    datagrams: int = 0
    attack_datagrams: int = 0
    valid_datagrams: int = 0
    attacks_by_kind: Counter[str] = field(default_factory=Counter)
    exceptions: int = 0
    first_exception: str = ""
    attacks_taken: int = 0  # attacker datagrams placed in a GOP or followed (not dropped, counted or held)
    attacks_taken_by_kind: Counter[str] = field(default_factory=Counter)
    sessions_sent: int = 0
    sessions_followed: int = 0  # times the session whose GOPs come out changed (the stream's, and any forced on it)
    gops_sent: int = 0
    gops_out: int = 0  # of the stream's sessions, sent ones, in counter order within each session
    gops_out_with_data: int = 0  # not concealed
    gops_out_made_up: int = 0  # released GOPs of the stream's sessions that were never sent (flooded GOP numbers)
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
        if self.exceptions or self.rss_growth_mb >= RSS_LIMIT_MB:
            return False
        # Unprotected, a spoofer replaces sessions at will, and may bring back one replaced so long ago that
        # it is no longer remembered: order then holds only within each time a session is followed.
        return not protected or (
            self.attacks_taken == 0 and self.gops_out_genuine == self.gops_sent and not self.gops_out_of_order
        )

    def as_dict(self) -> dict[str, object]:
        document = dataclasses.asdict(self)  # a Counter does not survive asdict
        return {**document, "attacks_by_kind": dict(self.attacks_by_kind),
                "attacks_taken_by_kind": dict(self.attacks_taken_by_kind), "rss_growth_mb": self.rss_growth_mb}


class ReceivePath:
    """What the receiving application does with a datagram before decoding, on a virtual clock."""

    def __init__(self, key: bytes | None) -> None:
        config = CONFIGS["small-c48"]
        own = f"{MODEL}@{MODEL_HASH.hex()}"
        self.opener = None if key is None else DatagramOpener(key)
        self.admission = StreamAdmission(DEFAULT_SEED, {own: config}, own)
        self.buffer = GopBuffer(sources=SourcePolicy(lock=True), guarded=True)

    def push(self, datagram: bytes, addr: tuple[str, int], now: float) -> tuple[list[ReleasedGop], bool]:
        """The GOPs released, and whether the datagram was taken: not dropped, counted invalid or held."""
        if not self.buffer.hears(addr):
            return [], False
        session_id = None
        if self.opener is not None:
            opened = self.opener.open(datagram)
            if opened is None:
                return [], False
            datagram, session_id = opened
        if not self.admission.admit(datagram, addr, followed=addr == self.buffer.source):
            return [], False
        stats = self.buffer.stats
        before = (stats.invalid_datagrams, stats.segments_held, stats.segments_late, stats.descriptors_late)
        released = self.buffer.push(datagram, addr, now, session_id)
        if self.opener is not None and self.buffer.descriptor is not None:
            self.opener.follow(self.buffer.descriptor.session_id)
        after = (stats.invalid_datagrams, stats.segments_held, stats.segments_late, stats.descriptors_late)
        return released, after == before

    def invalid_by_reason(self) -> dict[str, int]:
        reasons = self.buffer.stats.invalid_by_reason + self.admission.refused_by_reason
        if self.opener is not None:
            reasons += self.opener.dropped_by_reason
        return dict(sorted(reasons.items()))


class Tally:
    """Counts what comes out of the buffer against what the valid stream sent, session by session."""

    def __init__(self, stream: ValidStream, report: FuzzReport) -> None:
        self.stream, self.report = stream, report
        self.last_out: dict[int, int] = {}  # of the stream's sessions (a few dozen)
        self.followed: int | None = None

    def __call__(self, released: list[ReleasedGop]) -> None:
        stream, report = self.stream, self.report
        for gop in released:
            session_id = gop.descriptor.session_id
            if session_id != self.followed:
                self.followed = session_id
                report.sessions_followed += 1
            if session_id not in stream.sessions:
                continue
            sent = stream.sent.pop((session_id, gop.counter), None)
            if sent is None and gop.counter > self.last_out.get(session_id, -1):
                report.gops_out_made_up += 1
                continue
            report.gops_out_of_order += gop.counter <= self.last_out.get(session_id, -1)
            self.last_out[session_id] = gop.counter
            report.gops_out += 1
            report.gops_out_with_data += not gop.concealed
            report.gops_out_genuine += sent is not None and dict(enumerate(sent)) == dict(gop.payloads)


def fuzz(
    datagrams: int, seed: int = 1, sealed: bool = False, attack_share: float = 0.9, spoofed: float = 0.5,
    session_gops: int = SESSION_GOPS,
) -> FuzzReport:
    """Push ``datagrams`` datagrams, ``attack_share`` of them from the attacker (``spoofed`` of those from the
    sender's address), through the receive path; the valid stream's sessions are ``session_gops`` long."""
    rng = random.Random(seed)
    key = rng.randbytes(KEY_BYTES) if sealed else None
    stream = ValidStream(key, np.random.default_rng(seed), session_gops)
    attacker = Attacker(rng, stream, sealed, spoofed)
    path = ReceivePath(key)
    report = FuzzReport()
    tally = Tally(stream, report)
    valid = stream.datagrams(random.Random(seed + 1))
    now = 0.0
    started = time.perf_counter()

    def push(datagram: bytes, addr: tuple[str, int], attack: str) -> None:
        try:
            released, taken = path.push(datagram, addr, now)
            tally(released)
            if attack and taken:
                report.attacks_taken += 1
                report.attacks_taken_by_kind[attack] += 1
        except Exception:  # noqa: BLE001 - counting what escapes is the point
            report.exceptions += 1
            report.first_exception = report.first_exception or traceback.format_exc()

    while report.datagrams < datagrams:
        attack = bool(attacker.history) and rng.random() < attack_share
        if attack:
            datagram, addr, kind = attacker.datagram()
            report.attacks_by_kind[kind] += 1
        else:
            timed = next(valid)
            now, datagram, addr, kind = timed.at, timed.datagram, SENDER, ""
            attacker.remember(datagram)
        push(datagram, addr, kind)
        report.datagrams += 1
        report.attack_datagrams += attack
        report.valid_datagrams += not attack
        if report.datagrams == min(20_000, datagrams // 10):
            report.rss_start_mb = rss_mb()  # after warm-up: caches, history and windows are full
    while not timed.closes_gop:  # the GOP being sent goes out whole, then every pending GOP is released
        timed = next(valid)
        now = timed.at
        push(timed.datagram, SENDER, "")
        report.valid_datagrams += 1
    tally(path.buffer.poll(float("inf")))
    report.gops_sent, report.sessions_sent = stream.gops_sent, len(stream.sessions)
    report.rss_end_mb = rss_mb()
    report.seconds = round(time.perf_counter() - started, 1)
    report.invalid_by_reason = path.invalid_by_reason()
    return report


@dataclass
class ReportFuzzReport:
    datagrams: int = 0
    attack_datagrams: int = 0
    genuine_reports: int = 0
    exceptions: int = 0
    first_exception: str = ""
    attacks_accepted: int = 0  # sealed: must be 0; plain: forged reports are indistinguishable
    genuine_accepted: int = 0
    rate_min_kbps: float = float("inf")
    rate_max_kbps: float = 0.0
    floor_kbps: float = 0.0
    ceiling_kbps: float = 0.0
    growth_violations: int = 0  # rate rose faster than the probe rate allows
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    refused_by_reason: dict[str, int] = field(default_factory=dict)

    def passed(self, sealed: bool) -> bool:
        bounded = self.floor_kbps <= self.rate_min_kbps and self.rate_max_kbps <= self.ceiling_kbps
        clean = not self.exceptions and not self.growth_violations and bounded
        return clean and self.rss_end_mb - self.rss_start_mb < RSS_LIMIT_MB and (not sealed or not self.attacks_accepted)


def fuzz_reports(datagrams: int, seed: int = 1, sealed: bool = False, attack_share: float = 0.9) -> ReportFuzzReport:
    """Push ``datagrams`` datagrams at the sender's closed loop: genuine reports every 100 ms of a virtual
    clock, ``attack_share`` of all datagrams from the attacker."""
    rng = random.Random(seed)
    key = rng.randbytes(KEY_BYTES) if sealed else None
    stream = ValidStream(key, np.random.default_rng(seed))
    base = stream.base
    loop = SenderLoop(None, key, SEAL_OVERHEAD if sealed else 0)
    loop.follow(base)
    reception = ReceptionLog()
    reception.follow(base.session_id, base.gop_duration_s)
    sealer = None if key is None else ReportSealer(key, new_session_id())
    report = ReportFuzzReport(floor_kbps=loop.controller.floor_kbps, ceiling_kbps=loop.controller.ceiling_kbps)
    seen: list[bytes] = []
    now, next_gop, next_report, counter = 0.0, 0.0, 0.1, 0
    allowed = loop.controller.ceiling_kbps
    step = 0.1 / (1 / (1 - attack_share))  # virtual time per datagram: one genuine report per 100 ms on average

    def attack() -> bytes:
        kind = rng.randrange(6)
        if kind == 0 or not seen:
            return rng.randbytes(rng.choice([0, 2, 3, 20, 41, 99, 300]))
        original = rng.choice(seen)
        if kind == 1:
            return original  # a replay
        if kind == 2:
            data = bytearray(original)
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return bytes(data)
        if kind == 3:
            return SegmentHeader(counter % 256, rng.randrange(base.n_segments)).pack(rng.randbytes(189))  # reflected
        made_up = ReceiverReport(
            base.session_id if rng.random() < 0.8 else rng.getrandbits(64), rng.getrandbits(32), counter % 256,
            rng.randrange(base.n_segments), rng.choice([0, rng.getrandbits(32)]), rng.getrandbits(20),
            rng.getrandbits(20), rng.randrange(256), (counter - rng.randrange(32)) % 256,
            tuple(rng.choice([0, base.n_segments, 0xFFFE]) for _ in range(rng.randrange(33))),
        ).datagram()  # fmt: skip
        return made_up if sealer is None or kind == 4 else sealer._sealer.seal(made_up)  # noqa: SLF001 - stale id

    while report.datagrams < datagrams:
        now += step
        while now >= next_gop + 0.1:  # the sender sent a GOP (all in by now); 10 % of its segments are lost
            descriptor = base.for_gop(counter)
            count = loop.segments_for(descriptor, next_gop)
            for label in sending_labels(base.n_segments, count, counter):
                loop.sent(SegmentHeader(counter % 256, label).pack(), next_gop + label * 0.005)
                if rng.random() >= 0.1:
                    reception.segment(counter % 256, label, next_gop + label * 0.005 + 0.02)
            counter += 1
            next_gop += base.gop_duration_s
        allowed *= (1 + PROBE_GROWTH_PER_S) ** step  # the rate at the last accepted report, grown at the probe rate
        genuine = now >= next_report
        if genuine:
            next_report += 0.1
            built = reception.report(now, 0)
            if built is None:
                continue
            datagram = built.datagram() if sealer is None else sealer.seal(built.datagram())
            seen.append(datagram)
            del seen[:-64]
            report.genuine_reports += 1
        else:
            datagram = attack()
        accepted_before = loop.reports_received
        try:
            loop.on_datagram(datagram, SENDER, now)
        except Exception:  # noqa: BLE001 - counting what escapes is the point
            report.exceptions += 1
            report.first_exception = report.first_exception or traceback.format_exc()
        accepted = loop.reports_received - accepted_before
        if genuine:
            report.genuine_accepted += accepted
        else:
            report.attacks_accepted += accepted
            report.attack_datagrams += 1
        rate = loop.controller.rate_kbps(now)
        report.growth_violations += rate > allowed * (1 + 1e-9)
        if accepted:  # the controller grows from its rate at the last report it took
            allowed = rate
        report.rate_min_kbps, report.rate_max_kbps = min(report.rate_min_kbps, rate), max(report.rate_max_kbps, rate)
        report.datagrams += 1
        if report.datagrams == min(20_000, datagrams // 10):
            report.rss_start_mb = rss_mb()
    report.rss_end_mb = rss_mb()
    report.refused_by_reason = loop.reader.by_reason()
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datagrams", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sealed", action="store_true", help="seal the stream with a key; count accepted forgeries")
    p.add_argument("--spoofed", type=float, default=0.5, help="share of attacker datagrams from the sender's address")
    p.add_argument("--reports", action="store_true", help="fuzz the sender's report path instead")
    p.add_argument("--json", type=Path, help="write the report here")
    args = p.parse_args(argv)
    if args.reports:
        result = fuzz_reports(args.datagrams, args.seed, args.sealed)
        print(json.dumps(dataclasses.asdict(result), indent=2, default=str))
        print("PASS" if result.passed(args.sealed) else "FAIL", file=sys.stderr)
        if args.json is not None:
            args.json.write_text(json.dumps(dataclasses.asdict(result), indent=2, default=str) + "\n")
        return 0 if result.passed(args.sealed) else 1
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
