"""Which inference backend runs a model: the fastest one that is installed and usable, said in the log.

ONNX Runtime is preferred whenever it can serve the model (graphs shipped, or PyTorch present to export
them): it is faster than eager PyTorch on the CPU and needs no PyTorch at all. A CUDA request falls
back to the CPU with a warning when neither ONNX Runtime nor PyTorch can use a CUDA device; only an
explicit ``torch`` + ``cuda`` request without CUDA is an error, since nothing else was asked for.
PyTorch is imported only where the choice really depends on it.

The precision follows the backend: "auto" is int8 where the int8 graphs can run (ONNX Runtime on the
CPU, graphs shipped or exportable), since it is what lets encoder and decoder keep up on a small CPU,
and fp32 everywhere else.
"""

from __future__ import annotations

import logging
from types import ModuleType

from .onnx_graphs import FP32, INT8, PRECISIONS, describe_sizes, shipped_sizes
from .zoo import ModelCard, ModelError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnx", "torch")
DEVICES = ("cpu", "cuda")
PRECISION_CHOICES = ("auto", *PRECISIONS)
# What int8 costs against fp32, measured on the default model's validation clips at 0-90 % loss
# (docs/models.md#inference-backends): said the same way in the log, --help and the docs.
INT8_PSNR_COST_DB = 0.03
_CUDA_PROVIDER = "CUDAExecutionProvider"


def import_torch() -> ModuleType | None:
    """PyTorch, or None where it is not installed (the streaming path must work without it)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def import_onnxruntime() -> ModuleType | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def choose_backend(card: ModelCard, backend: str, device: str) -> tuple[str, str]:
    """Check the request and resolve "auto": the ``(backend, device)`` the model will run with."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown backend {backend!r} (choose {', '.join(BACKENDS)})")
    if device not in DEVICES:
        raise ModelError(f"unknown device {device!r} (choose {', '.join(DEVICES)})")
    if backend == "onnx":
        if import_onnxruntime() is None:
            raise ModelError("the onnx backend needs ONNX Runtime: pip install onnxruntime")
        return "onnx", device  # the ONNX codec itself falls back to the CPU without a CUDA provider
    if backend == "torch":
        torch = import_torch()
        if torch is None:
            raise ModelError("the torch backend needs PyTorch: pip install 'mstvsc-stream[train]'")
        if device == "cuda" and not torch.cuda.is_available():
            raise ModelError("--device cuda asked for, but PyTorch sees no CUDA device")
        return "torch", device
    return _auto(card, device)


def _auto(card: ModelCard, device: str) -> tuple[str, str]:
    ort = import_onnxruntime()
    shipped = bool(shipped_sizes(card))
    onnx_usable = ort is not None and (shipped or import_torch() is not None)
    if device == "cuda":
        if onnx_usable and _CUDA_PROVIDER in ort.get_available_providers():
            log.info("backend auto: ONNX Runtime on CUDA")
            return "onnx", "cuda"
        torch = import_torch()
        if torch is not None and torch.cuda.is_available():
            log.info("backend auto: PyTorch on CUDA (ONNX Runtime has no CUDA provider here)")
            return "torch", "cuda"
        log.warning("backend auto: no usable CUDA (ONNX Runtime: no CUDA provider; PyTorch: %s); using the CPU",
                    "no CUDA device" if torch is not None else "not installed")
    if onnx_usable:
        source = f"graphs shipped for {describe_sizes(card)}" if shipped else "graphs exported on demand"
        log.info("backend auto: ONNX Runtime on the CPU (%s)", source)
        return "onnx", "cpu"
    if import_torch() is not None:
        log.info("backend auto: PyTorch on the CPU (ONNX Runtime is not installed)")
        return "torch", "cpu"
    raise ModelError(f"{card.name}: no inference backend (no ONNX graphs shipped, ONNX Runtime or PyTorch missing)")


def choose_precision(card: ModelCard, backend: str, device: str, precision: str) -> str:
    """Check the request and resolve "auto" for a ``(backend, device)`` from :func:`choose_backend`."""
    if precision not in PRECISION_CHOICES:
        raise ModelError(f"unknown precision {precision!r} (choose {', '.join(PRECISION_CHOICES)})")
    int8_runs = backend == "onnx" and device == "cpu"
    if precision == INT8 and not int8_runs:
        raise ModelError("--precision int8 runs on ONNX Runtime's CPU provider only "
                         "(use --backend onnx --device cpu, or --precision fp32)")
    if precision != "auto":
        return precision
    if int8_runs and (shipped_sizes(card, INT8) or _can_export()):
        log.info("precision auto: int8 graphs (faster on the CPU, within %.2f dB of fp32)", INT8_PSNR_COST_DB)
        return INT8
    log.info("precision auto: fp32")
    return FP32


def _can_export() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return import_torch() is not None
