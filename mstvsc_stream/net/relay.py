"""A userspace netem: forwards datagrams one way while losing, delaying, reordering, duplicating,
corrupting and rate-limiting them; what the receiver sends back goes to the sender unimpaired.

The kernels we test on have no netem (and changing qdiscs needs root), so impairments are applied in
the middle of the path instead: sender -> relay -> receiver. Datagrams are opaque here; the relay
never parses the application header, so it tests the receiver exactly as a real network would.
The order of decisions follows netem's enqueue: duplicate, lose, corrupt, then reorder or delay.

As a bottleneck (``rate_kbit``, ``queue_s``, ``rate_schedule``) the link is one FIFO queue at the link
rate; several flows (each a listening port with its own destination) may share it, for fairness tests.
Datagrams that arrive at a flow's outgoing socket (receiver reports) go back, from the listening port,
to the address the flow's last datagram came from.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..timings import Timings
from .endpoint import Endpoint
from .loss import LossModel, LossProcess, check_probability
from .ratelimit import RateLimiter
from .transport import DatagramReceiver, DatagramSender

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Impairment:
    """What the relay does to the stream, with netem's meanings.

    ``delay_s`` +- ``jitter_s`` (uniform, as netem without a distribution table; jitter reorders);
    ``reorder``: chance a datagram skips the delay and goes at once (needs a delay, as in netem);
    ``duplicate``: chance of an extra copy, which goes through loss, corruption and delay on its own;
    ``corrupt``: chance one random bit is flipped; ``rate_kbit``: serialisation at that payload rate;
    ``limit``: datagrams that may wait in the relay before new ones are dropped (netem's default 1000);
    ``queue_s``: the bottleneck queue's bound as time at the link rate (a datagram that would wait longer
    for the link is dropped, like a router buffer sized in milliseconds); ``rate_schedule``: (seconds
    from the start, kbit/s) pairs, the link rate from each moment on.
    """

    loss: LossModel | None = None
    delay_s: float = 0.0
    jitter_s: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    rate_kbit: float | None = None
    limit: int = 1000
    queue_s: float | None = None
    rate_schedule: tuple[tuple[float, float], ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("reorder", "duplicate", "corrupt"):
            check_probability(name, getattr(self, name))
        if self.delay_s < 0.0 or self.jitter_s < 0.0:
            raise ValueError("delay and jitter must be non-negative")
        if self.reorder > 0.0 and self.delay_s == 0.0:
            raise ValueError("reordering needs a delay: the datagrams it sends at once must overtake something")
        if self.rate_kbit is not None and not self.rate_kbit > 0.0:
            raise ValueError(f"rate must be a positive number of kbit/s, got {self.rate_kbit}")
        if self.limit < 1:
            raise ValueError(f"queue limit must be at least 1 datagram, got {self.limit}")
        if self.queue_s is not None and not (self.queue_s > 0.0 and self.link_kbit is not None):
            raise ValueError("a queue bound in time needs a positive value and a link rate (--rate or --rate-schedule)")
        times = [at for at, _ in self.rate_schedule]
        if times != sorted(set(times)) or any(at < 0.0 or not kbit > 0.0 for at, kbit in self.rate_schedule):
            raise ValueError("a rate schedule is increasing times from 0 s on, each with a positive rate")

    @property
    def link_kbit(self) -> float | None:
        """The link rate at the start: the schedule's first entry if it starts at 0, else ``rate_kbit``."""
        if self.rate_schedule and self.rate_schedule[0][0] == 0.0:
            return self.rate_schedule[0][1]
        return self.rate_kbit


def parse_rate_schedule(text: str) -> tuple[tuple[float, float], ...]:
    """``"0:300,10:100,20:300"`` (seconds:kbit/s) as ((0, 300), (10, 100), (20, 300))."""
    schedule = []
    for item in text.split(","):
        at, colon, kbit = item.strip().partition(":")
        try:
            schedule.append((float(at), float(kbit)))
        except ValueError:
            colon = ""
        if not colon:
            raise ValueError(f"{text!r} is not a rate schedule like 0:300,10:100,20:300 (seconds:kbit/s)")
    return tuple(schedule)


@dataclass
class RelayStats:
    """The relay's counters, under the names its log lines and stats JSON use."""

    received: int = 0
    forwarded: int = 0  # copies handed to the outgoing socket, duplicates included
    dropped: int = 0  # lost by the loss model
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0  # sent at once, ahead of delayed datagrams
    overflowed: int = 0  # dropped because ``limit`` datagrams were already waiting, or the queue was full
    send_errors: int = 0
    reversed: int = 0  # datagrams the receiver sent back, passed on to the sender
    queue_delay_ms_p50: float | None = None  # time datagrams waited for the link (with a rate)
    queue_delay_ms_p95: float | None = None

    def as_dict(self) -> dict[str, int | float | None]:
        return dataclasses.asdict(self)


class _Randomness:
    """Independent seeded streams per impairment, so enabling one never shifts another's pattern."""

    def __init__(self, impairment: Impairment) -> None:
        sequence = np.random.SeedSequence(impairment.seed)
        self.seed = int(sequence.entropy)  # type: ignore[arg-type]  # an int whenever the seed is an int or None
        loss, duplicate, corrupt, reorder, jitter = sequence.spawn(5)
        self.loss = None if impairment.loss is None else LossProcess(impairment.loss, loss)
        self.duplicate = np.random.default_rng(duplicate)
        self.corrupt = np.random.default_rng(corrupt)
        self.reorder = np.random.default_rng(reorder)
        self.jitter = np.random.default_rng(jitter)


QUEUE_DELAY_SAMPLES = 100_000


class ImpairedLink:
    """Applies an :class:`Impairment` to datagrams and hands the survivors to ``forward`` on time.

    Separate from the sockets so the impairment logic can be driven and checked without a network.
    Must be created inside the running event loop whose timers release delayed datagrams (and change
    the rate on schedule). :meth:`admit` takes a datagram of any flow with that flow's ``forward``.
    """

    def __init__(self, impairment: Impairment, forward: Callable[[bytes], None]) -> None:
        self.impairment = impairment
        self.stats = RelayStats()
        self._forward_to = forward
        self._random = _Randomness(impairment)
        kbit = impairment.link_kbit
        self._link = None if kbit is None and not impairment.rate_schedule else RateLimiter(kbit or 1e9)
        self._waiting = 0  # datagrams whose departure timer has not fired yet
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._queue_delays = Timings(QUEUE_DELAY_SAMPLES)
        self._schedule_handles = [self._loop.call_later(at, self._set_rate, kbit)
                                  for at, kbit in impairment.rate_schedule if at > 0.0]  # fmt: skip

    @property
    def rate_kbit(self) -> float | None:
        """The link rate now (None: no rate limit)."""
        return None if self._link is None else self._link.kbps

    def queue_delay(self) -> float:
        """Seconds a datagram admitted now would wait for the link."""
        return 0.0 if self._link is None else self._link.backlog(self._loop.time())

    def queue_delay_ms(self, q: float) -> float | None:
        """The ``q``-th percentile of the time datagrams waited for the link, in ms (None: no samples)."""
        return self._queue_delays.percentile(q)

    def _set_rate(self, kbit: float) -> None:
        assert self._link is not None
        self._link.kbps = kbit
        log.info("link rate now %g kbit/s", kbit)

    @property
    def seed(self) -> int:
        """The seed in use (drawn at random when none was given): pass it back to replay this run."""
        return self._random.seed

    @property
    def waiting(self) -> int:
        """Datagrams delayed in the relay, not yet sent on."""
        return self._waiting

    def on_datagram(self, data: bytes, addr: tuple, arrival: float) -> None:
        """Entry point with :data:`~.transport.DatagramHandler`'s signature."""
        self.admit(data, self._forward_to)

    def admit(self, data: bytes, forward: Callable[[bytes], None]) -> None:
        """Take one datagram of the flow that ``forward`` sends on."""
        self.stats.received += 1
        self._admit(data, forward, may_duplicate=True)

    def close(self) -> None:
        """Drop what is still waiting to leave, as deleting a netem qdisc does."""
        self._closed = True
        for handle in self._schedule_handles:
            handle.cancel()

    def _admit(self, data: bytes, forward: Callable[[bytes], None], may_duplicate: bool) -> None:
        impairment, random = self.impairment, self._random
        duplicate = may_duplicate and impairment.duplicate > 0.0 and random.duplicate.random() < impairment.duplicate
        lost = random.loss is not None and random.loss.lose()
        if lost and not duplicate:
            self.stats.dropped += 1
            return
        if duplicate and not lost:  # netem: a duplicate that is "lost" just cancels the extra copy
            self.stats.duplicated += 1
            self._admit(data, forward, may_duplicate=False)
        if impairment.corrupt > 0.0 and data and random.corrupt.random() < impairment.corrupt:
            data = self._flip_random_bit(data)
            self.stats.corrupted += 1
        if impairment.reorder > 0.0 and random.reorder.random() < impairment.reorder:
            self.stats.reordered += 1
            self._forward(data, forward)
            return
        self._schedule(data, forward)

    def _flip_random_bit(self, data: bytes) -> bytes:
        bit = int(self._random.corrupt.integers(len(data) * 8))
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        return bytes(flipped)

    def _schedule(self, data: bytes, forward: Callable[[bytes], None]) -> None:
        impairment = self.impairment
        if self._waiting >= impairment.limit:
            self.stats.overflowed += 1
            return
        now = self._loop.time()
        delay = impairment.delay_s
        if impairment.jitter_s > 0.0:
            delay = max(0.0, delay + self._random.jitter.uniform(-impairment.jitter_s, impairment.jitter_s))
        departure = now + delay
        if self._link is not None:
            waited = self._link.backlog(departure)
            if impairment.queue_s is not None and waited > impairment.queue_s + 1e-9:  # exactly full still fits
                self.stats.overflowed += 1
                return
            self._queue_delays.add(waited * 1000)
            departure = self._link.reserve(len(data), departure) + self._link.transmission_time(len(data))
        if departure <= now:
            self._forward(data, forward)
            return
        self._waiting += 1
        self._loop.call_at(departure, self._depart, data, forward)

    def _depart(self, data: bytes, forward: Callable[[bytes], None]) -> None:
        self._waiting -= 1
        if not self._closed:
            self._forward(data, forward)

    def _forward(self, data: bytes, forward: Callable[[bytes], None]) -> None:
        forward(data)
        self.stats.forwarded += 1


class _Flow:
    """One listening port and its destination; the reverse path sends back to ``source``."""

    def __init__(self, receiver: DatagramReceiver, sender: DatagramSender) -> None:
        self.receiver = receiver
        self.sender = sender
        self.source: tuple | None = None  # where the flow's latest datagram came from


class Relay:
    """A running relay: one :class:`ImpairedLink` shared by one or more flows (listening socket, socket to
    the destination). ``reverse_open = False`` cuts the reverse path (a feedback outage, for tests)."""

    def __init__(self, link: ImpairedLink, flows: Sequence[_Flow]) -> None:
        self.link = link
        self._flows = list(flows)
        self.reverse_open = True

    @property
    def stats(self) -> RelayStats:
        """A snapshot of the counters, send errors and queue-delay percentiles included."""
        return dataclasses.replace(
            self.link.stats, send_errors=sum(flow.sender.stats.send_errors for flow in self._flows),
            queue_delay_ms_p50=self.link.queue_delay_ms(50), queue_delay_ms_p95=self.link.queue_delay_ms(95),
        )  # fmt: skip

    @property
    def local_address(self) -> Endpoint:
        """Where the (first) flow listens (with the real port when it was asked for port 0)."""
        return self._flows[0].receiver.local_address

    @property
    def local_addresses(self) -> list[Endpoint]:
        return [flow.receiver.local_address for flow in self._flows]

    @property
    def destination(self) -> Endpoint:
        return self._flows[0].sender.destination.endpoint

    def close(self) -> None:
        for flow in self._flows:
            flow.receiver.close()
        self.link.close()
        for flow in self._flows:
            flow.sender.close()


async def start_relay(listen: Endpoint | str, to: Endpoint | str, impairment: Impairment | None = None) -> Relay:
    """Start forwarding datagrams that arrive at ``listen`` to ``to``, impaired as described."""
    return await start_flows([(listen, to)], impairment)


async def start_flows(
    routes: Sequence[tuple[Endpoint | str, Endpoint | str]], impairment: Impairment | None = None
) -> Relay:
    """Start one flow per (listen, to) route, all through one impaired link (one bottleneck queue)."""
    flows: list[_Flow] = []
    relay: Relay | None = None
    try:
        for listen, to in routes:
            flows.append(await _open_flow(listen, to, lambda: relay))
    except BaseException:
        for opened in flows:
            opened.receiver.close()
            opened.sender.close()
        raise
    relay = Relay(ImpairedLink(impairment or Impairment(), flows[0].sender.send_nowait), flows)
    for flow in flows:
        log.info("relaying %s -> %s (seed %d)", flow.receiver.local_address, flow.sender.destination.endpoint,
                 relay.link.seed)  # fmt: skip
    return relay


async def _open_flow(listen: Endpoint | str, to: Endpoint | str, relay: Callable[[], Relay | None]) -> _Flow:
    flow: _Flow | None = None

    def backwards(data: bytes, addr: tuple, arrival: float) -> None:
        current = relay()
        if flow is not None and flow.source is not None and current is not None and current.reverse_open:
            current.link.stats.reversed += 1
            flow.receiver.send_to(data, flow.source)

    def forwards(data: bytes, addr: tuple, arrival: float) -> None:
        current = relay()
        if flow is not None and current is not None:
            flow.source = addr
            current.link.admit(data, flow.sender.send_nowait)

    sender = await DatagramSender.open(to, on_datagram=backwards)
    try:
        receiver = await DatagramReceiver.open(listen, forwards)
    except BaseException:
        sender.close()
        raise
    flow = _Flow(receiver, sender)
    return flow
