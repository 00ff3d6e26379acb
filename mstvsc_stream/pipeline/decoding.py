"""Receiver side, the decoder thread: a released GOP to frames, by decoding it or by holding a frame.

A GOP that the decoder has no time for (``held``) or of which nothing arrived (concealed) shows the last
frame again rather than what the decoder makes of an all-missing latent, because that looks better: on
the sample clip at 320x240 with the first ``mstvsc-small-c48`` checkpoint (6e15da05), holding the previous
GOP's last decoded frame scored 14.58 dB PSNR against the original GOP, the all-missing latent 9.88 dB (a
fully received GOP: 14.62 dB); tests/test_pipeline_concealment.py keeps checking this for the shipped
model. Only when there is no frame of the stream's size to hold yet is such a GOP decoded anyway.

Streams may name another installed model than the receiver's own; the installed models are listed once,
when the decoder is made (not per datagram, on the event loop), and one is loaded on first use, here in
the decoder thread, so the event loop never waits for weights to load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from enum import Enum

import numpy as np

from ..net.gopbuffer import ReleasedGop
from ..runtime import ModelError, list_models
from ..runtime.base import Codec
from ..timings import Timings
from ..wire import GopPacketizer, SessionDescriptor
from .admission import CodecGeometry

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
        self.models: Mapping[str, CodecGeometry] = installed_models(codec, load_model is not None)
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
            assert self._load_model is not None  # other models are admitted only with a loader
            codec = self._load_model(model_id.rpartition("@")[0])
            if codec.model_id != model_id:
                raise ModelError(f"the stream needs model {model_id}, loading it gave {codec.model_id}")
            log.info("switched to model %s for this stream", model_id)
            self._codecs[model_id] = codec
        return codec


def installed_models(codec: Codec, others: bool) -> dict[str, CodecGeometry]:
    """Every model a receiver can decode with, by model id: ``codec``'s, and with ``others`` each installed
    model (matched by its full id, never a path from the network). Reads the model cards once."""
    models: dict[str, CodecGeometry] = {}
    if others:
        try:
            models.update((card.model_id, card.config) for card in list_models())
        except ModelError as error:
            log.warning("cannot list the installed models (%s); only %s streams are decoded", error, codec.model_id)
    models[codec.model_id] = codec
    return models
