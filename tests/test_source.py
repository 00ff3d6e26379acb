"""Source handling (--accept any|first|HOST): who is followed, who is ignored, and when a newcomer takes over."""

from __future__ import annotations

import logging
import socket

import pytest
from test_gopbuffer import ADDR, GOP_S, OTHER_ADDR, FakeSender, assert_payloads_match, counters, push_all

from mstvsc_stream.net.gopbuffer import GopBuffer, ReleasedGop
from mstvsc_stream.net.sources import SourcePolicy

SILENCE_S = 0.5
LOCKED = SourcePolicy(lock=True, silence_s=SILENCE_S)


def stream(sender: FakeSender, first: int, last: int, addr: object, buffer: GopBuffer, session_id: int | None = None
           ) -> list[ReleasedGop]:  # fmt: skip
    """GOPs ``first..last`` of ``sender``, each GOP's datagrams at its own time (counter * GOP duration)."""
    return [
        gop for counter in range(first, last + 1) for datagram in sender.gop(counter)
        for gop in buffer.push(datagram, addr, counter * GOP_S, session_id)
    ]  # fmt: skip


def test_policies_parse_and_hosts_match_any_port_and_mapped_addresses() -> None:
    assert SourcePolicy.parse("any") == SourcePolicy(lock=False)
    assert SourcePolicy.parse("first", 2.0) == SourcePolicy(lock=True, silence_s=2.0)
    host = SourcePolicy.parse("127.0.0.1")
    assert host.lock and host.hears(("127.0.0.1", 1)) and host.hears(("::ffff:127.0.0.1", 2, 0, 0))
    assert not host.hears(("127.0.0.2", 1)) and SourcePolicy.parse("first").hears(("10.1.2.3", 9))


@pytest.mark.parametrize(("listen", "accept"), [("::1", "10.0.0.1"), ("127.0.0.1", "::1"), ("0.0.0.0", "fe80::1")])
def test_an_accepted_host_the_listening_socket_can_never_hear_is_refused(listen: str, accept: str) -> None:
    with pytest.raises(ValueError, match=rf"--accept {accept}: a receiver listening on IPv. address {listen} never"):
        SourcePolicy.parse(accept).check_listen(listen)


@pytest.mark.parametrize(("listen", "accept"), [("::", "10.0.0.1"), ("", "::1"), ("127.0.0.1", "10.0.0.1"),
                                                ("::1", "::1"), ("localhost", "10.0.0.1")])
def test_an_accepted_host_of_a_family_the_socket_may_hear_passes(listen: str, accept: str) -> None:
    SourcePolicy.parse(accept).check_listen(listen)
    SourcePolicy.parse("first").check_listen(listen)


def test_recv_refuses_an_unhearable_accept_in_one_line(capsys: pytest.CaptureFixture) -> None:
    from mstvsc_stream.cli.recv import main

    assert main(["--listen", "[::1]:0", "--accept", "10.0.0.1"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--accept 10.0.0.1" in lines[0] and "IPv6" in lines[0], lines


def test_a_host_that_does_not_resolve_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object, **__: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(ValueError, match=r"--accept 'nowhere': not any, first, or a host") as caught:
        SourcePolicy.parse("nowhere")
    assert "\n" not in str(caught.value)


def test_the_first_sender_is_followed_and_a_second_is_ignored_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(sources=LOCKED, guarded=True)
    released = []
    with caplog.at_level(logging.INFO):
        for counter in range(12):
            released += stream(first, counter, counter, ADDR, buffer)
            released += stream(second, counter, counter, OTHER_ADDR, buffer)
    released += buffer.poll(float("inf"))
    assert counters(released) == list(range(12)) and {gop.descriptor.session_id for gop in released} == {1}
    assert_payloads_match(first, released)
    assert buffer.stats.invalid_by_reason["second_source"] == 12 and buffer.stats.takeovers == 0
    lines = [r.getMessage() for r in caplog.records if "second source" in r.getMessage()]
    assert len(lines) == 1 and "('127.0.0.1', 40001)" in lines[0] and "0000000000000002" in lines[0]


def test_a_restarted_sender_on_a_new_port_takes_over_once_the_old_one_is_silent() -> None:
    """The newcomer starts at once after the old sender's last GOP; its datagrams are held until the old
    session has been silent for SILENCE_S, then followed from its first GOP."""
    old, new = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(sources=LOCKED, guarded=True)
    released = stream(old, 0, 9, ADDR, buffer)
    released += stream(new, 10, 20, OTHER_ADDR, buffer)  # counters go on with the clock, from 10 (t = 1.33 s)
    released += buffer.poll(float("inf"))
    old_gops = [gop for gop in released if gop.descriptor.session_id == 1]
    new_gops = [gop for gop in released if gop.descriptor.session_id == 2]
    assert counters(old_gops) == list(range(10)) and counters(new_gops) == list(range(10, 21))
    assert all(len(gop.payloads) == new.packetizer.n_segments for gop in new_gops), "held segments were replayed"
    assert_payloads_match(new, new_gops)
    assert buffer.stats.takeovers == 1 and buffer.stats.sessions == 2


def test_the_same_session_from_a_new_address_is_followed_after_silence() -> None:
    """NAT rebinding: same session id, new port; no restart, the counters go on."""
    sender, buffer = FakeSender(), GopBuffer(sources=LOCKED, guarded=True)
    released = stream(sender, 0, 5, ADDR, buffer) + stream(sender, 6, 15, OTHER_ADDR, buffer)
    released += buffer.poll(float("inf"))
    assert counters(released) == list(range(16)) and buffer.stats.sessions == 1 and buffer.stats.takeovers == 1
    assert buffer.source == OTHER_ADDR
    assert all(len(gop.payloads) == sender.packetizer.n_segments for gop in released[6:])


def test_a_host_policy_never_hears_other_hosts() -> None:
    sender, stranger = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(sources=SourcePolicy(hosts=frozenset({"127.0.0.1"}), lock=True), guarded=True)
    assert stream(stranger, 0, 3, ("10.0.0.9", 5000), buffer) == []
    released = stream(sender, 0, 3, ("127.0.0.1", 5555), buffer) + buffer.poll(float("inf"))
    assert counters(released) == [0, 1, 2, 3] and buffer.held_orphans == 0
    assert buffer.stats.invalid_by_reason == {"foreign_source": 4 * (1 + sender.packetizer.n_segments)}


def test_any_follows_the_newest_session_at_once() -> None:
    old, new = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(guarded=True)
    released = stream(old, 0, 3, ADDR, buffer) + stream(new, 4, 5, OTHER_ADDR, buffer)
    followed = [(gop.descriptor.session_id, gop.counter) for gop in released]
    assert followed == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 4), (2, 5)]


def test_sealed_segments_must_belong_to_the_session_followed() -> None:
    """A sealed segment of another session is never placed: held, in case that session's descriptor follows
    (a restart), or dropped as stale if that session is over."""
    sender, buffer = FakeSender(session_id=1), GopBuffer(sources=LOCKED, guarded=True)
    stream(sender, 0, 1, ADDR, buffer, session_id=1)
    segment = sender.segments(2)[0]
    assert buffer.push(segment, ADDR, 2 * GOP_S, session_id=99) == [] and buffer.held_orphans == 1
    descriptor = sender.descriptor(2)
    assert buffer.push(descriptor, ADDR, 2 * GOP_S, session_id=99) == []
    assert buffer.stats.invalid_by_reason == {"descriptor_inconsistent": 1}
    assert counters(push_all(buffer, sender.gop(2), now=2 * GOP_S, addr=ADDR)) == [2]


def test_a_newcomer_that_has_finished_before_the_silence_is_over_is_still_followed() -> None:
    old, new = FakeSender(session_id=1), FakeSender(session_id=2)
    buffer = GopBuffer(sources=LOCKED, guarded=True)
    stream(old, 0, 3, ADDR, buffer)
    early = [gop for d in new.gop(0) + new.gop(1) for gop in buffer.push(d, OTHER_ADDR, 4 * GOP_S)]
    assert early == [] and buffer.next_deadline() == pytest.approx(3 * GOP_S + SILENCE_S)
    released = buffer.poll(3 * GOP_S + SILENCE_S)
    assert [(gop.descriptor.session_id, gop.counter) for gop in released] == [(2, 0), (2, 1)]
    assert buffer.stats.takeovers == 1 and all(len(gop.payloads) == new.packetizer.n_segments for gop in released)
    assert_payloads_match(new, released)
