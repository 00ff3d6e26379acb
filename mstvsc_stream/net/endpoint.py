"""UDP endpoint notation (``host:port``, ``[v6]:port``, ``:port``) and its resolution to socket addresses.

Parsing is separate from resolution so command lines are checked before anything touches the network,
and every failure is one ``EndpointError`` line that a CLI can print as it is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import NamedTuple


class EndpointError(ValueError):
    """An endpoint that cannot be parsed, resolved or used as asked."""


class Endpoint(NamedTuple):
    """A host (name, address, or "" for "any local address") and a UDP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class ResolvedEndpoint(NamedTuple):
    """A socket address ready for ``bind``/``connect``, with its address family."""

    family: socket.AddressFamily
    address: tuple  # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.address[0], self.address[1])

    @property
    def is_multicast(self) -> bool:
        return is_multicast(self.address[0])


def parse_endpoint(text: str) -> Endpoint:
    """Split ``"host:port"``, ``"[v6addr]:port"`` or ``":port"`` (any local address) without resolving."""
    body = text.strip()
    host, colon, port_text = body.rpartition(":")
    if not colon:
        raise EndpointError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:5000, [::1]:5000 or :5000)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _is_ipv6(host):
            raise EndpointError(f"{text!r}: {host!r} in brackets is not an IPv6 address")
    elif ":" in host:
        address = host.lstrip("[").rstrip("]")
        if _is_ipv6(address) and port_text.isdigit():  # ::1:5000 or [::1:5000: address and port, unbracketed
            raise EndpointError(f"{text!r}: write an IPv6 address in brackets, e.g. [{address}]:{port_text}")
        raise EndpointError(f"{text!r} has no port: write an IPv6 address in brackets and a port, e.g. "
                            f"[{body.lstrip('[').rstrip(']')}]:5000")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise EndpointError(f"{text!r}: port {port_text!r} is not a number from 0 to 65535")
    return Endpoint(host, int(port_text))


def is_multicast(host: str) -> bool:
    """Whether ``host`` is a multicast group address (IPv4 224.0.0.0/4, IPv6 ff00::/8); False for names."""
    try:
        return ipaddress.ip_address(host).is_multicast
    except ValueError:
        return False


async def resolve_endpoint(endpoint: Endpoint, *, local: bool) -> ResolvedEndpoint:
    """Resolve a host name or address to the first usable UDP socket address.

    ``local`` is for an address to bind: "" then means the IPv4 wildcard and port 0 an ephemeral port.
    A destination needs both a host and a port.
    """
    host: str | None = endpoint.host
    if not local and (not host or endpoint.port == 0):
        raise EndpointError(f"{endpoint}: a destination needs a host and a non-zero port, e.g. 127.0.0.1:5000")
    if local and not host:
        host = "0.0.0.0"
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, endpoint.port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP)
    except (socket.gaierror, UnicodeError) as exc:
        raise EndpointError(f"cannot resolve {endpoint.host!r}: {getattr(exc, 'strerror', None) or exc}") from None
    usable = [info for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not usable:
        raise EndpointError(f"{endpoint.host!r} has no IPv4 or IPv6 address")
    family, _, _, _, address = usable[0]
    return ResolvedEndpoint(socket.AddressFamily(family), address)


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False
