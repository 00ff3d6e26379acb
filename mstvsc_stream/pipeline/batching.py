"""Sender side, one encoded GOP to the datagrams that carry it.

Kept apart from the sockets so the decisions made here can be tested exactly: how many segments fit a
rate, which labels go out when not all fit, and where the session-descriptor copies sit among them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from ..wire import DESCRIPTOR_COPIES, FLAG_END_OF_INPUT, HEADER_SIZE, SegmentHeader, SessionDescriptor, gop_number

# After the last GOP its descriptor goes out again, flagged end-of-input, this many times: the flag lets a
# receiver finalise its recording and exit at once. At 60 % loss all 8 copies are lost 1.7 % of the time.
END_OF_INPUT_COPIES = 8


def _gop_bytes(descriptor: SessionDescriptor, copies: int, overhead: int) -> tuple[int, int]:
    """Bytes of a GOP's descriptor copies, and of each of its segment datagrams (``overhead`` added to each)."""
    return copies * (len(descriptor.datagram()) + overhead), HEADER_SIZE + descriptor.payload_size + overhead


def rate_for_segments(
    descriptor: SessionDescriptor, count: int, copies: int = DESCRIPTOR_COPIES, overhead: int = 0
) -> float:
    """The kbit/s of UDP payload a GOP of ``count`` segments and its descriptor copies takes, one GOP per
    GOP interval: the inverse of :func:`segments_within_rate`."""
    described, segment = _gop_bytes(descriptor, copies, overhead)
    return (described + count * segment) * 8 / descriptor.gop_duration_s / 1000


def segments_within_rate(
    descriptor: SessionDescriptor, kbps: float | None, copies: int = DESCRIPTOR_COPIES, overhead: int = 0
) -> int:
    """How many of a GOP's segments fit into one GOP interval at ``kbps`` (all of them without a cap).

    The descriptor copies come first (a receiver cannot use any segment without one); every segment is
    counted at the full payload size, and every datagram with ``overhead`` more bytes (sealing). Interleaving
    spreads each segment's elements over the whole latent, so the receiver treats the segments left out
    exactly like lost ones, and any subset is as good as any other. Raises ValueError when not even one
    segment fits.
    """
    if kbps is None:
        return descriptor.n_segments
    described, segment = _gop_bytes(descriptor, copies, overhead)
    # a hair of tolerance, so the rate rate_for_segments() gives for a count buys that count
    fitting = math.floor((kbps * 1000 / 8 * descriptor.gop_duration_s - described) / segment + 1e-9)
    if fitting < 1:
        minimum = rate_for_segments(descriptor, 1, copies, overhead)
        raise ValueError(f"--kbps {kbps:g} is too low for this stream: the descriptors and one segment per GOP "
                         f"need {minimum:.1f} kbps")
    return min(fitting, descriptor.n_segments)


def stream_kbps(descriptor: SessionDescriptor, copies: int = DESCRIPTOR_COPIES, overhead: int = 0) -> float:
    """The rate of the whole stream, every segment and the descriptor copies of each GOP included."""
    return rate_for_segments(descriptor, descriptor.n_segments, copies, overhead)


def sending_labels(n_segments: int, count: int, counter: int) -> list[int]:
    """The labels of GOP ``counter`` that go out when only ``count`` of its ``n_segments`` are sent.

    The one place that decides what is withheld (for ``--kbps`` and the congestion controller alike): a
    window of ``count`` consecutive labels (wrapping) that starts ``count`` labels further on each GOP, so
    from GOP to GOP every label is withheld equally often and the same latent elements are never always
    the missing ones. Returned in label order.
    """
    if not 1 <= count <= n_segments:
        raise ValueError(f"send 1..{n_segments} segments of a GOP, not {count}")
    start = counter * count % n_segments
    return sorted((start + offset) % n_segments for offset in range(count))


def gop_datagrams(
    descriptor: SessionDescriptor, segments: list[bytes], labels: Sequence[int], copies: int
) -> list[bytes]:
    """Datagrams for the segments of ``segments`` under ``labels``, with ``copies`` descriptor datagrams
    among them.

    One copy leads, so a receiver joining now can place the segments that follow at once; the others are
    spread evenly, so a loss burst that takes some copies leaves others.
    """
    number = gop_number(descriptor.gop_counter)
    carried = [SegmentHeader(number, label).pack(segments[label]) for label in labels]
    described = descriptor.datagram()
    total = len(carried) + copies
    positions = {k * total // copies for k in range(copies)}  # distinct: steps of at least one slot
    pending = iter(carried)
    return [described if slot in positions else next(pending) for slot in range(total)]


def end_of_input_datagrams(last: SessionDescriptor) -> list[bytes]:
    """The last GOP's descriptor flagged end-of-input, :data:`END_OF_INPUT_COPIES` times.

    Sent after that GOP's segments, because a sender learns that a GOP was the last only when the input
    ends, which may be well after the GOP went out (a camera that stops, a trailing partial GOP).
    """
    return [replace(last, flags=last.flags | FLAG_END_OF_INPUT).datagram()] * END_OF_INPUT_COPIES
