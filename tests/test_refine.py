"""Sender-side latent refinement: same wire, same weights, a better decode for the rates it refines for."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from mstvsc_stream.cli.send import build_parser
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.model.mstvsc import MSTVSC, Latents
from mstvsc_stream.model.refine import refine
from mstvsc_stream.pipeline.adaptation import blank_gop_seconds
from mstvsc_stream.runtime import ModelError, load_codec
from mstvsc_stream.runtime.torch_backend import TorchCodec

TINY = CONFIGS["tiny-test"]


@pytest.fixture(scope="module")
def model() -> MSTVSC:
    torch.manual_seed(0)
    return MSTVSC(TINY).eval()


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    """Two GOPs of smooth moving gradients (a picture the tiny decoder can get nearer to)."""
    t, y, x = torch.meshgrid(torch.arange(4.0), torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    gop = torch.stack([(x + 0.1 * t) % 1, y, (x + y) / 2], -1)
    return torch.stack([gop, gop.flip(2)])


def lossless_mse(model: MSTVSC, y: Latents, frames: torch.Tensor) -> list[float]:
    with torch.no_grad():
        return (model.synthesis(y).clamp(0, 1) - frames).pow(2).flatten(1).mean(1).tolist()


def test_no_steps_is_the_plain_encoder(model: MSTVSC, frames: torch.Tensor) -> None:
    plain = model.encode(frames)
    for refined in (refine(model, frames, 0), refine(model, frames, 50, deadline=time.perf_counter())):
        assert refined.steps == 0, "no steps asked, or no time for one"
        assert torch.equal(plain.common, refined.latents.common)
        assert torch.equal(plain.individual, refined.latents.individual)


def test_a_deadline_stops_refinement_within_it(model: MSTVSC, frames: torch.Tensor) -> None:
    assert refine(model, frames, 3).steps == 3, "no deadline: every step asked for"
    began = time.perf_counter()
    refined = refine(model, frames, 10**6, deadline=began + 2.0)  # room for a step on a busy machine too
    assert 0 < refined.steps < 10**6
    assert time.perf_counter() - began < 2.0 + 3.0  # one step of the tiny model: well under the slack


def test_refining_for_the_lossless_picture_lowers_each_gops_error(model: MSTVSC, frames: torch.Tensor) -> None:
    before = lossless_mse(model, model.encode(frames), frames)
    after = lossless_mse(model, refine(model, frames, 20, rates=(0.0,)).latents, frames)
    assert all(a < 0.99 * b for a, b in zip(after, before)), (before, after)  # random weights: a little


def test_refined_symbols_are_wire_symbols_and_reproducible(model: MSTVSC, frames: torch.Tensor) -> None:
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    first, second = refine(model, frames, 4).latents, refine(model, frames, 4).latents
    plain = model.encode(frames)
    for a, b, p in zip((first.common, first.individual), (second.common, second.individual),
                       (plain.common, plain.individual)):
        assert a.shape == p.shape and torch.equal(a, b) and not a.requires_grad
        assert torch.equal(a, a.round()) and a.min() >= -4 and a.max() <= 3
    assert not torch.equal(first.individual, plain.individual)  # four steps did move some symbols
    assert torch.equal(torch.random.get_rng_state(), rng)  # its erasure draws leave the caller's RNG alone
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_codec_sends_refined_codes_the_plain_decoder_reads(model: MSTVSC) -> None:
    gop = np.random.default_rng(1).integers(0, 256, (TINY.gop, 70, 100, 3), dtype=np.uint8)
    plain, refined = TorchCodec(model, "tiny-test@" + "00" * 8), TorchCodec(model, "tiny-test@" + "00" * 8, refine_steps=3)
    codes = refined.encode(gop)
    assert codes.dtype == np.int8 and codes.shape == plain.encode(gop).shape
    assert plain.decode(codes, np.ones(codes.shape, bool), 70, 100).shape == gop.shape


def test_refinement_is_refused_on_onnx_and_a_negative_count() -> None:
    with pytest.raises(ModelError, match="--backend torch"):
        load_codec(None, backend="onnx", refine_steps=5)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--input", "x.mp4", "--to", "127.0.0.1:5000", "--refine", "-1"])
    assert build_parser().parse_args(["--input", "x.mp4", "--to", "127.0.0.1:5000", "--refine", "30"]).refine == 30


def test_timing_a_size_times_the_encoders_own_pass(model: MSTVSC) -> None:
    """``--size auto`` and the warm-up judge a size by the encoder's pass; live refinement fills what is left."""
    codec = TorchCodec(model, "tiny-test@" + "00" * 8, refine_steps=5)
    blank_gop_seconds(codec, 64, 64, runs=1)
    assert codec.refined_steps == 0 and codec.refine_budget_s is None  # none taken, the budget put back
    codec.encode(np.zeros((TINY.gop, 64, 64, 3), np.uint8))
    assert codec.refined_steps == 5
