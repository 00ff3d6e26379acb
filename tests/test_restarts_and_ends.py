"""Where a stream begins and ends: a sender restarting behind one address, end flags and who may send
them, sessions that must not come back, liveness, and what keeps ``--idle-exit`` from firing."""

from __future__ import annotations

import asyncio
import random
import socket

import numpy as np
import pytest
from test_gopbuffer import ADDR, GOP_S, OTHER_ADDR, FakeSender, assert_payloads_match, counters

from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.gopbuffer import GopBuffer, ReleasedGop
from mstvsc_stream.net.sources import SourcePolicy
from mstvsc_stream.pipeline.receiver import Receiver, ReceiverConfig

pytestmark = pytest.mark.timeout(60)

SILENCE_S = 0.5
LOCKED = SourcePolicy(lock=True, silence_s=SILENCE_S)


def gop_at(sender: FakeSender, counter: int, start: float, end: bool = False) -> list[tuple[float, bytes]]:
    """A GOP's datagrams as a sender paces them from ``start``: over a quarter of its interval."""
    datagrams = sender.gop(counter, end)
    return [(start + 0.25 * GOP_S * k / len(datagrams), d) for k, d in enumerate(datagrams)]


def push_timed(
    buffer: GopBuffer, arrivals: list[tuple[float, bytes]], addr: object = ADDR, session_id: int | None = None
) -> list[ReleasedGop]:
    return [gop for at, datagram in arrivals for gop in buffer.push(datagram, addr, at, session_id)]


def sessions_and_counters(released: list[ReleasedGop]) -> list[tuple[int, int]]:
    return [(gop.descriptor.session_id, gop.counter) for gop in released]


# --- 3. a sender restarting behind one address ---------------------------------------------------------


@pytest.mark.parametrize("sealed", [False, True])
@pytest.mark.parametrize("new_start", [0, 100, 200, 1001])
def test_a_new_session_from_the_followed_address_replaces_the_old_one_at_once(sealed: bool, new_start: int) -> None:
    """Old session at GOP 1000; the restarted sender (a relay, a NAT keeping the port) starts at once from
    the same address, its first descriptor lost: its early segments are held and replayed under its own
    counter, the old session's pending GOPs are played out, and no GOP is made up in between."""
    old, new = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(sources=LOCKED, guarded=True)
    released = []
    for counter in range(990, 1001):
        released += push_timed(buffer, gop_at(old, counter, counter * GOP_S), session_id=1 if sealed else None)
    start = 1001 * GOP_S
    for k in range(4):
        arrivals = gop_at(new, new_start + k, start + k * GOP_S)
        if k == 0:
            (_, descriptor), *segments = arrivals
            arrivals = segments[:5] + [(segments[4][0], descriptor)] + segments[5:]  # the leading copy was lost
        released += push_timed(buffer, arrivals, session_id=2 if sealed else None)
    released += buffer.poll(float("inf"))
    expected = [(1, c) for c in range(990, 1001)] + [(2, c) for c in range(new_start, new_start + 4)]
    assert sessions_and_counters(released) == expected
    new_gops = [gop for gop in released if gop.descriptor.session_id == 2]
    assert all(len(gop.payloads) == new.packetizer.n_segments for gop in new_gops), "early segments replayed"
    assert_payloads_match(new, new_gops)
    assert_payloads_match(old, [gop for gop in released if gop.descriptor.session_id == 1])
    assert (buffer.stats.sessions, buffer.stats.takeovers) == (2, 0)


def test_a_new_session_of_another_geometry_keeps_its_early_segments() -> None:
    """A sender that changes its frame size starts a new session from the same address: its segments that
    arrive before its descriptor do not fit the old geometry, and are replayed once it is known."""
    old, new = FakeSender(session_id=1), FakeSender(session_id=2, n_elements=480)
    buffer = GopBuffer(sources=LOCKED, guarded=True)
    released = []
    for counter in range(5):
        released += push_timed(buffer, gop_at(old, counter, counter * GOP_S))
    (at, descriptor), *segments = gop_at(new, 5, 5 * GOP_S)
    released += push_timed(buffer, segments[:6] + [(at, descriptor)] + segments[6:])
    released += buffer.poll(float("inf"))
    assert sessions_and_counters(released) == [(1, c) for c in range(5)] + [(2, 5)]
    assert len(released[-1].payloads) == new.packetizer.n_segments
    assert_payloads_match(new, released[-1:])


def test_another_address_takes_over_only_after_silence_from_the_followed_one() -> None:
    old, other = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(sources=LOCKED, guarded=True)
    released = []
    for counter in range(6):
        released += push_timed(buffer, gop_at(old, counter, counter * GOP_S))
        released += push_timed(buffer, gop_at(other, counter, counter * GOP_S), addr=OTHER_ADDR)
    assert {gop.descriptor.session_id for gop in released} == {1} and buffer.stats.takeovers == 0
    assert buffer.poll(6 * GOP_S) == [] and buffer.stats.takeovers == 0
    released += buffer.poll(6 * GOP_S + SILENCE_S)
    assert buffer.stats.takeovers == 1 and buffer.descriptor is not None and buffer.descriptor.session_id == 2


# --- 6. liveness: any datagram of the followed session -------------------------------------------------


def test_a_session_whose_descriptors_are_lost_is_alive_while_its_segments_arrive() -> None:
    """At 90 % loss a live session often goes longer than --source-timeout without a descriptor; its
    segments keep it followed, and a second sender waits."""
    sender, other = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(sources=LOCKED, guarded=True)
    released = push_timed(buffer, gop_at(sender, 0, 0.0))
    for counter in range(1, 12):  # 1.5 s of segments only, while the other sender's descriptors arrive
        at = counter * GOP_S
        released += push_timed(buffer, [(at, d) for d in sender.segments(counter)])
        released += buffer.push(other.descriptor(counter), OTHER_ADDR, at)
    released += buffer.poll(12 * GOP_S)
    assert buffer.stats.takeovers == 0 and {gop.descriptor.session_id for gop in released} == {1}
    assert counters(released) == list(range(12))
    assert buffer.stats.invalid_by_reason["second_source"] == 11


# --- 1. who may end a stream ---------------------------------------------------------------------------


def ended_stream_attempts(buffer: GopBuffer, sender: FakeSender, forged: list[tuple[int, object]]) -> list[ReleasedGop]:
    """12 GOPs of ``sender``; after GOP 6, end-flagged descriptors ``(counter, address)`` of its session."""
    released = []
    for counter in range(12):
        released += push_timed(buffer, gop_at(sender, counter, counter * GOP_S))
        if counter == 6:
            at = 6.5 * GOP_S
            for forged_counter, addr in forged:
                released += buffer.push(sender.descriptor(forged_counter, end=True), addr, at)
        released += buffer.poll((counter + 0.9) * GOP_S)
        assert not buffer.finished, f"ended after GOP {counter}"
    return released + buffer.poll(float("inf"))


@pytest.mark.parametrize(
    "policy", [LOCKED, SourcePolicy(hosts=frozenset({"127.0.0.1"}), lock=True), SourcePolicy()], ids=str
)
def test_end_flags_from_other_hosts_or_for_old_gops_end_nothing(policy: SourcePolicy) -> None:
    sender = FakeSender()
    forged = [(3, ("10.9.9.9", 5000)), (6, ("10.9.9.9", 5000)), (6, OTHER_ADDR), (3, ADDR), (5, ADDR)]
    released = ended_stream_attempts(GopBuffer(sources=policy, guarded=True), sender, forged)
    assert counters(released) == list(range(12)) and {gop.descriptor.session_id for gop in released} == {1}
    assert_payloads_match(sender, released)


@pytest.mark.parametrize("flagged", [6, 7, 9])
def test_a_forged_end_flag_for_the_newest_gop_or_a_later_one_is_cancelled_by_the_next_gop(flagged: int) -> None:
    """From the sender's own address (plain: a spoofer), for the newest GOP or one still to come: the
    stream goes on within a GOP duration, so it is not over."""
    sender = FakeSender()
    released = ended_stream_attempts(GopBuffer(sources=LOCKED, guarded=True), sender, [(flagged, ADDR)])
    assert counters(released) == list(range(12))


@pytest.mark.parametrize("own_copy", [False, True], ids=["after_the_gop", "on_its_own_descriptor"])
def test_the_real_end_flag_ends_the_stream_one_gop_duration_later(own_copy: bool) -> None:
    """A sender flags its last GOP after sending it (or, another sender, on that GOP's own descriptor,
    before its segments: then nothing newer than the GOP after the newest may come for two GOPs)."""
    sender, buffer = FakeSender(), GopBuffer(sources=LOCKED, guarded=True, playout_margin_s=0.05)
    released = []
    for counter in range(4):
        released += push_timed(buffer, gop_at(sender, counter, counter * GOP_S, end=own_copy and counter == 3))
    if own_copy:
        due = 3 * GOP_S + 2 * GOP_S + 0.05
    else:
        released += buffer.push(sender.descriptor(3, end=True), ADDR, 3.5 * GOP_S)
        due = 3.5 * GOP_S + GOP_S + 0.05
    assert not buffer.finished and buffer.next_deadline() == pytest.approx(due)
    released += buffer.poll(due)
    assert buffer.finished and counters(released) == [0, 1, 2, 3]


class StubCodec:
    """Geometry of FakeSender's stream; decodes to grey frames (the receiver's path, not a model)."""

    model_id = "test-model@0000000000000000"
    gop = 4

    def latent_length(self, height: int, width: int) -> int:
        return 250

    def encode(self, frames: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def decode(self, codes: np.ndarray, received: np.ndarray, height: int, width: int) -> np.ndarray:
        return np.full((4, height, width, 3), 128, np.uint8)


def test_the_receiver_ignores_an_end_flag_from_another_host_for_a_released_gop() -> None:
    """The measured attack: a descriptor with the followed session id, an already released counter and the
    end flag, from a host --accept excludes, ended a 96-frame stream after 4 frames."""

    async def scenario() -> str:
        sender = FakeSender()
        receiver = Receiver(StubCodec(), ReceiverConfig("127.0.0.1:0", accept=SourcePolicy.parse("127.0.0.1")))
        for counter in range(24):
            for at, datagram in gop_at(sender, counter, counter * GOP_S):
                receiver._on_datagram(datagram, ADDR, at)
            if counter == 1:
                receiver._on_datagram(sender.descriptor(0, end=True), ("10.9.9.9", 5000), 1.5 * GOP_S)
                receiver._on_datagram(sender.descriptor(0, end=True), ADDR, 1.5 * GOP_S)
        return receiver.end_reason

    assert run(scenario()) == ""


# --- 2. sessions that ended or were replaced do not come back ------------------------------------------


@pytest.mark.parametrize("policy", [LOCKED, SourcePolicy()], ids=["first", "any"])
def test_an_ended_session_replayed_from_elsewhere_is_stale(policy: SourcePolicy) -> None:
    """--stay: after the end, copies of the stream's real datagrams from another address (after any
    silence) make no phantom stream; a new session is still followed at once."""
    sender, buffer = FakeSender(), GopBuffer(sources=policy, guarded=True)
    released = []
    for counter in range(6):
        released += push_timed(buffer, gop_at(sender, counter, counter * GOP_S, end=counter == 5))
    released += buffer.poll(8 * GOP_S)
    assert buffer.finished and counters(released) == list(range(6))
    replayed = []
    for counter in range(6):
        replayed += push_timed(buffer, gop_at(sender, counter, 3.0 + counter * GOP_S), addr=OTHER_ADDR)
    replayed += buffer.poll(10.0)
    assert replayed == [] and buffer.stats.invalid_by_reason["stale_session"] == 6
    newcomer = FakeSender(session_id=7)
    fresh = push_timed(buffer, gop_at(newcomer, 0, 11.0), addr=("127.0.0.1", 40002)) + buffer.poll(float("inf"))
    assert sessions_and_counters(fresh) == [(7, 0)] and not buffer.finished


def test_a_replaced_session_does_not_come_back_after_silence() -> None:
    old, new = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(sources=LOCKED, guarded=True)
    push_timed(buffer, gop_at(old, 0, 0.0))
    push_timed(buffer, gop_at(new, 0, GOP_S))  # the restart, same address
    back = push_timed(buffer, gop_at(old, 1, 5.0), addr=OTHER_ADDR) + buffer.poll(9.0)
    assert back == [] and buffer.descriptor is not None and buffer.descriptor.session_id == 2
    assert buffer.stats.invalid_by_reason["stale_session"] == 1


# --- 5. --idle-exit counts the followed stream only ---------------------------------------------------


def test_idle_exit_fires_while_junk_keeps_arriving() -> None:
    async def scenario() -> dict:
        sender = FakeSender()
        config = ReceiverConfig("127.0.0.1:0", idle_exit_s=0.4, duration_s=4.0)
        receiver = Receiver(StubCodec(), config)
        address = await receiver.start()
        receiving = asyncio.create_task(receiver.run())
        rng = random.Random(3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in sender.gop(0) + sender.gop(1):
                sock.sendto(datagram, (address.host, address.port))
            while not receiving.done():  # junk from the sender's own socket, every 20 ms
                sock.sendto(rng.randbytes(rng.randrange(40)), (address.host, address.port))
                await asyncio.sleep(0.02)
        return await receiving

    report = run(scenario())
    assert report["end_reason"] == "idle" and report["gops_released"] == 2 and report["invalid_datagrams"] > 10


def test_a_newcomer_waiting_when_the_stream_ends_is_followed_with_everything_it_sent() -> None:
    old, new = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(sources=LOCKED, guarded=True, playout_margin_s=0.05)
    released = []
    for counter in range(3):
        released += push_timed(buffer, gop_at(old, counter, counter * GOP_S))
    released += buffer.push(old.descriptor(2, end=True), ADDR, 2.5 * GOP_S)
    for counter in range(2):  # a new sender on another port starts before the end has held
        released += push_timed(buffer, gop_at(new, counter, 2.6 * GOP_S + counter * 0.01), addr=OTHER_ADDR)
    released += buffer.poll(2.5 * GOP_S + GOP_S + 0.05)
    assert sessions_and_counters(released) == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]
    assert all(len(gop.payloads) == new.packetizer.n_segments for gop in released[3:])
