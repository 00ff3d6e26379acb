"""ONNX Runtime inference backend: the streaming path's codec, with no PyTorch needed.

Sessions open lazily, one per graph (part and padded frame size): a sender never loads the decoder, a
receiver never the encoder. Graphs come from the model folder (shipped sizes) or the user cache; a size
that has neither is exported on demand when PyTorch is installed and refused with one line otherwise.

Threading is set for small machines: sequential execution, ``threads`` intra-op workers (default: the
CPUs this process may use, at most 8; ``$MSTVSC_THREADS`` overrides) and no spin-waiting, so idle
workers do not take CPU from the capture and network threads sharing a 2-core box.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from ..model.config import padded_size
from .layout import check_frames, join_codes, pad_frames, split_codes, to_uint8
from .onnx_graphs import (
    CODES, DECODER, ENCODER, FP32, FRAMES, GRAPH_FORMAT, META_FORMAT, META_WEIGHTS, PARTS, PRECISIONS, RECEIVED,
    describe_sizes, graph_folder, graph_name, size_text,
)
from .zoo import ModelCard, ModelError

log = logging.getLogger(__name__)

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
_MAX_DEFAULT_THREADS = 8
_LOAD_ERRORS = (ort_errors.Fail, ort_errors.NoSuchFile, ort_errors.InvalidProtobuf, ort_errors.InvalidGraph,
                ort_errors.RuntimeException)


def default_threads() -> int:
    """Intra-op threads: ``$MSTVSC_THREADS``, else the usable CPUs (at most 8)."""
    text = os.environ.get("MSTVSC_THREADS")
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ModelError(f"MSTVSC_THREADS must be a positive integer, got {text!r}")
        return int(text)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(usable, _MAX_DEFAULT_THREADS)


def cuda_provider_available() -> bool:
    return CUDA in ort.get_available_providers()


def execution_providers(device: str) -> list[str]:
    """CUDA then CPU where a CUDA device is asked for and onnxruntime-gpu provides it; else CPU."""
    if device == "cuda":
        if cuda_provider_available():
            return [CUDA, CPU]
        log.warning("--device cuda: this onnxruntime has no CUDAExecutionProvider "
                    "(pip install 'mstvsc-stream[gpu]'); running ONNX on the CPU")
    return [CPU]


def session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # the pattern planner keeps one block per run shape on top of the arena: twice the activation
    # memory (0.9 GB instead of 0.5 GB for the 640x480 encoder) for no measurable speed
    options.enable_mem_pattern = False
    return options


class OnnxCodec:
    """:class:`~mstvsc_stream.runtime.base.Codec` running the exported graphs in ONNX Runtime.

    ``precision`` picks the fp32 or the int8 graphs (see :mod:`~mstvsc_stream.runtime.onnx_graphs`).
    ``folder`` restricts the graphs to one folder (used to check freshly exported graphs before they
    are shipped); by default shipped graphs, then the cache, then an on-demand export are tried.
    """

    def __init__(self, card: ModelCard, device: str = "cpu", threads: int | None = None,
                 folder: Path | None = None, precision: str = FP32) -> None:
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r} (choose {', '.join(PRECISIONS)})")
        self.card = card
        self.cfg = card.config
        self.gop = card.config.gop
        self.model_id = card.model_id
        self.precision = precision
        self.threads = threads or default_threads()
        self.providers = execution_providers(device)
        self.backend = self._backend_name(self.providers[0])
        self._folder = folder
        self._sessions: dict[tuple[str, int, int], ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def latent_length(self, height: int, width: int) -> int:
        return self.cfg.latent_length(height, width)

    def serves(self, height: int, width: int) -> bool:
        """Whether graphs for this frame size are at hand (shipped or cached), so none must be exported."""
        return self._folder is not None or graph_folder(self.card, padded_size(height, width), self.precision) is not None

    def prepare(self, height: int, width: int, parts: tuple[str, ...] = PARTS) -> None:
        """Open (and if needed export) the graphs for a frame size now instead of at the first GOP."""
        for part in parts:
            self._session(part, height, width)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        check_frames(frames, self.gop)
        _, height, width, _ = frames.shape
        common, individual = self._session(ENCODER, height, width).run(None, {FRAMES: pad_frames(frames)})
        return join_codes(common, individual)

    def decode_float(self, codes: np.ndarray, received: np.ndarray, height: int, width: int) -> np.ndarray:
        """Padded float frames ``[1, T, Hp, Wp, 3]`` in [0, 1], before cropping and uint8 rounding."""
        feeds = dict(zip(CODES, split_codes(self.cfg, codes, height, width)))
        feeds.update(zip(RECEIVED, split_codes(self.cfg, received, height, width)))
        return self._session(DECODER, height, width).run(None, feeds)[0]

    def decode(self, codes: np.ndarray, received: np.ndarray, height: int, width: int) -> np.ndarray:
        return to_uint8(self.decode_float(codes, received, height, width), height, width)

    def _session(self, part: str, height: int, width: int) -> ort.InferenceSession:
        key = (part, *padded_size(height, width))
        with self._lock:
            if key not in self._sessions:
                self._sessions[key] = self._open(part, key[1:], (height, width))
            return self._sessions[key]

    def _backend_name(self, provider: str) -> str:
        name = "onnx-cuda" if provider == CUDA else "onnx-cpu"
        return name if self.precision == FP32 else f"{name}-{self.precision}"

    def _open(self, part: str, padded: tuple[int, int], frame: tuple[int, int]) -> ort.InferenceSession:
        folder = self._folder or graph_folder(self.card, padded, self.precision) or self._export(padded, frame)
        path = folder / graph_name(part, padded, self.precision)
        if not path.exists():
            raise ModelError(f"{path} is missing")
        try:
            session = ort.InferenceSession(str(path), session_options(self.threads), providers=self.providers)
        except _LOAD_ERRORS as exc:  # e.g. a missing or truncated weights blob
            raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
        meta = session.get_modelmeta().custom_metadata_map
        if meta.get(META_WEIGHTS) != self.card.weights_sha256 or meta.get(META_FORMAT) != GRAPH_FORMAT:
            raise ModelError(f"{path} was not exported from this model's weights by this version; "
                             f"re-run python tools/export_onnx.py --model {self.card.name}")
        if self.providers[0] == CUDA and session.get_providers()[0] != CUDA:
            log.warning("ONNX Runtime could not start CUDA for %s; running it on the CPU", path.name)
            self.backend = self._backend_name(CPU)
        log.info("%s: %s %s, %s, %d thread%s", self.model_id, part, size_text(*padded), session.get_providers()[0],
                 self.threads, "" if self.threads == 1 else "s")
        return session

    def _export(self, padded: tuple[int, int], frame: tuple[int, int]) -> Path:
        try:
            from .onnx_export import export_to_cache
        except ImportError as exc:
            raise ModelError(
                f"no {self.precision} ONNX graphs of {self.card.name} for {size_text(*frame)} frames (padded "
                f"{size_text(*padded)}); shipped: {describe_sizes(self.card, self.precision)}; exporting other "
                f"sizes needs PyTorch (pip install 'mstvsc-stream[train]'): {exc}") from None
        log.warning("exporting %s ONNX graphs of %s for %s into the cache (one-off, can take a minute)",
                    self.precision, self.card.name, size_text(*padded))
        return export_to_cache(self.card, padded, self.precision)
