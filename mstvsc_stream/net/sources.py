"""Which senders a receiver listens to (``--accept any|first|HOST``), and when another may take over.

A receiver on an open port hears whoever sends to it. ``first`` (the default) locks onto the first
sender whose descriptor is valid and ignores every other address; ``HOST`` does the same but only ever
considers that host (any port); ``any`` follows whichever sender started a session last. A restarted
sender comes back from a new port with a new session id, so under ``first`` and ``HOST`` a newcomer
takes over once the current session has been silent for ``silence_s``: no descriptor of it has arrived
for that long (it sends a few per GOP). Before that, the newcomer is logged once and its datagrams are
held (bounded) and counted, so nothing it sent is lost if it does take over.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Hashable
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_SILENCE_S = 1.0
# A second source is logged at most this often, so a flood from forged addresses cannot flood the log.
LOG_INTERVAL_S = 10.0


def _canonical_ip(host: str) -> str:
    """An address as one spelling: IPv4-mapped IPv6 (from a dual-stack socket) as plain IPv4."""
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _ip_version(host: str) -> int | None:
    """4 or 6 for an address literal, None for a name or the empty (any) host."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).version
    except ValueError:
        return None


@dataclass(frozen=True)
class SourcePolicy:
    """``lock``: stay with the current sender until it is silent for ``silence_s``; ``hosts``: if set,
    only these IP addresses are ever heard."""

    lock: bool = False
    hosts: frozenset[str] | None = None
    silence_s: float = DEFAULT_SILENCE_S

    def __post_init__(self) -> None:
        if not self.silence_s > 0:
            raise ValueError(f"source silence must be positive, got {self.silence_s} s")

    @classmethod
    def parse(cls, text: str, silence_s: float = DEFAULT_SILENCE_S) -> SourcePolicy:
        """``any``, ``first`` or a host name or address (resolved once, here; a one-line error if not)."""
        if text == "any":
            return cls(False, None, silence_s)
        if text == "first":
            return cls(True, None, silence_s)
        try:
            infos = socket.getaddrinfo(text, None, type=socket.SOCK_DGRAM)
        except (OSError, UnicodeError) as exc:
            raise ValueError(f"--accept {text!r}: not any, first, or a host that resolves ({exc})") from None
        return cls(True, frozenset(_canonical_ip(info[4][0]) for info in infos), silence_s)

    def check_listen(self, listen_host: str) -> None:
        """Refuse (ValueError, one line) hosts a socket bound to ``listen_host`` can never hear: an IPv4
        socket gets no IPv6 datagrams and an IPv6 one (other than the dual-stack ``::``) no IPv4 ones."""
        family = _ip_version(listen_host)
        if self.hosts is None or family is None or listen_host.split("%")[0] == "::":
            return
        if not any(_ip_version(host) == family for host in self.hosts):
            raise ValueError(
                f"--accept {', '.join(sorted(self.hosts))}: a receiver listening on IPv{family} address "
                f"{listen_host} never hears it; listen on an IPv{6 if family == 4 else 4} address (or [::]) or "
                f"accept an IPv{family} host"
            )

    def hears(self, addr: Hashable) -> bool:
        """Whether datagrams from ``addr`` are considered at all."""
        if self.hosts is None:
            return True
        return isinstance(addr, tuple) and _canonical_ip(str(addr[0])) in self.hosts


class NewcomerLog:
    """One log line per newcomer session, at most one per :data:`LOG_INTERVAL_S`."""

    def __init__(self) -> None:
        self._last: tuple[Hashable, int] | None = None
        self._logged_at = float("-inf")

    def note(self, addr: Hashable, session_id: int, current: Hashable, now: float) -> None:
        if (addr, session_id) == self._last or now - self._logged_at < LOG_INTERVAL_S:
            return
        self._last, self._logged_at = (addr, session_id), now
        log.warning(
            "a second source %s sends session %016x; ignored while the current one from %s keeps sending",
            addr, session_id, current,
        )  # fmt: skip
