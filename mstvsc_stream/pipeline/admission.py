"""Receiver side: which streams this receiver can decode, judged by their session descriptors.

A stream encoded with other weights, or interleaved with another seed, decodes into noise, and nothing
in a segment says so; only the descriptor does. So descriptors are judged before the GOP buffer sees
them, and every datagram of a refused stream (known by its source address) is dropped and counted under
the refusal's reason, with one log line per stream and reason instead of one per datagram.

Frame sizes are capped (``max_frame_pixels``): a descriptor is a claim from the network, and a receiver
must not try to allocate whatever frames a stranger names. The models a receiver can decode with are
listed once, when it starts: a descriptor naming any other model id costs a dictionary lookup, no disk
read and no memory. Segments from the address the GOP buffer is
following pass whatever was refused from there, so a forged descriptor spoofing that address cannot
silence the stream it follows.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Hashable, Mapping
from typing import Protocol

from ..net.endpoint import Endpoint
from ..wire import DESCRIPTOR_LABEL, HEADER_SIZE, SegmentHeader, SessionDescriptor, WireError, seed_fingerprint
from ..wire.limits import MAX_FRAME_PIXELS

log = logging.getLogger(__name__)

# Refusals are remembered per source address; a flood of spoofed sources must not grow memory.
MAX_REMEMBERED = 64
# At most one refusal line per this many seconds: forged or mangled descriptors must not flood the log.
LOG_INTERVAL_S = 10.0


class CodecGeometry(Protocol):
    """What a model says about a stream's shape: a codec, or the config on a model card."""

    gop: int

    def latent_length(self, height: int, width: int) -> int: ...


class StreamAdmission:
    """Admits or refuses datagrams; ``refused_by_reason`` counts the refused ones.

    ``models``: the geometry of every model this receiver can decode with, by model id (listed once, at
    start). ``own_model_id`` only names the receiver's model in log lines.
    """

    def __init__(
        self,
        seed: int,
        models: Mapping[str, CodecGeometry],
        own_model_id: str,
        max_frame_pixels: int = MAX_FRAME_PIXELS,
    ) -> None:
        self._max_frame_pixels = max_frame_pixels
        self._fingerprint = seed_fingerprint(seed)
        self._models = models
        self._own_model_id = own_model_id
        self._refused: OrderedDict[Hashable, str] = OrderedDict()
        self._logged: OrderedDict[tuple[int, str], None] = OrderedDict()
        self._logged_at = float("-inf")
        self.refused_by_reason: Counter[str] = Counter()

    def admit(self, datagram: bytes, addr: Hashable, followed: bool = False) -> bool:
        """``followed``: ``addr`` is the source of the stream being received, whose segments always pass."""
        reason = self._judge(datagram, addr, followed)
        if reason is None:
            return True
        self.refused_by_reason[reason] += 1
        return False

    def _judge(self, datagram: bytes, addr: Hashable, followed: bool) -> str | None:
        descriptor = parse_descriptor(datagram)
        if descriptor is None:  # a segment, or malformed (the GOP buffer counts those under their reason)
            return None if followed else self._refused.get(addr)
        problem = self._problem(descriptor)
        if problem is None:
            self._refused.pop(addr, None)  # the source restarted with a stream we can decode
            return None
        reason, message = problem
        _remember(self._refused, addr, reason)
        now = time.monotonic()
        if (descriptor.session_id, reason) not in self._logged and now - self._logged_at >= LOG_INTERVAL_S:
            _remember(self._logged, (descriptor.session_id, reason), None)
            self._logged_at = now
            log.error("refusing the stream from %s: %s", source_address(addr), message)
        return reason

    def _problem(self, descriptor: SessionDescriptor) -> tuple[str, str] | None:
        if descriptor.width * descriptor.height > self._max_frame_pixels:
            return "frame_size", (
                f"its {descriptor.width}x{descriptor.height} frames exceed this receiver's limit of "
                f"{self._max_frame_pixels} pixels"
            )
        if descriptor.seed_fingerprint != self._fingerprint:
            return "seed_mismatch", (
                f"it is interleaved with another seed (fingerprint {descriptor.seed_fingerprint.hex()}, "
                f"ours {self._fingerprint.hex()}); give both ends the same --seed"
            )
        model_id = descriptor.model_id
        model = self._models.get(model_id)
        if model is None:
            return "model_mismatch", (
                f"it is encoded with model {model_id}, this receiver runs {self._own_model_id} "
                "and has no installed model with those weights"
            )
        d = descriptor
        expected = model.latent_length(d.height, d.width)
        if d.gop_length != model.gop or d.n_elements != expected:
            return "geometry_mismatch", (
                f"its {d.width}x{d.height} GOPs of {d.gop_length} frames claim {d.n_elements} latent elements, "
                f"model {model_id} makes {expected} from GOPs of {model.gop}"
            )
        return None


def parse_descriptor(datagram: bytes) -> SessionDescriptor | None:
    """The session descriptor a datagram carries; None for segments and for malformed datagrams."""
    try:
        if SegmentHeader.parse(datagram).label != DESCRIPTOR_LABEL:
            return None
        return SessionDescriptor.parse(memoryview(datagram)[HEADER_SIZE:])
    except WireError:
        return None


def _remember(memory: OrderedDict, key: Hashable, value: object) -> None:
    memory[key] = value
    memory.move_to_end(key)
    if len(memory) > MAX_REMEMBERED:
        memory.popitem(last=False)


def source_address(addr: Hashable) -> str:
    """A datagram's source as HOST:PORT for log lines."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return str(Endpoint(str(addr[0]), int(addr[1])))
    return str(addr)
