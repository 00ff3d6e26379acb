"""Inference backends behind one interface (:class:`~mstvsc_stream.runtime.base.Codec`)."""

from __future__ import annotations

import logging

from .base import Codec
from .zoo import DEFAULT_MODEL, ModelCard, ModelError, find_model, list_models

log = logging.getLogger(__name__)

__all__ = ["Codec", "DEFAULT_MODEL", "ModelCard", "ModelError", "find_model", "list_models", "load_codec"]


def load_codec(model: str | None = None, backend: str = "auto", device: str = "cpu") -> Codec:
    """Open a shipped model (by name or folder) with the requested backend.

    ``backend``: "torch" or "auto" (the fastest available; today the PyTorch backend).
    ``device``: "cpu" or "cuda".
    """
    card = find_model(model)
    if backend not in ("auto", "torch"):
        raise ModelError(f"unknown backend {backend!r} (choose auto or torch)")
    try:
        import torch
    except ImportError:
        raise ModelError("the torch backend needs PyTorch: pip install 'mstvsc-stream[train]'") from None
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda asked for, but PyTorch sees no CUDA device")
    from .torch_backend import TorchCodec, load_torch_model

    codec = TorchCodec(load_torch_model(card, device), card.model_id, device)
    log.info("model %s on %s", card.model_id, codec.backend)
    return codec
