"""PyTorch inference backend (CPU or CUDA): the reference the ONNX graphs are checked against."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..model.mstvsc import MSTVSC, Latents
from ..model.refine import refine
from .layout import check_frames, join_codes, pad_frames, split_codes, to_uint8
from .zoo import ModelCard, ModelError


def load_torch_model(card: ModelCard, device: str = "cpu") -> MSTVSC:
    try:
        blob = torch.load(card.weights_path, map_location="cpu", weights_only=True)
        model = MSTVSC(card.config)
        model.load_state_dict(blob["state_dict"])
    except (OSError, RuntimeError, KeyError) as exc:
        raise ModelError(f"cannot load {card.weights_path}: {exc}") from None
    return model.eval().to(device)


class TorchCodec:
    """:class:`~mstvsc_stream.runtime.base.Codec` running the PyTorch model; ``refine_steps`` > 0 refines
    each GOP's latent against the decoder before sending (:func:`~mstvsc_stream.model.refine.refine`),
    within ``refine_budget_s`` of the encode's start when a live sender sets one
    (:class:`~mstvsc_stream.runtime.base.Refining`)."""

    def __init__(self, model: MSTVSC, model_id: str, device: str = "cpu", refine_steps: int = 0) -> None:
        self.model = model.eval().to(device)
        self.refine_steps = refine_steps
        self.refine_budget_s: float | None = None
        self.refined_steps, self.refined_s = 0, 0.0  # what the last encode spent refining
        self._step_s = 0.0  # the last GOP's slowest step (Refined.step_s): the next live encode judges its first by it
        self.model_id = model_id
        self.cfg = model.cfg
        self.gop = model.cfg.gop
        self.device = torch.device(device)
        self.backend = f"torch-{self.device.type}"

    def latent_length(self, height: int, width: int) -> int:
        return self.cfg.latent_length(height, width)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        check_frames(frames, self.gop)
        x = torch.from_numpy(pad_frames(frames)).to(self.device)
        deadline = None if self.refine_budget_s is None else began + self.refine_budget_s
        refined = refine(self.model, x, self.refine_steps, deadline=deadline, step_s=self._step_s)
        self.refined_steps, self.refined_s, self._step_s = refined.steps, refined.seconds, refined.step_s
        y = refined.latents
        return join_codes(y.common.cpu().numpy(), y.individual.cpu().numpy())

    @torch.inference_mode()
    def decode(self, codes: np.ndarray, received: np.ndarray, height: int, width: int) -> np.ndarray:
        (yc, yi), (mc, mi) = split_codes(self.cfg, codes, height, width), split_codes(self.cfg, received, height, width)
        t = lambda a: torch.from_numpy(a).to(self.device)  # noqa: E731
        out = self.model.decode(Latents(t(yc) * t(mc), t(yi) * t(mi)), Latents(t(mc), t(mi)))
        return to_uint8(out.float().cpu().numpy(), height, width)
