"""Where a model's ONNX graphs live, what they take and return, and whether they fit the weights.

Graphs have a fixed frame size: Swin window clipping, the in-block padding and the shift masks all
depend on the token grid, so one graph cannot serve every size. A graph is keyed by the *padded* size
the network sees (sides rounded up to 64), so ``encoder-320x256.onnx`` serves 320x240 and every other
frame size that pads to 320x256. All graphs in a folder keep their weights in one shared blob
(:data:`WEIGHTS_BLOB`), so each extra size costs only its graph structure, not another copy of the
weights. Shipped graphs sit beside ``weights.pt`` and are listed in the card's ``"onnx"`` mapping; other
sizes are exported on demand into a per-user cache. This module needs no PyTorch.

Each size comes in two precisions: ``fp32`` (``encoder-320x256.onnx``), bit-faithful to PyTorch, and
``int8`` (``encoder-320x256.int8.onnx``), the same graph with its matrix products dynamically quantised
to 8 bits. On a CPU with VNNI the int8 graphs run about 1.5x faster at a cost of about 0.01 dB, which is
what lets a sender and a receiver share two cores at 30 fps; GPUs run the fp32 graphs.
"""

from __future__ import annotations

import os
from pathlib import Path

from .zoo import ModelCard

# The frame sizes the export tool ships graphs for by default (each costs only its graph structure).
SHIPPED_SIZES = "256x192,320x240,640x480,1280x720,1920x1080"

ENCODER, DECODER = "encoder", "decoder"
PARTS = (ENCODER, DECODER)
FP32, INT8 = "fp32", "int8"
PRECISIONS = (FP32, INT8)
WEIGHTS_BLOB = "onnx-weights.bin"

# Graph inputs and outputs. Encoder: padded float frames in [0, 1] -> int8 codes in -4..3 (rounding
# inside). Decoder: float codes and 0/1 received masks -> padded float frames in [0, 1] (recovery inside).
FRAMES = "frames"
CODES = ("codes_common", "codes_individual")
RECEIVED = ("received_common", "received_individual")

# Bumped whenever the graphs' inputs, outputs or semantics change, so older graphs are never run.
GRAPH_FORMAT = "1"
META_WEIGHTS = "mstvsc.weights_sha256"
META_FORMAT = "mstvsc.graph_format"


def size_text(height: int, width: int) -> str:
    return f"{width}x{height}"


def graph_name(part: str, padded: tuple[int, int], precision: str = FP32) -> str:
    """File name of a graph for a padded ``(height, width)``, the same in the model folder and the cache."""
    height, width = padded
    suffix = "" if precision == FP32 else f".{precision}"
    return f"{part}-{width}x{height}{suffix}.onnx"


def shipped_sizes(card: ModelCard, precision: str = FP32) -> list[tuple[int, int]]:
    """Padded ``(height, width)`` sizes with both graphs of ``precision`` listed in the card, smallest first."""
    listed = set(card.data.get("onnx", {}))
    sizes = []
    for name in listed:
        size = _encoder_size(name, precision)
        if size is not None and graph_name(DECODER, size, precision) in listed:
            sizes.append(size)
    return sorted(sizes, key=lambda s: (s[0] * s[1], s))


def _encoder_size(name: str, precision: str) -> tuple[int, int] | None:
    """``(height, width)`` of an encoder graph file name of ``precision``, else None."""
    suffix = ".onnx" if precision == FP32 else f".{precision}.onnx"
    if not (name.startswith(f"{ENCODER}-") and name.endswith(suffix)):
        return None
    try:
        width, height = (int(v) for v in name[len(ENCODER) + 1 : -len(suffix)].split("x"))
    except ValueError:  # e.g. the fp32 pattern meeting "encoder-320x256.int8.onnx"
        return None
    return height, width


def cache_root() -> Path:
    """``$MSTVSC_CACHE_DIR``, else ``$XDG_CACHE_HOME/mstvsc-stream``, else ``~/.cache/mstvsc-stream``."""
    if os.environ.get("MSTVSC_CACHE_DIR"):
        return Path(os.environ["MSTVSC_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mstvsc-stream"


def cache_folder(card: ModelCard, padded: tuple[int, int], precision: str = FP32) -> Path:
    """One folder per model, weights, size and precision: exported whole, so a reader never sees half of one."""
    return cache_root() / card.model_id / f"g{GRAPH_FORMAT}-{size_text(*padded)}-{precision}"


def graph_folder(card: ModelCard, padded: tuple[int, int], precision: str = FP32) -> Path | None:
    """The folder holding both graphs for this padded size and precision (shipped first, then the cache)."""
    if padded in shipped_sizes(card, precision):
        return card.folder
    cached = cache_folder(card, padded, precision)
    if all((cached / graph_name(part, padded, precision)).exists() for part in PARTS):
        return cached
    return None


def describe_sizes(card: ModelCard, precision: str = FP32) -> str:
    """Human list of the shipped sizes for error messages, e.g. '320x256, 640x512'."""
    return ", ".join(size_text(*s) for s in shipped_sizes(card, precision)) or "none"
