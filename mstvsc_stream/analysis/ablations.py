"""Inference-time ablations of the semantic scheme (paper, Fig. 13): the same trained model and the same
segment losses, with interleaving or packet-loss recovery switched off."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..wire import GopPacketizer, deinterleave, interleave

SEMANTIC = "mstvsc"
NO_RECOVERY = "mstvsc-norecovery"
NO_INTERLEAVE = "mstvsc-nointerleave"


class ContiguousPacketizer:
    """The wire path with interleaving undone (ablation): segment ``i`` carries latent elements in their
    own order, so a lost segment erases one contiguous block, as a burst would without interleaving.

    It wraps the real :class:`GopPacketizer`: handing it de-interleaved codes makes its interleaving put
    them back in latent order, and re-interleaving what it reassembles undoes its de-interleaving.
    """

    def __init__(self, packetizer: GopPacketizer) -> None:
        self.packetizer = packetizer

    def segments(self, codes: np.ndarray) -> list[bytes]:
        return self.packetizer.segments(deinterleave(codes, self.packetizer.seed))

    def reassemble(self, payloads: Mapping[int, bytes]) -> tuple[np.ndarray, np.ndarray]:
        codes, received = self.packetizer.reassemble(payloads)
        return interleave(codes, self.packetizer.seed), interleave(received, self.packetizer.seed)


@dataclass(frozen=True)
class Variant:
    """How one semantic scheme transmits and decodes."""

    scheme: str
    interleaved: bool
    recovery: bool  # False: decode the zero-filled latent as if all of it arrived (recovery adds nothing)


def variants(ablations: bool) -> list[Variant]:
    full = Variant(SEMANTIC, interleaved=True, recovery=True)
    if not ablations:
        return [full]
    return [full, Variant(NO_RECOVERY, interleaved=True, recovery=False),
            Variant(NO_INTERLEAVE, interleaved=False, recovery=True)]
