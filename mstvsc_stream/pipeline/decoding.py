"""Receiver side, the decoder thread: a released GOP to frames, by decoding it or by holding a frame.

A GOP that the decoder has no time for (``held``) or of which nothing arrived (concealed) shows the last
frame again rather than what the decoder makes of an all-missing latent, because that looks better: on
the sample clip at 320x240 with the first ``mstvsc-small-c48`` checkpoint (6e15da05), holding the previous
GOP's last decoded frame scored 14.58 dB PSNR against the original GOP, the all-missing latent 9.88 dB (a
fully received GOP: 14.62 dB); tests/test_pipeline_concealment.py keeps checking this for the shipped
model. Only when there is no frame of the stream's size to hold yet is such a GOP decoded anyway.

Streams may name another installed model than the receiver's own; it is loaded on first use, here in the
decoder thread, so the event loop never waits for weights to load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum

import numpy as np

from ..net.gopbuffer import ReleasedGop
from ..runtime import ModelError, list_models
from ..runtime.base import Codec
from ..wire import GopPacketizer, SessionDescriptor
from .admission import CodecGeometry
from .metrics import Timings

log = logging.getLogger(__name__)


class Outcome(Enum):
    DECODED = "decoded"
    HELD = "held"  # the decoder fell behind
    CONCEALED = "concealed"  # nothing of the GOP arrived


class GopDecoder:
    """Turns released GOPs into frames; :meth:`render` runs in one worker thread, in GOP order.

    ``load_model(name)`` opens another installed model; without it only ``codec``'s streams decode.
    """

    def __init__(self, codec: Codec, seed: int, load_model: Callable[[str], Codec] | None = None) -> None:
        self.decode_ms = Timings()
        self._seed = seed
        self._load_model = load_model
        self._codecs: dict[str, Codec] = {codec.model_id: codec}
        self._packetizer_for: tuple[tuple[object, ...], GopPacketizer] | None = None  # one stream at a time
        self._last_frame: np.ndarray | None = None

    def render(self, gop: ReleasedGop, held: bool) -> tuple[np.ndarray, Outcome]:
        """The GOP's frames ``[T, H, W, 3]`` and what became of the GOP."""
        descriptor = gop.descriptor
        last = self._last_frame
        if last is not None and last.shape[:2] != (descriptor.height, descriptor.width):
            last = None  # a new session of another size: nothing to hold yet
        if gop.concealed:
            outcome = Outcome.CONCEALED
        else:
            outcome = Outcome.HELD if held and last is not None else Outcome.DECODED
        if outcome is not Outcome.DECODED and last is not None:
            frames = np.repeat(last[np.newaxis], descriptor.gop_length, axis=0)
        else:
            frames = self._decode(gop)
        self._last_frame = frames[-1]
        return frames, outcome

    def find_model(self, model_id: str) -> CodecGeometry | None:
        """The geometry of a model that can decode ``model_id`` streams, or None (admission's question).

        Only installed models are considered, matched by their full id, never a path from the network.
        """
        if model_id in self._codecs:
            return self._codecs[model_id]
        if self._load_model is None:
            return None
        try:
            cards = list_models()
        except ModelError:
            return None
        return next((card.config for card in cards if card.model_id == model_id), None)

    def _decode(self, gop: ReleasedGop) -> np.ndarray:
        descriptor = gop.descriptor
        codes, received = self._packetizer(descriptor).reassemble(gop.payloads)
        codec = self._codec_for(descriptor.model_id)
        started = time.perf_counter()
        frames = codec.decode(codes, received, descriptor.height, descriptor.width)
        self.decode_ms.add((time.perf_counter() - started) * 1000)
        return frames

    def _packetizer(self, descriptor: SessionDescriptor) -> GopPacketizer:
        """The current stream's packetizer, rebuilt when the stream changes (memory stays bounded)."""
        key = descriptor.stream_key()
        if self._packetizer_for is None or self._packetizer_for[0] != key:
            self._packetizer_for = (key, descriptor.packetizer(self._seed))
        return self._packetizer_for[1]

    def _codec_for(self, model_id: str) -> Codec:
        codec = self._codecs.get(model_id)
        if codec is None:
            assert self._load_model is not None  # find_model accepts other models only with a loader
            codec = self._load_model(model_id.rpartition("@")[0])
            if codec.model_id != model_id:
                raise ModelError(f"the stream needs model {model_id}, loading it gave {codec.model_id}")
            log.info("switched to model %s for this stream", model_id)
            self._codecs[model_id] = codec
        return codec
