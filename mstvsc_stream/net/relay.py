"""A userspace netem: forwards datagrams one way while losing, delaying, reordering, duplicating,
corrupting and rate-limiting them.

The kernels we test on have no netem (and changing qdiscs needs root), so impairments are applied in
the middle of the path instead: sender -> relay -> receiver. Datagrams are opaque here; the relay
never parses the application header, so it tests the receiver exactly as a real network would.
The order of decisions follows netem's enqueue: duplicate, lose, corrupt, then reorder or delay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
    ``limit``: datagrams that may wait in the relay before new ones are dropped (netem's default 1000).
    """

    loss: LossModel | None = None
    delay_s: float = 0.0
    jitter_s: float = 0.0
    reorder: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    rate_kbit: float | None = None
    limit: int = 1000
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


@dataclass
class RelayStats:
    """The relay's counters, under the names its log lines and stats JSON use."""

    received: int = 0
    forwarded: int = 0  # copies handed to the outgoing socket, duplicates included
    dropped: int = 0  # lost by the loss model
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0  # sent at once, ahead of delayed datagrams
    overflowed: int = 0  # dropped because ``limit`` datagrams were already waiting
    send_errors: int = 0

    def as_dict(self) -> dict[str, int]:
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


class ImpairedLink:
    """Applies an :class:`Impairment` to datagrams and hands the survivors to ``forward`` on time.

    Separate from the sockets so the impairment logic can be driven and checked without a network.
    Must be created inside the running event loop whose timers release delayed datagrams.
    """

    def __init__(self, impairment: Impairment, forward: Callable[[bytes], None]) -> None:
        self.impairment = impairment
        self.stats = RelayStats()
        self._forward_to = forward
        self._random = _Randomness(impairment)
        self._link = None if impairment.rate_kbit is None else RateLimiter(impairment.rate_kbit)
        self._waiting = 0  # datagrams whose departure timer has not fired yet
        self._closed = False
        self._loop = asyncio.get_running_loop()

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
        self.stats.received += 1
        self._admit(data, may_duplicate=True)

    def close(self) -> None:
        """Drop what is still waiting to leave, as deleting a netem qdisc does."""
        self._closed = True

    def _admit(self, data: bytes, may_duplicate: bool) -> None:
        impairment, random = self.impairment, self._random
        duplicate = may_duplicate and impairment.duplicate > 0.0 and random.duplicate.random() < impairment.duplicate
        lost = random.loss is not None and random.loss.lose()
        if lost and not duplicate:
            self.stats.dropped += 1
            return
        if duplicate and not lost:  # netem: a duplicate that is "lost" just cancels the extra copy
            self.stats.duplicated += 1
            self._admit(data, may_duplicate=False)
        if impairment.corrupt > 0.0 and data and random.corrupt.random() < impairment.corrupt:
            data = self._flip_random_bit(data)
            self.stats.corrupted += 1
        if impairment.reorder > 0.0 and random.reorder.random() < impairment.reorder:
            self.stats.reordered += 1
            self._forward(data)
            return
        self._schedule(data)

    def _flip_random_bit(self, data: bytes) -> bytes:
        bit = int(self._random.corrupt.integers(len(data) * 8))
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        return bytes(flipped)

    def _schedule(self, data: bytes) -> None:
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
            departure = self._link.reserve(len(data), departure) + self._link.transmission_time(len(data))
        if departure <= now:
            self._forward(data)
            return
        self._waiting += 1
        self._loop.call_at(departure, self._depart, data)

    def _depart(self, data: bytes) -> None:
        self._waiting -= 1
        if not self._closed:
            self._forward(data)

    def _forward(self, data: bytes) -> None:
        self._forward_to(data)
        self.stats.forwarded += 1


class Relay:
    """A running relay: a listening socket, an :class:`ImpairedLink`, and a socket to the destination."""

    def __init__(self, link: ImpairedLink, receiver: DatagramReceiver, sender: DatagramSender) -> None:
        self.link = link
        self._receiver = receiver
        self._sender = sender

    @property
    def stats(self) -> RelayStats:
        """A snapshot of the counters, send errors included."""
        return dataclasses.replace(self.link.stats, send_errors=self._sender.stats.send_errors)

    @property
    def local_address(self) -> Endpoint:
        """Where the relay listens (with the real port when it was asked for port 0)."""
        return self._receiver.local_address

    @property
    def destination(self) -> Endpoint:
        return self._sender.destination.endpoint

    def close(self) -> None:
        self._receiver.close()
        self.link.close()
        self._sender.close()


async def start_relay(listen: Endpoint | str, to: Endpoint | str, impairment: Impairment | None = None) -> Relay:
    """Start forwarding datagrams that arrive at ``listen`` to ``to``, impaired as described."""
    sender = await DatagramSender.open(to)
    link = ImpairedLink(impairment or Impairment(), sender.send_nowait)
    try:
        receiver = await DatagramReceiver.open(listen, link.on_datagram)
    except BaseException:
        sender.close()
        raise
    relay = Relay(link, receiver, sender)
    log.info("relaying %s -> %s (seed %d)", relay.local_address, relay.destination, link.seed)
    return relay
