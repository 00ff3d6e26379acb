"""The one small interface between the streaming path and any semantic codec.

The sender calls :meth:`Codec.encode` on a GOP of frames, the receiver calls :meth:`Codec.decode` on the
reassembled latent. Everything else (quantisation, the model, the inference backend) hides behind it,
so transport code and tests can run with any honest implementation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Codec(Protocol):
    """A GOP codec producing 3-bit integer codes.

    * ``encode(frames)``: ``frames`` uint8 RGB ``[T, H, W, 3]`` with ``T == gop``; returns int8 codes in
      -4..3 as one flat C-order vector, common part then individual part, of length
      ``latent_length(H, W)``. Rounding and clamping happen inside the codec.
    * ``decode(codes, received, height, width)``: ``codes`` int8 of that length (missing elements are 0),
      ``received`` bool of the same length (True = element arrived); returns uint8 RGB ``[T, H, W, 3]``.
    """

    model_id: str  # name plus a short hash of the weights, e.g. "mstvsc-small-c48@1a2b3c4d5e6f7a8b"
    gop: int

    def latent_length(self, height: int, width: int) -> int: ...

    def encode(self, frames: np.ndarray) -> np.ndarray: ...

    def decode(self, codes: np.ndarray, received: np.ndarray, height: int, width: int) -> np.ndarray: ...


@runtime_checkable
class Refining(Protocol):
    """A codec that can spend more encode time on a better picture (``--refine``, sender-side latent
    refinement). A live sender bounds each GOP's encode with ``refine_budget_s`` (None: every one of the
    ``refine_steps`` asked for) and reads what the last encode spent from ``refined_steps`` and
    ``refined_s``, so that its adaptation judges the encoder by its own pass, not by the time it was given."""

    refine_steps: int
    refine_budget_s: float | None
    refined_steps: int
    refined_s: float


def backend_name(codec: Codec) -> str:
    """What runs ``codec`` for reports ("onnx-cpu-int8", "torch-cpu", ...): the real backends say so in
    ``codec.backend``; any other honest codec (a test's) is named by its class."""
    return getattr(codec, "backend", type(codec).__name__)
