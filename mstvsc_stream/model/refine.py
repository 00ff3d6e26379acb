"""Sender-side latent refinement: spend encoder time for a better picture with the same weights and wire.

The encoder is one forward pass that must serve every GOP; a given GOP's latent can be improved by
gradient descent on the decoder's error, the same way as training but on the symbols, not the weights
(iterative or semi-amortised inference in learned compression). Each step decodes the GOP as the
receiver would at one of several loss rates in turn (the wire's rounding, erasure, the loss-recovery
network), counts its error per dB as ``--balanced-rates`` training does, and moves the continuous latent
before rounding (straight-through). The receiver needs nothing new: the symbols are ordinary 3-bit codes.

Why several rates: refining for the lossless picture alone buys the most at 0 % but packs meaning into
symbols the recovery network cannot guess, so heavy loss gets worse; steps at 0, 60, 90 and 90 % in
turn lift 0 % and 60 % and keep 90 % (docs/models.md, "Encoder effort").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .mstvsc import LEVEL_MAX, LEVEL_MIN, MSTVSC, Latents, quantize, round_through
from .training import erase, gop_mse

REFINE_RATES = (0.0, 0.6, 0.9, 0.9)  # the loss rates the steps take in turn (the carried f1x's training mix)
REFINE_LR = 0.05  # in quantisation levels per step (Adam)
REFINE_SEED = 0  # the erasure draws: the same GOP refines to the same symbols on every run
STALE_GUESS = 0.9  # what is left of a step-time guess per GOP that took no step to check it


@dataclass(frozen=True, slots=True)
class Refined:
    """What :func:`refine` returns: the wire's latents and what it spent on them."""

    latents: Latents
    steps: int  # the steps taken (fewer than asked when the deadline came first)
    seconds: float  # time spent after the encoder's own pass
    step_s: float  # its slowest step (when it took none, its guess, shrunk): the next GOP's guess


def refine(model: MSTVSC, frames: torch.Tensor, steps: int, rates: tuple[float, ...] = REFINE_RATES,
           lr: float = REFINE_LR, deadline: float | None = None, step_s: float = 0.0) -> Refined:
    """The wire's integer latents of ``frames`` ``[B, T, H, W, 3]`` after up to ``steps`` refinement
    steps (none is :meth:`MSTVSC.encode`, bit for bit). The model's weights are not touched.

    Step ``k`` decodes at loss rate ``rates[k % len(rates)]`` and descends each GOP's log MSE: one decode
    a step (decoding every rate each step cost about 5x as much for much the same gain), and the log
    keeps a 90 % step's larger error from outweighing a lossless one in Adam's moments.

    ``deadline`` (a :func:`time.perf_counter` time) bounds a live sender's encode: no step starts that
    would end after it, judged by the slowest step so far, or before the first by ``step_s`` (the last
    GOP's :attr:`Refined.step_s`) or the encoder's own pass, whichever is longer, so refinement does not
    make a GOP take longer than its share of the GOP interval."""
    began = time.perf_counter()
    with torch.no_grad():
        start = model.analysis(frames)
    refining = time.perf_counter()
    guess = max(step_s, refining - began)  # a step's time before one is timed (the encoder's pass is less)
    latent = [start.common.float(), start.individual.float()]

    def fits(step: float) -> bool:
        return deadline is None or time.perf_counter() + step <= deadline

    taken, slowest = _descend(model, frames, latent, steps, rates, lr, fits, guess) if steps > 0 else (0, 0.0)
    latents = Latents(*(quantize(t.detach(), False) for t in latent))
    # Untimed this GOP, the guess shrinks: one slow step (a preemption) must not stop refinement for good.
    return Refined(latents, taken, time.perf_counter() - refining, slowest if taken else STALE_GUESS * guess)


def _descend(model: MSTVSC, frames: torch.Tensor, latent: list[torch.Tensor], steps: int, rates: tuple[float, ...],
             lr: float, fits: Callable[[float], bool], guess: float) -> tuple[int, float]:
    """Moves ``latent`` (common, individual) in place for up to ``steps`` steps, each only if
    ``fits(the slowest step so far, or guess)``; returns (steps taken, the slowest)."""
    for t in latent:
        t.requires_grad_()
    optimizer = torch.optim.Adam(latent, lr=lr)
    batch = frames.shape[0]
    fast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=frames.device.type == "cpu")
    taken, slowest = 0, 0.0
    with torch.random.fork_rng(devices=[frames.device] if frames.device.type == "cuda" else []), fast:
        torch.manual_seed(REFINE_SEED)
        while taken < steps and fits(slowest or guess):
            step_began = time.perf_counter()
            rate = torch.full((batch,), rates[taken % len(rates)], device=frames.device)
            received, mask = erase(Latents(*(round_through(t) for t in latent)), rate)
            error = gop_mse(model.synthesis(model.recover(received, mask)), frames)
            for t, g in zip(latent, torch.autograd.grad(error.log().sum(), latent)):  # the weights get none
                t.grad = g
            optimizer.step()
            with torch.no_grad():  # past the outer levels rounding no longer moves, nor would the symbol
                for t in latent:
                    t.clamp_(LEVEL_MIN - 0.5, LEVEL_MAX + 0.5)
            taken += 1
            slowest = max(slowest, time.perf_counter() - step_began)
    return taken, slowest
