"""A virtual-clock rate limiter (GCRA, the token bucket written as a single timestamp).

One timestamp per link instead of a token count keeps it exact for any datagram size, needs no
refill timer, and answers directly the question a scheduler asks: *when* may this datagram go.
The sender uses it as its congestion-safety cap (RFC 8085), the relay as netem's ``rate`` link.
"""

from __future__ import annotations


class RateLimiter:
    """Books datagrams onto a link of ``kbps`` kilobits per second of UDP payload.

    ``burst_s`` is how far ahead of the link a sender may get: over any window of T seconds at most
    ``kbps * 1000 / 8 * (T + burst_s)`` bytes plus one datagram are booked. 0 means strict spacing.
    """

    def __init__(self, kbps: float, burst_s: float = 0.0) -> None:
        if not kbps > 0.0:
            raise ValueError(f"rate must be a positive number of kbit/s, got {kbps}")
        if burst_s < 0.0:
            raise ValueError(f"burst must be non-negative, got {burst_s} s")
        self.kbps = kbps  # may change between bookings (a rate schedule); booked datagrams keep their times
        self.burst_s = burst_s
        self._link_free_at = float("-inf")  # when everything booked so far has been serialised

    def transmission_time(self, size: int) -> float:
        """Seconds the link needs to carry ``size`` bytes."""
        return size * 8 / (self.kbps * 1000.0)

    def earliest_start(self, at: float) -> float:
        """The soonest moment, from ``at`` on, at which the next datagram conforms."""
        return max(at, self._link_free_at - self.burst_s)

    def book(self, size: int, start: float) -> None:
        """Record ``size`` bytes that started at ``start`` (a conforming moment)."""
        self._link_free_at = max(self._link_free_at, start) + self.transmission_time(size)

    def backlog(self, now: float) -> float:
        """Seconds until everything booked so far has been serialised (the queue, as time at the link)."""
        return max(0.0, self._link_free_at - now)

    def reserve(self, size: int, earliest: float) -> float:
        """Book ``size`` bytes at the soonest conforming moment from ``earliest`` on, and return it."""
        start = self.earliest_start(earliest)
        self.book(size, start)
        return start
