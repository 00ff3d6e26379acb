"""Endpoints, the rate limiter and the UDP sender/receiver over real loopback sockets."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from mstvsc_stream.net.endpoint import Endpoint, EndpointError, is_multicast, parse_endpoint
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.ratelimit import RateLimiter
from mstvsc_stream.net.transport import DEFAULT_BURST_S, TIMER_SLACK_S, DatagramReceiver, DatagramSender

pytestmark = pytest.mark.timeout(30)

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
RUNNERS = [pytest.param(run, id="uvloop"), pytest.param(asyncio.run, id="asyncio")]


class Inbox:
    """Collects what a receiver hands over and lets a test wait for a count, bounded in time."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, tuple, float]] = []

    def __call__(self, data: bytes, addr: tuple, arrival: float) -> None:
        self.items.append((data, addr, arrival))

    async def wait_for(self, count: int, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.items) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    @property
    def payloads(self) -> list[bytes]:
        return [data for data, _, _ in self.items]


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:5000", Endpoint("127.0.0.1", 5000)), ("[::1]:6000", Endpoint("::1", 6000)),
     (":5000", Endpoint("", 5000)), ("localhost:0", Endpoint("localhost", 0)),
     ("[fe80::1%eth0]:7", Endpoint("fe80::1%eth0", 7)), ("239.1.2.3:65535", Endpoint("239.1.2.3", 65535))],
)
def test_parse_endpoint(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected
    assert parse_endpoint(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("5000", "not HOST:PORT"), ("host:", "port ''"), ("host:65536", "0 to 65535"), ("host:-1", "port '-1'"),
     ("::1:5000", "in brackets"), ("[nothost]:5", "not an IPv6 address"), ("[]:5", "not an IPv6 address")],
)
def test_parse_endpoint_errors_are_one_line(text: str, fragment: str) -> None:
    with pytest.raises(EndpointError, match=fragment) as info:
        parse_endpoint(text)
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "hint"),
    [("[::1:5000", "e.g. [::1]:5000"), ("::1:5000", "e.g. [::1]:5000"), ("[::1]", "has no port"),
     ("::1", "has no port"), ("fe80::1", "e.g. [fe80::1]:5000")],
)
def test_an_ipv6_endpoint_typo_gets_a_hint_that_parses(text: str, hint: str) -> None:
    """'[::1:5000' was answered 'e.g. [[::1]:5000', and '[::1]' (no port) 'e.g. [[:]:1]'."""
    with pytest.raises(EndpointError, match=re.escape(hint)) as info:
        parse_endpoint(text)
    example = str(info.value).rsplit("e.g. ", 1)[1]
    assert parse_endpoint(example).port > 0


@pytest.mark.parametrize(
    ("host", "expected"),
    [("224.0.0.1", True), ("239.255.255.255", True), ("223.255.255.255", False), ("240.0.0.1", False),
     ("ff02::1", True), ("ff0e::1%lo", True), ("fe80::1", False), ("::1", False), ("example.org", False)],
)
def test_is_multicast(host: str, expected: bool) -> None:
    assert is_multicast(host) is expected


def test_rate_limiter_spaces_datagrams_and_bounds_every_window() -> None:
    strict = RateLimiter(kbps=80.0)  # 10 kB/s: a 1000-byte datagram takes 0.1 s
    assert [strict.reserve(1000, 0.0) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    assert strict.reserve(1000, 5.0) == 5.0  # an idle link saves up nothing without a burst allowance

    bursty = RateLimiter(kbps=80.0, burst_s=0.25)
    starts = [bursty.reserve(1000, 0.0) for _ in range(10)]
    assert starts[:3] == [0.0, 0.0, 0.0] and starts[3] == pytest.approx(0.05)
    for first in range(10):
        for last in range(first, 10):  # bytes started in [starts[first], starts[last]]
            assert (last - first + 1) * 1000 <= 10_000 * (starts[last] - starts[first] + 0.25) + 1000 + 1e-6

    with pytest.raises(ValueError, match="positive"):
        RateLimiter(kbps=0.0)


def test_run_prefers_uvloop() -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run(loop_module()).startswith("uvloop")


@pytest.mark.parametrize("runner", RUNNERS)
def test_paced_batch_is_spread_over_the_span_in_order(runner: Runner) -> None:
    async def scenario() -> None:
        inbox = Inbox()
        async with await DatagramReceiver.open("127.0.0.1:0", inbox) as receiver:
            async with await DatagramSender.open(receiver.local_address) as sender:
                batch = [index.to_bytes(2, "big") * 300 for index in range(50)]
                started = time.monotonic()
                await sender.send_paced(batch, 0.25)
                elapsed = time.monotonic() - started
                await inbox.wait_for(50)
                assert inbox.payloads == batch
                arrivals = [arrival for _, _, arrival in inbox.items]
                assert 0.15 < arrivals[-1] - arrivals[0] < 1.0  # spread, not one burst
                assert 0.15 < elapsed < 1.5
                first_half = sum(arrival < arrivals[0] + 0.125 for arrival in arrivals)
                assert 10 <= first_half <= 40  # roughly even, not front- or back-loaded
                assert (sender.stats.datagrams, sender.stats.bytes, sender.stats.send_errors) == (50, 30_000, 0)
                assert (receiver.stats.datagrams, receiver.stats.bytes) == (50, 30_000)
                assert inbox.items[0][1][:2] == tuple(sender.local_address)

    runner(scenario())


class TimedSender(DatagramSender):
    """Notes when each datagram is handed to the socket: the moment the rate cap governs."""

    sent_at: list[float]

    def _transmit(self, data: bytes) -> None:
        self.sent_at.append(time.monotonic())
        super()._transmit(data)


def test_rate_cap_is_never_exceeded() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        async with await DatagramReceiver.open("127.0.0.1:0", inbox) as receiver:
            async with await TimedSender.open(receiver.local_address, kbps=400.0) as sender:  # 50 kB/s
                sender.sent_at = []
                burst = [b"r" * 1000] * 10  # two batches at once, each asking for a burst the cap must spread
                await asyncio.gather(sender.send_paced(burst, 0.0), sender.send_paced(burst, 0.0))
                await inbox.wait_for(20)
        assert len(inbox.items) == 20
        times = sender.sent_at
        assert times[-1] - times[0] > 0.3  # 19 gaps of 20 ms, less the burst allowance
        for first in range(20):
            for last in range(first + 1, 20):  # a late timer only ever delays; TIMER_SLACK_S lets one go early
                allowed = 50_000 * (times[last] - times[first] + DEFAULT_BURST_S + 2 * TIMER_SLACK_S) + 1000
                assert (last - first + 1) * 1000 <= allowed

    run(scenario())


def test_refused_destination_is_counted_not_raised() -> None:
    async def scenario() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        async with await DatagramSender.open(f"127.0.0.1:{closed_port}") as sender:
            for _ in range(5):
                await sender.send(b"anyone?")
                await asyncio.sleep(0.01)
            assert sender.stats.send_errors >= 1
            assert sender.stats.datagrams == 5

    run(scenario())


def test_misuse_is_refused() -> None:
    async def scenario() -> None:
        capped = await DatagramSender.open("127.0.0.1:9", kbps=100.0)
        with pytest.raises(RuntimeError, match="rate cap"):
            capped.send_nowait(b"x")
        with pytest.raises(ValueError, match="non-negative"):
            await capped.send_paced([b"x"], -1.0)
        capped.close()
        with pytest.raises(RuntimeError, match="closed"):
            await capped.send(b"x")
        with pytest.raises(EndpointError, match="needs a host"):
            await DatagramSender.open(":5000")
        with pytest.raises(EndpointError, match="non-zero port"):
            await DatagramSender.open("127.0.0.1:0")
        with pytest.raises(EndpointError, match="only to multicast"):
            await DatagramSender.open("127.0.0.1:9", iface="lo")
        with pytest.raises(EndpointError, match="no network interface"):
            await DatagramSender.open("239.1.2.3:9", iface="no-such-if0")

    run(scenario())


def test_port_in_use_is_one_line_error() -> None:
    async def scenario() -> None:
        async with await DatagramReceiver.open("127.0.0.1:0", Inbox()) as taken:
            with pytest.raises(EndpointError, match="cannot listen on 127.0.0.1:") as info:
                await DatagramReceiver.open(taken.local_address, Inbox())
            assert "\n" not in str(info.value)

    run(scenario())


def test_hostname_destination_is_resolved() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        async with await DatagramReceiver.open("127.0.0.1:0", inbox) as receiver:
            async with await DatagramSender.open(f"localhost:{receiver.local_address.port}") as sender:
                if sender.destination.family != socket.AF_INET:
                    pytest.skip("localhost resolves to IPv6 first here; the receiver listens on IPv4")
                await sender.send(b"by name")
                await inbox.wait_for(1)
        assert inbox.payloads == [b"by name"]

    run(scenario())


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_loopback() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        async with await DatagramReceiver.open("[::1]:0", inbox) as receiver:
            assert receiver.local_address.host == "::1"
            async with await DatagramSender.open(receiver.local_address) as sender:
                await sender.send_paced([b"six", b"over", b"six"], 0.02)
                await inbox.wait_for(3)
        assert inbox.payloads == [b"six", b"over", b"six"]

    run(scenario())


def test_ipv4_multicast_on_this_host() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        group = f"239.255.77.{port % 250 + 1}:{port}"
        try:
            receiver = await DatagramReceiver.open(group, inbox)
            sender = await DatagramSender.open(group, ttl=0)  # ttl 0: never leaves this host
        except EndpointError as exc:
            pytest.skip(f"IPv4 multicast unavailable here: {exc}")
        try:
            await sender.send_paced([b"to the group"] * 3, 0.02)
            await inbox.wait_for(3, timeout=1.0)
        finally:
            sender.close()
            receiver.close()
        if sender.stats.send_errors and not inbox.items:
            pytest.skip("IPv4 multicast is not routed on this host")
        assert inbox.payloads == [b"to the group"] * 3

    run(scenario())
