"""asyncio UDP endpoints: a paced, rate-capped sender and a receiver that timestamps each arrival.

They move opaque datagrams only (no application header, no GOP logic), in the spirit of aiortc's
split between transport and jitter buffer. Sockets are built by hand rather than by
``create_datagram_endpoint(local_addr=...)`` so buffer sizes and multicast options are set before
the first datagram can arrive or leave.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from .endpoint import Endpoint, EndpointError, ResolvedEndpoint, parse_endpoint, resolve_endpoint
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)

SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # a few GOPs of segments, so a scheduling hiccup does not drop any
DEFAULT_BURST_S = 0.005  # rate cap tolerance: a few timer ticks of the event loop
TIMER_SLACK_S = 0.001  # event loop timers have millisecond resolution: closer than this counts as due

DatagramHandler = Callable[[bytes, tuple, float], None]
"""Called with (datagram, source address, arrival time in ``time.monotonic()`` seconds)."""


@dataclass
class SenderStats:
    datagrams: int = 0
    bytes: int = 0
    send_errors: int = 0  # OSErrors from the socket, including ICMP "port unreachable" reports
    dropped: int = 0  # not handed to the kernel because the socket's send queue was full


@dataclass
class ReceiverStats:
    datagrams: int = 0
    bytes: int = 0
    errors: int = 0


class _SenderProtocol(asyncio.DatagramProtocol):
    def __init__(self, stats: SenderStats, on_datagram: DatagramHandler | None) -> None:
        self.stats = stats
        self.paused = False
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        """Datagrams back from the destination (the socket is connected: from nowhere else), e.g. reports."""
        if self.on_datagram is not None:
            self.on_datagram(data, addr, time.monotonic())

    def error_received(self, exc: Exception) -> None:
        self.stats.send_errors += 1
        log.debug("send error: %s", exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False


class _ReceiverProtocol(asyncio.DatagramProtocol):
    def __init__(self, stats: ReceiverStats, on_datagram: DatagramHandler) -> None:
        self.stats = stats
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.stats.datagrams += 1
        self.stats.bytes += len(data)
        self.on_datagram(data, addr, time.monotonic())

    def error_received(self, exc: Exception) -> None:
        self.stats.errors += 1
        log.debug("receive error: %s", exc)


def _as_endpoint(endpoint: Endpoint | str) -> Endpoint:
    return parse_endpoint(endpoint) if isinstance(endpoint, str) else endpoint


def _interface_index(iface: str | None, target: ResolvedEndpoint) -> int:
    """Index of a named interface for multicast; 0 lets the kernel choose by route."""
    if iface is None:
        return target.address[3] if target.family == socket.AF_INET6 else 0
    if not target.is_multicast:
        raise EndpointError(f"an interface (iface={iface!r}) applies only to multicast groups, not {target.endpoint}")
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        raise EndpointError(f"no network interface named {iface!r}") from None


def _ipv4_mreqn(group: str, index: int) -> bytes:
    """Linux ``struct ip_mreqn``: group, local address (any), interface index."""
    return struct.pack("4s4si", socket.inet_aton(group), b"\0" * 4, index)


def _request_buffer(sock: socket.socket, option: int, size: int) -> None:
    """Ask for a socket buffer; the kernel may cap it (net.core.rmem_max/wmem_max), so only log.

    A short receive buffer loses datagrams whenever the event loop stalls, so that one is a warning.
    """
    level = logging.WARNING if option == socket.SO_RCVBUF else logging.DEBUG
    try:
        sock.setsockopt(socket.SOL_SOCKET, option, size)
    except OSError as exc:
        log.log(level, "could not set socket buffer to %d bytes: %s", size, exc)
        return
    granted = sock.getsockopt(socket.SOL_SOCKET, option)  # Linux reports twice what it grants
    if granted < size:
        log.log(level, "socket buffer is %d bytes, not the %d asked for (raise the sysctl limit)", granted, size)


def _udp_socket(target: ResolvedEndpoint, setup: Callable[[socket.socket], None], action: str) -> socket.socket:
    """A UDP socket for ``target`` prepared by ``setup``; an OSError becomes a one-line EndpointError."""
    sock = socket.socket(target.family, socket.SOCK_DGRAM)
    try:
        setup(sock)
    except OSError as exc:
        sock.close()
        raise EndpointError(f"cannot {action} {target.endpoint}: {exc.strerror or exc}") from None
    except BaseException:
        sock.close()
        raise
    return sock


_Endpoint = TypeVar("_Endpoint", bound="_UdpEndpoint")


class _UdpEndpoint:
    """What both directions share: the asyncio transport, its address, and closing it."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport

    @property
    def local_address(self) -> Endpoint:
        host, port = self._transport.get_extra_info("sockname")[:2]
        return Endpoint(host, port)

    def close(self) -> None:
        self._transport.close()

    async def __aenter__(self: _Endpoint) -> _Endpoint:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class DatagramSender(_UdpEndpoint):
    """Sends datagrams to one destination (unicast or a multicast group) over a connected UDP socket.

    Connected, so the kernel reports ICMP errors (e.g. nobody listening); those are counted in
    ``stats.send_errors`` rather than raised, since a receiver that comes up late is normal.
    Create with ``await DatagramSender.open(...)``.
    """

    def __init__(
        self,
        transport: asyncio.DatagramTransport,
        protocol: _SenderProtocol,
        destination: ResolvedEndpoint,
        limiter: RateLimiter | None,
    ) -> None:
        super().__init__(transport)
        self._protocol = protocol
        self._limiter = limiter
        self._closed = False
        self.destination = destination
        self.stats = protocol.stats

    @classmethod
    async def open(
        cls,
        destination: Endpoint | str,
        *,
        ttl: int = 1,
        iface: str | None = None,
        kbps: float | None = None,
        burst_s: float = DEFAULT_BURST_S,
        on_datagram: DatagramHandler | None = None,
    ) -> DatagramSender:
        """Open a sender; ``ttl`` and ``iface`` apply to multicast groups, ``kbps`` caps the payload rate,
        ``on_datagram`` gets what the destination sends back (receiver reports)."""
        limiter = None if kbps is None else RateLimiter(kbps, burst_s)
        target = await resolve_endpoint(_as_endpoint(destination), local=False)

        def setup(sock: socket.socket) -> None:
            cls._configure(sock, target, ttl, iface)
            sock.connect(target.address)

        sock = _udp_socket(target, setup, "send to")
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _SenderProtocol(SenderStats(), on_datagram), sock=sock
        )
        return cls(transport, protocol, target, limiter)

    @staticmethod
    def _configure(sock: socket.socket, target: ResolvedEndpoint, ttl: int, iface: str | None) -> None:
        _request_buffer(sock, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
        index = _interface_index(iface, target)
        if not target.is_multicast:
            return
        if not 0 <= ttl <= 255:
            raise EndpointError(f"multicast ttl must be 0..255, got {ttl}")
        if target.family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
            if index:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, _ipv4_mreqn("0.0.0.0", index))
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
            if index:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)

    def send_nowait(self, data: bytes) -> None:
        """Send one datagram now, unpaced. Refused with a rate cap, which only the awaiting sends honour."""
        if self._limiter is not None:
            raise RuntimeError("send_nowait would bypass the rate cap; use send or send_paced")
        self._transmit(data)

    async def send(self, data: bytes) -> None:
        """Send one datagram as soon as the rate cap (if any) allows."""
        await self.send_paced((data,), 0.0)

    async def send_paced(
        self, datagrams: Sequence[bytes], span_s: float, on_sent: Callable[[bytes, float], None] | None = None
    ) -> None:
        """Spread ``datagrams`` evenly over the next ``span_s`` seconds: datagram i leaves at i*span_s/n.

        Bursts sent back to back overflow shallow router and socket queues; spacing them over the
        frame interval avoids that. Times are absolute, so a late timer makes the next datagrams catch up
        instead of stretching the batch. With a rate cap, a datagram also waits until the link allows it.
        ``close()`` ends a batch in progress. ``on_sent(datagram, time)`` learns when each one left.
        """
        if span_s < 0.0:
            raise ValueError(f"span must be non-negative, got {span_s} s")
        if not datagrams:
            return
        # time.monotonic(), not loop.time(): uvloop's clock is cached per loop iteration, and the rate
        # cap must be booked at the moment a datagram really leaves.
        start = time.monotonic()
        step = span_s / len(datagrams)
        for index, data in enumerate(datagrams):
            # Checked again after each sleep: another batch may have used the link meanwhile.
            while (wait := self._conforming_start(start + index * step) - time.monotonic()) > TIMER_SLACK_S:
                await asyncio.sleep(wait)
                if self._closed:
                    return
            now = time.monotonic()
            if self._limiter is not None:
                self._limiter.book(len(data), now)
            if self._transmit(data) and on_sent is not None:
                on_sent(data, now)

    def _conforming_start(self, due: float) -> float:
        return due if self._limiter is None else self._limiter.earliest_start(due)

    def _transmit(self, data: bytes) -> bool:
        if self._closed:
            raise RuntimeError("send on a closed DatagramSender")
        if self._protocol.paused:
            self.stats.dropped += 1
            return False
        self._transport.sendto(data)
        self.stats.datagrams += 1
        self.stats.bytes += len(data)
        return True

    def close(self) -> None:
        self._closed = True
        super().close()


class DatagramReceiver(_UdpEndpoint):
    """Listens on ``[HOST]:PORT`` (joining the group when HOST is multicast) and hands each datagram on.

    The handler runs in the event loop for every datagram, so it should only queue or buffer.
    Create with ``await DatagramReceiver.open(...)``.
    """

    def __init__(self, transport: asyncio.DatagramTransport, stats: ReceiverStats) -> None:
        super().__init__(transport)
        self.stats = stats

    def send_to(self, data: bytes, address: tuple) -> None:
        """Send one datagram back from the listening port (receiver reports, the relay's reverse path);
        a full socket buffer or an unreachable peer only loses it, as UDP would."""
        try:
            self._transport.sendto(data, address)
        except OSError as exc:
            self.stats.errors += 1
            log.debug("send to %s failed: %s", address, exc)

    @classmethod
    async def open(
        cls,
        listen: Endpoint | str,
        on_datagram: DatagramHandler,
        *,
        iface: str | None = None,
        receive_buffer: int = SOCKET_BUFFER_BYTES,
    ) -> DatagramReceiver:
        """Bind and start receiving; ``iface`` picks the interface that joins a multicast group."""
        local = await resolve_endpoint(_as_endpoint(listen), local=True)
        sock = _udp_socket(local, lambda sock: cls._bind(sock, local, iface, receive_buffer), "listen on")
        stats = ReceiverStats()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _ReceiverProtocol(stats, on_datagram), sock=sock)
        return cls(transport, stats)

    @staticmethod
    def _bind(sock: socket.socket, local: ResolvedEndpoint, iface: str | None, receive_buffer: int) -> None:
        _request_buffer(sock, socket.SO_RCVBUF, receive_buffer)
        index = _interface_index(iface, local)
        if not local.is_multicast:
            sock.bind(local.address)
            return
        # Several receivers of one group may share a host; bind the wildcard and let membership filter.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        group = local.address[0]
        if local.family == socket.AF_INET:
            sock.bind(("0.0.0.0", local.address[1]))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, _ipv4_mreqn(group, index))
        else:
            sock.bind(("::", local.address[1]))
            request = socket.inet_pton(socket.AF_INET6, group.split("%")[0]) + struct.pack("@I", index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, request)
