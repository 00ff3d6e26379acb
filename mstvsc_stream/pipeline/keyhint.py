"""Receiver side: one line saying why nothing plays when the two ends disagree about --key-file.

A receiver and a sender with different keys (or one with a key and one without) exchange nothing but
refused datagrams, each merely counted (``forged``, or ``version``/``orphaned`` by a plain receiver).
So a source whose refused datagrams reach :data:`REFUSALS_BEFORE_HINT` without one accepted gets a
warning naming the likely cause. What the receiver can tell apart:

* a sealed receiver either cannot authenticate a sealed stream (another key) or gets a plain one (its
  descriptors parse in clear: the sender has no key);
* a plain receiver sees descriptor-labelled datagrams whose body is no descriptor but is long enough to
  be a sealed one: the stream looks sealed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable

from ..wire import DESCRIPTOR_FIXED_SIZE
from ..wire.header import is_descriptor_datagram
from ..wire.sealing import SEALED_MIN_SIZE
from .admission import MAX_REMEMBERED, parse_descriptor, source_address

log = logging.getLogger(__name__)

REFUSALS_BEFORE_HINT = 8  # a few stray datagrams are not a misconfiguration; a stream's first GOPs are
SEALED_DESCRIPTOR_MIN_SIZE = SEALED_MIN_SIZE + DESCRIPTOR_FIXED_SIZE


class _Source:
    __slots__ = ("accepted", "plain", "refused")

    def __init__(self) -> None:
        self.accepted = False
        self.refused = 0
        self.plain = False  # a refused datagram was a valid plain descriptor


class KeyMismatchHint:
    """Counts, per source, datagrams refused for a key mismatch; warns once per source when none got in.

    ``sealed``: this receiver has a key.
    """

    def __init__(self, sealed: bool) -> None:
        self._sealed = sealed
        self._sources: OrderedDict[Hashable, _Source] = OrderedDict()

    def opened(self, datagram: bytes, addr: Hashable, accepted: bool) -> None:
        """A sealed receiver's datagram, and whether it authenticated."""
        source = self._source(addr)
        if source is None:
            return
        if accepted:
            source.accepted = True
            return
        source.plain = source.plain or parse_descriptor(datagram) is not None
        self._refused(source, addr)

    def plain(self, datagram: bytes, addr: Hashable) -> None:
        """A plain receiver's datagram: descriptors tell whether the source's stream is sealed."""
        if not is_descriptor_datagram(datagram):
            return
        source = self._source(addr)
        if source is None:
            return
        if parse_descriptor(datagram) is not None:
            source.accepted = True
        elif len(datagram) >= SEALED_DESCRIPTOR_MIN_SIZE:
            self._refused(source, addr)

    def _source(self, addr: Hashable) -> _Source | None:
        """The source's state, or None once it was accepted or warned about (nothing more to learn)."""
        source = self._sources.get(addr)
        if source is None:
            source = self._sources[addr] = _Source()
            if len(self._sources) > MAX_REMEMBERED:
                self._sources.popitem(last=False)
        if source.accepted or source.refused >= REFUSALS_BEFORE_HINT:
            return None
        return source

    def _refused(self, source: _Source, addr: Hashable) -> None:
        source.refused += 1
        if source.refused < REFUSALS_BEFORE_HINT:
            return
        where = source_address(addr)
        if not self._sealed:
            message = (f"the stream from {where} looks sealed: this receiver has no --key-file "
                       "(give it the sender's)")
        elif source.plain:
            message = (f"the stream from {where} is not sealed: this receiver has a --key-file, "
                       "the sender has none (give it the same one)")
        else:
            message = (f"every datagram from {where} fails authentication: "
                       "do both ends use the same --key-file?")
        log.warning("%s", message)
