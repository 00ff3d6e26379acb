"""The netem-style relay: impairment logic alone, end to end over loopback UDP, and the mstvsc-relay CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mstvsc_stream.cli.relay import main as relay_main
from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.loss import BernoulliLoss, GilbertElliottLoss
from mstvsc_stream.net.relay import ImpairedLink, Impairment, Relay, parse_rate_schedule, start_flows, start_relay
from mstvsc_stream.net.transport import DatagramReceiver, DatagramSender

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[1]


def numbered(count: int, size: int = 64) -> list[bytes]:
    """Distinct datagrams whose first 4 bytes say their position."""
    return [index.to_bytes(4, "big") + bytes(size - 4) for index in range(count)]


def link_run(impairment: Impairment, datagrams: list[bytes], settle_s: float = 0.0) -> tuple[ImpairedLink, list]:
    """Push datagrams through an ImpairedLink (no sockets) and return it with what it forwarded, timestamped."""
    forwarded: list[tuple[bytes, float]] = []

    async def scenario() -> ImpairedLink:
        loop = asyncio.get_running_loop()
        link = ImpairedLink(impairment, lambda data: forwarded.append((data, loop.time())))
        for data in datagrams:
            link.on_datagram(data, ("127.0.0.1", 1), 0.0)
        await asyncio.sleep(settle_s)
        return link

    return run(scenario()), forwarded


def test_bernoulli_loss_through_the_link() -> None:
    link, forwarded = link_run(Impairment(loss=BernoulliLoss(0.3), seed=1), numbered(20_000))
    stats = link.stats
    assert stats.received == 20_000 and stats.forwarded == len(forwarded)
    assert stats.forwarded + stats.dropped == stats.received
    assert 0.68 < stats.forwarded / stats.received < 0.72
    assert [data for data, _ in forwarded] == sorted(data for data, _ in forwarded)  # no delay, no reordering


def test_same_seed_replays_the_same_run() -> None:
    impairment = Impairment(loss=GilbertElliottLoss.netem(0.1, 0.3), duplicate=0.1, corrupt=0.1, seed=123)
    first = [data for data, _ in link_run(impairment, numbered(2000))[1]]
    second = [data for data, _ in link_run(impairment, numbered(2000))[1]]
    other = [data for data, _ in link_run(dataclasses.replace(impairment, seed=124), numbered(2000))[1]]
    assert first == second and first != other


def test_corruption_flips_exactly_one_bit() -> None:
    originals = numbered(500, size=100)
    link, forwarded = link_run(Impairment(corrupt=1.0, seed=2), originals)
    assert link.stats.corrupted == 500
    for (data, _), original in zip(forwarded, originals, strict=True):
        difference = int.from_bytes(data, "big") ^ int.from_bytes(original, "big")
        assert difference.bit_count() == 1
    empty_link, empty_forwarded = link_run(Impairment(corrupt=1.0, seed=2), [b""])
    assert [data for data, _ in empty_forwarded] == [b""] and empty_link.stats.corrupted == 0  # no bit to flip


def test_duplicates_are_extra_copies() -> None:
    link, forwarded = link_run(Impairment(duplicate=0.5, seed=3), numbered(4000))
    assert link.stats.forwarded == 4000 + link.stats.duplicated == len(forwarded)
    assert 1800 < link.stats.duplicated < 2200
    assert len({data for data, _ in forwarded}) == 4000


def test_delay_jitter_and_reorder() -> None:
    impairment = Impairment(delay_s=0.1, jitter_s=0.02, reorder=0.3, seed=4)
    started = time.monotonic()
    link, forwarded = link_run(impairment, numbered(200), settle_s=0.3)
    assert len(forwarded) == 200 and 30 < link.stats.reordered < 90
    times = sorted(when for _, when in forwarded)
    immediate = [when for when in times if when - times[0] < 0.05]
    assert len(immediate) == link.stats.reordered  # the reordered ones went at once, the rest after ~0.08-0.12 s
    assert times[-1] - times[0] >= 0.075
    order = [int.from_bytes(data[:4], "big") for data, _ in forwarded]
    assert order != sorted(order)
    assert time.monotonic() - started < 5.0


def test_rate_serialises_datagrams() -> None:
    link, forwarded = link_run(Impairment(rate_kbit=400.0), numbered(20, size=1000), settle_s=0.6)
    times = [when for _, when in forwarded]
    assert len(times) == 20
    assert times[-1] - times[0] > 0.2  # 50 kB/s: 20 ms per 1000-byte datagram, ~0.4 s in all


def test_queue_limit_overflows_and_close_drops_waiting() -> None:
    forwarded: list[bytes] = []

    async def scenario() -> ImpairedLink:
        link = ImpairedLink(Impairment(delay_s=0.05, limit=5), forwarded.append)
        for data in numbered(10):
            link.on_datagram(data, ("127.0.0.1", 1), 0.0)
        link.close()
        await asyncio.sleep(0.1)
        return link

    link = run(scenario())
    assert link.stats.overflowed == 5 and forwarded == []


@pytest.mark.parametrize(
    ("options", "fragment"),
    [({"reorder": 0.1}, "needs a delay"), ({"duplicate": 2.0}, "duplicate"), ({"delay_s": -1.0}, "non-negative"),
     ({"rate_kbit": 0.0}, "positive"), ({"limit": 0}, "at least 1")],
)
def test_bad_impairments_are_refused(options: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Impairment(**options)


async def through_relay(
    impairment: Impairment, datagrams: list[bytes], span_s: float, check: Callable[[list, Relay, float], Awaitable[None]]
) -> None:
    """Sender -> relay -> receiver on 127.0.0.1; ``check(received, relay, sent_at)`` once the relay is quiet."""
    received: list[tuple[bytes, float]] = []
    async with await DatagramReceiver.open("127.0.0.1:0", lambda d, a, t: received.append((d, t))) as receiver:
        relay = await start_relay("127.0.0.1:0", receiver.local_address, impairment)
        try:
            async with await DatagramSender.open(relay.local_address) as sender:
                sent_at = time.monotonic()
                await sender.send_paced(datagrams, span_s)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and (
                relay.stats.received < len(datagrams) or relay.link.waiting or len(received) < relay.stats.forwarded
            ):
                await asyncio.sleep(0.02)
            await check(received, relay, sent_at)
        finally:
            relay.close()


def test_relay_end_to_end_loss_duplicates_and_corruption() -> None:
    noise = random.Random(0)
    datagrams = [noise.randbytes(200) for _ in range(3000)]  # so no flipped bit turns one into another

    async def check(received: list, relay: Relay, sent_at: float) -> None:
        stats = relay.stats
        assert stats.received == 3000 and stats.send_errors == 0
        assert len(received) == stats.forwarded == stats.received - stats.dropped + stats.duplicated
        assert 0.64 < (stats.received - stats.dropped) / stats.received < 0.76
        assert stats.duplicated > 0 and stats.corrupted > 0
        originals = set(datagrams)
        damaged = [data for data, _ in received if data not in originals]
        assert len(damaged) == stats.corrupted

    impairment = Impairment(loss=BernoulliLoss(0.3), duplicate=0.05, corrupt=0.05, seed=5)
    run(through_relay(impairment, datagrams, 0.3, check))


def test_relay_end_to_end_delay_and_rate() -> None:
    async def check(received: list, relay: Relay, sent_at: float) -> None:
        arrivals = [when for _, when in received]
        assert len(arrivals) == 20 and relay.stats.forwarded == 20
        assert arrivals[0] - sent_at > 0.09  # 100 ms delay, loosely
        assert arrivals[-1] - arrivals[0] > 0.2  # 400 kbit/s spreads 20 kB over ~0.4 s
        assert arrivals[-1] - sent_at < 3.0

    run(through_relay(Impairment(delay_s=0.1, rate_kbit=400.0), numbered(20, size=1000), 0.0, check))


class RelayProcess:
    """``python -m mstvsc_stream.cli.relay`` in a subprocess, with its listening port read from its log.

    A thread reads the log line by line, so waiting for a line is bounded by a queue timeout.
    """

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mstvsc_stream.cli.relay", *args],
            cwd=REPO, env=env, stderr=subprocess.PIPE, text=True,
        )
        self.log: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for_line(r"relaying \S+:(\d+) ->").group(1))

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.put(line)
        self._lines.put("")  # end of log

    def wait_for_line(self, pattern: str, timeout: float = 15.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if not line:
                break
            self.log.append(line)
            if match := re.search(pattern, line):
                return match
        self.process.kill()
        raise AssertionError(f"relay never logged {pattern!r}; log: {''.join(self.log)}")

    def finish(self, timeout: float = 10.0) -> tuple[int, str]:
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.process.kill()
        self._reader.join(timeout=timeout)
        while not self._lines.empty():
            self.log.append(self._lines.get())
        return self.process.returncode, "".join(self.log)


def drain(sock: socket.socket) -> list[bytes]:
    """Everything already queued on a UDP socket."""
    sock.setblocking(False)
    queued: list[bytes] = []
    while True:
        try:
            queued.append(sock.recv(65536))
        except BlockingIOError:
            return queued


@pytest.mark.parametrize("stop", ["sigint", "duration"])
def test_cli_forwards_and_exits_cleanly(stop: str, tmp_path: Path) -> None:
    # Plain sockets: the kernel queues what the relay forwards while this test waits on the subprocess.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        receiver.bind(("127.0.0.1", 0))
        stats_path = tmp_path / "stats.json"
        relay = RelayProcess(
            "--listen", "127.0.0.1:0", "--to", f"127.0.0.1:{receiver.getsockname()[1]}", "--loss", "50%",
            "--seed", "9", "--stats-json", str(stats_path), "--stats-interval", "0.1",
            *(["--duration", "2"] if stop == "duration" else []),
        )
        for data in numbered(200):
            sender.sendto(data, ("127.0.0.1", relay.port))
        relay.wait_for_line(r"received=200 ")  # the periodic one-line summary
        if stop == "sigint":
            relay.process.send_signal(signal.SIGINT)
        returncode, log = relay.finish()
        delivered = drain(receiver)
    assert returncode == 0 and "Traceback" not in log
    stats = json.loads(stats_path.read_text())
    assert stats["received"] == 200 and stats["forwarded"] == len(delivered) and stats["seed"] == 9
    assert 60 < stats["dropped"] < 140 and stats["dropped"] + stats["forwarded"] == 200
    assert set(delivered) <= set(numbered(200))


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [(["--listen", "nohost", "--to", "127.0.0.1:9"], "not HOST:PORT"),
     (["--listen", ":0", "--to", "127.0.0.1:9", "--loss", "30"], "did you mean 30%"),
     (["--listen", ":0", "--to", "127.0.0.1:9", "--gemodel", "1%", "2%", "3%", "4%", "5%"], "at most 4"),
     (["--listen", ":0", "--to", "127.0.0.1:9", "--reorder", "0.2"], "needs a delay"),
     (["--listen", ":0", "--to", "127.0.0.1:9", "--loss", "0.1", "--gemodel", "0.1"], "not allowed with"),
     (["--listen", ":0", "--to", "127.0.0.1:9", "--delay", "-5"], "non-negative"),
     (["--listen", ":0", "--to", "127.0.0.1:9", "--stats-json", "/no/such/dir/s.json"], "no directory"),
     (["--listen", ":0", "--to", "127.0.0.1:9", "--queue-ms", "20"], "needs a positive value and a link rate"),
     (["--listen", ":0", "--to", "127.0.0.1:9", "--rate-schedule", "0:300,x"], "not a rate schedule"),
     (["--listen", ":0", "--to", "127.0.0.1:9", "--rate-schedule", "10:300,5:100"], "increasing times"),
     (["--listen", ":0", "--flow", ":0=127.0.0.1:9"], "either --listen and --to, or --flow"),
     (["--flow", ":0"], "not LISTEN=DESTINATION"),
     (["--listen", ":0"], "--listen and --to are required")],
)
def test_cli_bad_arguments_are_one_line_errors(argv: list[str], fragment: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        relay_main(argv)
    assert info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("mstvsc-relay: error:") and fragment in last_line


def test_cli_unusable_destination_is_one_line_error(capsys: pytest.CaptureFixture) -> None:
    assert relay_main(["--listen", "127.0.0.1:0", "--to", ":5000", "-q"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("mstvsc-relay:") and "needs a host" in error and "\n" not in error


def test_queue_bound_in_time_drops_what_would_wait_longer() -> None:
    """100 kbit/s and a 50 ms queue: of 40 datagrams of 1 kbit arriving at once, the link is busy with the
    first and 5 more fit the queue (the 6th would wait 60 ms)."""
    impairment = Impairment(rate_kbit=100, queue_s=0.05, seed=1)
    link, forwarded = link_run(impairment, numbered(40, size=125), settle_s=0.15)
    assert link.stats.overflowed == 34 and len(forwarded) == 6
    assert link.queue_delay_ms(50) == pytest.approx(25, abs=1) and link.queue_delay_ms(95) <= 50  # 0, 10 .. 50 ms


def test_rate_schedule_changes_the_link_rate_on_time() -> None:
    assert parse_rate_schedule("0:300, 10:100,20.5:300") == ((0.0, 300.0), (10.0, 100.0), (20.5, 300.0))

    async def scenario() -> list[float | None]:
        link = ImpairedLink(Impairment(rate_schedule=((0, 300), (0.05, 100)), queue_s=0.2), lambda data: None)
        before = link.rate_kbit
        await asyncio.sleep(0.1)
        link.close()
        return [before, link.rate_kbit]

    assert run(scenario()) == [300, 100]


def test_reverse_path_and_flows_share_one_bottleneck() -> None:
    """Two flows through one relay: each reaches its own receiver, replies go back to each sender, both
    queue at the same link, and a closed reverse path (a feedback outage) passes nothing back."""

    async def scenario() -> tuple[list, list, Relay]:
        got: list[list[bytes]] = [[], []]
        replies: list[list[bytes]] = [[], []]
        receivers = []
        for index in range(2):
            def echo(data: bytes, addr: tuple, arrival: float, index: int = index) -> None:
                got[index].append(data)
                receivers[index].send_to(b"reply" + data[:1], addr)
            receivers.append(await DatagramReceiver.open("127.0.0.1:0", echo))
        relay = await start_flows([("127.0.0.1:0", r.local_address) for r in receivers],
                                  Impairment(rate_kbit=200, queue_s=0.5))
        senders = [await DatagramSender.open(address, on_datagram=lambda d, a, t, i=i: replies[i].append(d))
                   for i, address in enumerate(relay.local_addresses)]
        for round_ in range(5):
            for index, sender in enumerate(senders):
                sender.send_nowait(bytes([index]) + bytes(124))
        await asyncio.sleep(0.2)
        relay.reverse_open = False
        senders[0].send_nowait(b"\x00" + bytes(124))
        await asyncio.sleep(0.1)
        for endpoint in (*senders, *receivers):
            endpoint.close()
        relay.close()
        return got, replies, relay

    got, replies, relay = run(scenario())
    assert [len(g) for g in got] == [6, 5] and all(d[0] == 0 for d in got[0]) and all(d[0] == 1 for d in got[1])
    assert replies == [[b"reply\x00"] * 5, [b"reply\x01"] * 5]
    stats = relay.stats
    assert stats.reversed == 10 and stats.forwarded == 11
    assert stats.queue_delay_ms_p95 is not None and stats.queue_delay_ms_p95 > 20  # 10 kbit queued at 200 kbit/s
