"""Inference backends behind one interface (:class:`~mstvsc_stream.runtime.base.Codec`).

Importing this package, and running the ONNX backend, never imports PyTorch.
"""

from __future__ import annotations

import logging

from .backends import BACKENDS, DEVICES, INT8_PSNR_COST_DB, PRECISION_CHOICES, choose_backend, choose_precision
from .base import Codec
from .zoo import DEFAULT_MODEL, ModelCard, ModelError, find_model, list_models

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "DEVICES", "INT8_PSNR_COST_DB", "PRECISION_CHOICES", "Codec", "DEFAULT_MODEL", "ModelCard", "ModelError", "find_model", "list_models",
           "load_codec"]


def load_codec(model: str | None = None, backend: str = "auto", device: str = "cpu",
               threads: int | None = None, precision: str = "auto", refine_steps: int = 0) -> Codec:
    """Open a shipped model (by name or folder) with the requested backend.

    ``backend``: "onnx" (ONNX Runtime), "torch" (PyTorch) or "auto" (the fastest usable, logged).
    ``device``: "cpu" or "cuda". ``threads``: intra-op threads (default: see
    :func:`~mstvsc_stream.runtime.onnx_backend.default_threads` for ONNX, PyTorch's own default for torch).
    ``precision``: "fp32", "int8" (ONNX on the CPU only) or "auto" (int8 where it runs).
    ``refine_steps``: sender-side latent refinement (:mod:`~mstvsc_stream.model.refine`); it needs
    gradients through the decoder, so it runs on PyTorch ("auto" picks it, "onnx" is refused).
    """
    card = find_model(model)
    if refine_steps:
        if backend == "onnx":
            raise ModelError("--refine differentiates through the decoder, which ONNX Runtime cannot: use "
                             "--backend torch (or auto)")
        backend = "torch"
    backend, device = choose_backend(card, backend, device)
    precision = choose_precision(card, backend, device, precision)
    if backend == "onnx":
        from .onnx_backend import OnnxCodec

        codec: Codec = OnnxCodec(card, device, threads, precision=precision)
    else:
        import torch

        from .torch_backend import TorchCodec, load_torch_model

        if threads:
            torch.set_num_threads(threads)
        codec = TorchCodec(load_torch_model(card, device), card.model_id, device, refine_steps)
    log.info("model %s on %s", card.model_id, codec.backend)
    return codec
