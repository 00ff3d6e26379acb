"""The MSTVSC network: shapes and CBR, MoE routing, mask-gated recovery, training, save/load."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch

from mstvsc_stream.model.config import CONFIGS, MSTVSCConfig, padded_size
from mstvsc_stream.model.moe import MoE
from mstvsc_stream.model.mstvsc import MSTVSC, Latents
from mstvsc_stream.model.recovery import CommonRecovery, IndividualRecovery
from mstvsc_stream.model.training import (LossWeights, distortion, encoder_parameters, erase, recovery_parameters,
                                          set_stage, stage1_loss, stage2_loss)
from mstvsc_stream.model.widen import deepen, residual_outputs, widen_latent, widen_recovery
from mstvsc_stream.runtime.torch_backend import TorchCodec

TINY = CONFIGS["tiny-test"]


@pytest.mark.parametrize("name, cbr", [("small", 96 / 6144), ("mid", 96 / 6144), ("large", 96 / 6144),
                                       ("small-c48", 48 / 6144), ("mid-c48", 48 / 6144)])
def test_cbr_follows_table_ii(name: str, cbr: float) -> None:
    cfg = CONFIGS[name]
    assert cfg.cbr == pytest.approx(cbr)
    # CBR is elements over source dimensions for frame sides that are multiples of 64
    assert cfg.latent_length(256, 384) / (cfg.gop * 256 * 384 * 3) == pytest.approx(cbr)


def test_table_ii_sizes() -> None:
    assert CONFIGS["small"].depths == (1, 1, 1) and CONFIGS["mid"].depths == (2, 2, 2)
    assert CONFIGS["large"].widths == (48, 96, 144) and CONFIGS["large"].st_widths == (192, 240)
    assert CONFIGS["large"].ind_width == 288 and CONFIGS["mid"].ind_depth == 2


@pytest.mark.parametrize("height, width", [(64, 64), (120, 176), (240, 320), (100, 70)])
def test_odd_frame_sizes_round_trip_shapes(height: int, width: int) -> None:
    torch.manual_seed(0)
    codec = TorchCodec(MSTVSC(TINY), "tiny-test@" + "00" * 8)
    frames = np.random.default_rng(0).integers(0, 256, (TINY.gop, height, width, 3), dtype=np.uint8)
    codes = codec.encode(frames)
    assert codes.dtype == np.int8 and codes.shape == (TINY.latent_length(height, width),)
    assert codes.min() >= -4 and codes.max() <= 3
    out = codec.decode(codes, np.ones(codes.shape, bool), height, width)
    assert out.shape == frames.shape and out.dtype == np.uint8
    ph, pw = padded_size(height, width)
    assert ph % 64 == 0 and pw % 64 == 0 and ph - height < 64 and pw - width < 64


def test_latent_shapes_and_order() -> None:
    common, individual = CONFIGS["small-c48"].latent_shapes(240, 320)
    assert common == (1, 8, 10, 48) and individual == (4, 4, 5, 48)  # padded to 256x320: H/32, H/64
    model = MSTVSC(TINY).eval()
    y = model.encode(torch.rand(1, 4, 128, 192, 3))
    assert y.common.shape == (1, 1, 4, 6, TINY.latent) and y.individual.shape == (1, 4, 2, 3, TINY.latent)


def test_moe_routes_top_k_and_balances() -> None:
    torch.manual_seed(0)
    moe = MoE(16, experts=4, top_k=2, ratio=2.0).train()
    tokens = torch.randn(256, 16)
    weights, probs = moe.gates(tokens)
    assert ((weights > 0).sum(-1) == 2).all()
    assert torch.allclose(weights.sum(-1), torch.ones(256))
    assert torch.allclose(probs.sum(-1), torch.ones(256))
    moe(tokens)
    assert moe.aux_loss.item() >= 1.0 - 1e-6  # 1 when perfectly balanced, more otherwise
    # routing everything to one expert is penalised more than the random router's spread
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.bias.copy_(torch.tensor([10.0, 9.0, 0.0, 0.0]))
    moe(tokens)
    assert moe.aux_loss.item() > 1.5


def test_moe_output_is_weighted_sum_of_selected_experts() -> None:
    torch.manual_seed(1)
    moe = MoE(8, experts=3, top_k=1, ratio=1.0).eval()
    x = torch.randn(5, 8)
    weights, _ = moe.gates(x)
    expert = weights.argmax(-1)
    expected = torch.stack([
        torch.nn.functional.gelu(x[i] @ moe.w1[e] + moe.b1[e, 0]) @ moe.w2[e] + moe.b2[e, 0]
        for i, e in enumerate(expert.tolist())
    ])
    assert torch.allclose(moe(x), expected, atol=1e-5)


@pytest.mark.parametrize("module, shape", [(CommonRecovery(6, 8, 2), (2, 1, 4, 5, 6)),
                                           (IndividualRecovery(6, 8, 2), (2, 4, 2, 3, 6))])
def test_recovery_passes_received_elements_unchanged(module, shape) -> None:
    torch.manual_seed(2)
    y = torch.randint(-4, 4, shape).float()
    received = (torch.rand(shape) > 0.5).float()
    out = module(y * received, received)
    kept = received.bool()
    assert torch.equal(out[kept], (y * received)[kept])
    assert not torch.equal(out[~kept], torch.zeros_like(out[~kept]))  # lost elements get a prediction


def test_erasure_rate_per_gop() -> None:
    torch.manual_seed(3)
    y = Latents(torch.ones(2, 1, 8, 8, 16), torch.ones(2, 4, 4, 4, 16))
    received, mask = erase(y, torch.tensor([0.0, 0.9]))
    assert mask.common[0].mean() == 1.0 and mask.individual[0].mean() == 1.0
    assert 0.05 < mask.common[1].mean() < 0.2
    assert torch.equal(received.individual, y.individual * mask.individual)


def test_training_steps_reduce_loss() -> None:
    torch.manual_seed(4)
    model = MSTVSC(TINY)
    frames = torch.rand(2, 4, 64, 64, 3)
    frames = frames * 0.3 + torch.linspace(0, 0.6, 64).view(1, 1, 1, 64, 1)  # some structure to learn
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss, info = stage1_loss(model, frames, LossWeights())
        optim.zero_grad()
        loss.backward()
        optim.step()
        first = first if first is not None else info["mse"]
    assert info["mse"] < 0.5 * first
    loss2, info2 = stage2_loss(model, frames, torch.tensor([0.3, 0.9]), LossWeights())
    loss2.backward()
    assert set(info2) == {"mse", "aux", "latent"} and np.isfinite(loss2.item())


def test_balanced_distortion_weighs_each_gop_per_db() -> None:
    """``--balanced-rates``: a GOP with 4x the error gets 1/4 of the pull per unit of error it would get
    plainly, relative to a GOP at the batch's mean error; equal errors give the plain gradient exactly."""
    frames = torch.zeros(2, 2, 4, 4, 3)
    recon = torch.ones_like(frames) * torch.tensor([0.1, 0.2]).view(2, 1, 1, 1, 1)  # MSEs 0.01 and 0.04
    grads = {}
    for balanced in (False, True):
        r = recon.clone().requires_grad_(True)
        term, mse = distortion(r, frames, balanced)
        term.backward()
        grads[balanced] = r.grad
        assert mse.item() == pytest.approx(0.025)
    ratio = (grads[True] / grads[False]).flatten(1)
    assert torch.allclose(ratio[0], torch.tensor(0.025 / 0.01)) and torch.allclose(ratio[1], torch.tensor(0.025 / 0.04))
    same = torch.full_like(frames, 0.3, requires_grad=True)
    plain, balanced = (torch.autograd.grad(distortion(same, frames, b)[0], same)[0] for b in (False, True))
    assert torch.allclose(plain, balanced)


def test_a_balanced_stage_ii_step_trains_and_reports_the_plain_mse() -> None:
    torch.manual_seed(2)
    model = MSTVSC(TINY).train()
    frames = torch.rand(2, TINY.gop, 64, 64, 3)
    set_stage(model, 2)
    torch.manual_seed(3)
    plain_loss, plain = stage2_loss(model, frames, torch.tensor([0.0, 0.9]), LossWeights())
    torch.manual_seed(3)
    loss, info = stage2_loss(model, frames, torch.tensor([0.0, 0.9]), LossWeights(balanced=True))
    loss.backward()
    assert info["mse"] == pytest.approx(plain["mse"]) and loss.item() != pytest.approx(plain_loss.item())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_save_load_round_trip() -> None:
    torch.manual_seed(5)
    model = MSTVSC(TINY).eval()
    buffer = io.BytesIO()
    torch.save({"config": TINY.to_dict(), "state_dict": model.state_dict()}, buffer)
    buffer.seek(0)
    blob = torch.load(buffer, weights_only=True)
    again = MSTVSC(MSTVSCConfig.from_dict(blob["config"])).eval()
    again.load_state_dict(blob["state_dict"])
    x = torch.rand(1, 4, 64, 64, 3)
    y = model.encode(x)
    ones = Latents(torch.ones_like(y.common), torch.ones_like(y.individual))
    assert torch.equal(y.common, again.encode(x).common)
    assert torch.allclose(model.decode(y, ones), again.decode(y, ones))


def test_aux_loss_averages_the_trained_moe_layers_only() -> None:
    torch.manual_seed(0)
    model = MSTVSC(CONFIGS["tiny-test"]).train()
    stage2_loss(model, torch.rand(1, 4, 64, 64, 3), torch.tensor([0.5]), LossWeights())
    frozen = {id(p) for p in encoder_parameters(model)}
    layers = [m for m in model.modules() if isinstance(m, MoE)]
    decoder = [m for m in layers if id(m.router.weight) not in frozen]
    assert 0 < len(decoder) < len(layers)
    set_stage(model, 2)
    expected = torch.stack([m.aux_loss for m in decoder]).mean()
    assert torch.allclose(model.aux_loss(), expected)
    set_stage(model, 1)
    assert torch.allclose(model.aux_loss(), torch.stack([m.aux_loss for m in layers]).mean())


def test_a_recovery_only_stage_ii_leaves_the_lossless_picture_exactly_as_it_was() -> None:
    """``--recovery-only``: steps at heavy loss change the recovery modules, and with them the picture at
    loss, but no other weight and not one pixel of the lossless picture."""
    torch.manual_seed(0)
    model = MSTVSC(TINY).train()
    frames = torch.rand(1, TINY.gop, 64, 64, 3)
    trained = set_stage(model, 2, recovery_only=True)
    assert {id(p) for p in trained} == {id(p) for p in recovery_parameters(model)}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        y = model.encode(frames)
        ones = Latents(torch.ones_like(y.common), torch.ones_like(y.individual))
        torch.manual_seed(1)
        received, mask = erase(y, torch.tensor([0.9]))
        lossless, lossy = model.decode(y, ones), model.decode(received, mask)
    model.train()
    optimizer = torch.optim.Adam(trained, lr=1e-2)
    for _ in range(2):
        loss, _ = stage2_loss(model, frames, torch.tensor([0.9]), LossWeights())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    changed = {n for n in after if not torch.equal(after[n], before[n])}
    assert changed and all(n.startswith(("common_recovery.", "individual_recovery.")) for n in changed)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model.decode(y, ones), lossless)
        assert not torch.equal(model.decode(received, mask), lossy)
    assert len(set_stage(model, 3, recovery_only=True)) == len(list(model.parameters()))  # stage II only


def parts(y: Latents) -> tuple[torch.Tensor, torch.Tensor]:
    return y.common, y.individual


@pytest.mark.parametrize("stages", [1, 2])
def test_widened_latent_decodes_as_the_narrow_model(stages: int) -> None:
    """C = 96 starts from c48's weights: the widened model must give the narrow model's picture, with and
    without losses, while its encoder already sends something on the new channels; a recovery cascade's
    later stacks (trained: their last layer no longer zero) are widened as the first."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, recovery_stages=stages)
    narrow = MSTVSC(cfg).eval()
    with torch.no_grad():
        for p in narrow.parameters():
            if not p.any():
                p.normal_(0, 0.1)  # as if trained: the cascade's last layers start at zero
    wide = MSTVSC(dataclasses.replace(cfg, latent=2 * cfg.latent)).eval()
    widened = widen_latent(wide, narrow.state_dict())
    assert "to_common.weight" in widened and "common_recovery.net.0.weight" in widened
    assert ("individual_recovery.refine.0.0.weight" in widened) == (stages == 2)
    frames = torch.rand(1, cfg.gop, 64, 64, 3)
    c = cfg.latent

    def erase_half(t: torch.Tensor) -> torch.Tensor:
        return (torch.rand_like(t) > 0.5).float()

    with torch.no_grad():
        y_narrow, y_wide = narrow.encode(frames), wide.encode(frames)
        assert torch.equal(y_wide.common[..., :c], y_narrow.common)
        assert y_wide.individual[..., c:].abs().sum() > 0
        for lossy in (False, True):
            got = Latents(*(erase_half(t) if lossy else torch.ones_like(t) for t in parts(y_narrow)))
            got_wide = Latents(*(torch.cat([m, erase_half(t[..., c:])], -1) for m, t in zip(parts(got), parts(y_wide))))
            picture = narrow.decode(Latents(*(y * m for y, m in zip(parts(y_narrow), parts(got)))), got)
            picture_wide = wide.decode(Latents(*(y * m for y, m in zip(parts(y_wide), parts(got_wide)))), got_wide)
            assert torch.allclose(picture, picture_wide, atol=1e-6)


def test_a_widened_model_can_keep_the_narrow_channels_while_it_trains() -> None:
    """``--keep-narrow``: a step of stage I (or III, after stage II) leaves the encoder and the narrow
    channels' projection rows exactly as they were, while the new rows and the decoder learn."""
    torch.manual_seed(0)
    narrow = MSTVSC(TINY)
    wide = MSTVSC(dataclasses.replace(TINY, latent=2 * TINY.latent)).train()
    widen_latent(wide, narrow.state_dict())
    c, frames = TINY.latent, torch.rand(1, TINY.gop, 64, 64, 3)
    for stage in (1, 2, 1):  # the gradient mask is registered once, however often the stage changes
        optimizer = torch.optim.Adam(set_stage(wide, stage, kept=c), lr=1e-2)
    trunk = [p for p in encoder_parameters(wide) if not p.requires_grad]
    assert trunk and all(not p.requires_grad for p in wide.encoder.parameters())
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    for _ in range(2):
        loss, _ = stage1_loss(wide, frames, LossWeights())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = wide.state_dict()
    for name in ("to_common.weight", "to_common.bias", "to_individual.weight", "to_individual.bias"):
        assert torch.equal(after[name][:c], before[name][:c]) and not torch.equal(after[name][c:], before[name][c:])
    frozen_names = {n for n, p in wide.named_parameters() if any(p is q for q in trunk)}
    assert all(torch.equal(after[n], before[n]) for n in frozen_names)
    assert any(not torch.equal(after[n], before[n]) for n in after if n.startswith("from_common."))
    with torch.no_grad():
        assert torch.equal(wide.encode(frames).common[..., :c], narrow.encode(frames).common)
    with pytest.raises(ValueError, match="rows already kept"):
        set_stage(wide, 1, kept=c // 2)


def test_a_widened_recovery_predicts_as_the_narrow_one_until_it_trains() -> None:
    """``--recovery-width``: the wider recovery's picture at loss starts as the narrow one's, and a
    recovery-only step at heavy loss teaches the new hidden channels (read through zeros, which get
    gradients) without touching anything outside the recovery."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, recovery_depth=3)  # a middle layer that both makes and reads hidden channels
    narrow = MSTVSC(cfg).eval()
    wide = MSTVSC(dataclasses.replace(cfg, recovery_width=2 * cfg.recovery_width)).eval()
    widened = widen_recovery(wide, narrow.state_dict())
    assert widened == sorted(f"{m}.net.{t}" for m in ("common_recovery", "individual_recovery")
                             for t in ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight"))
    frames = torch.rand(1, cfg.gop, 64, 64, 3)
    with torch.no_grad():
        y = narrow.encode(frames)
        torch.manual_seed(1)
        received, mask = erase(y, torch.tensor([0.9]))
        assert torch.allclose(wide.decode(received, mask), narrow.decode(received, mask), atol=1e-6)
    before = {k: v.clone() for k, v in wide.state_dict().items()}
    optimizer = torch.optim.Adam(set_stage(wide.train(), 2, recovery_only=True), lr=1e-2)
    loss, _ = stage2_loss(wide, frames, torch.tensor([0.9]), LossWeights())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    after = wide.state_dict()
    assert after["individual_recovery.net.2.weight"][:, cfg.recovery_width:].abs().sum() > 0
    assert all(torch.equal(after[n], before[n]) for n in after if not n.startswith(("common_recovery.", "individual_recovery.")))
    with pytest.raises(ValueError, match="cannot widen"):
        widen_recovery(narrow, wide.state_dict())  # narrowing is not widening


def test_a_recovery_cascade_grown_from_one_stack_predicts_as_it_did_until_it_trains() -> None:
    """``--recovery-stages``: the added stack predicts nothing at first (the picture at loss is the
    one-stack model's), learns from a recovery-only step at heavy loss, and, like the first, never
    touches a received element."""
    torch.manual_seed(0)
    one = MSTVSC(TINY).eval()
    two = MSTVSC(dataclasses.replace(TINY, recovery_stages=2)).eval()
    missing = two.load_state_dict(one.state_dict(), strict=False).missing_keys
    assert missing and all(".refine.0." in k for k in missing)
    frames = torch.rand(1, TINY.gop, 64, 64, 3)
    with torch.no_grad():
        y = one.encode(frames)
        received, mask = erase(y, torch.tensor([0.9]))
        assert torch.equal(two.decode(received, mask), one.decode(received, mask))
    optimizer = torch.optim.Adam(set_stage(two.train(), 2, recovery_only=True), lr=1e-2)
    loss, _ = stage2_loss(two, frames, torch.tensor([0.9]), LossWeights())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert two.individual_recovery.refine[0][-1].weight.abs().sum() > 0
    with torch.no_grad():
        recovered = two.eval().recover(received, mask)
    for part in ("common", "individual"):
        kept = getattr(mask, part).bool()
        assert torch.equal(getattr(recovered, part)[kept], getattr(received, part)[kept])
    assert not torch.equal(recovered.individual, one.recover(received, mask).individual)


COARSE_ENCODER = dataclasses.replace(TINY, depths=(1, 1, 2), st_depths=(2, 2), ind_depth=2, synthesis_depths=(1,) * 6)


@pytest.mark.parametrize(("deep_cfg", "sides"), [
    (CONFIGS["tiny-test-mid"], {"encoder", "decoder"}),
    (dataclasses.replace(TINY, synthesis_depths=(2,) * 6), {"decoder"}),
    (COARSE_ENCODER, {"encoder"}),
], ids=["everywhere", "decoder-only", "coarse-encoder-only"])
def test_a_deepened_model_decodes_as_the_shallow_one_until_it_trains(deep_cfg: MSTVSCConfig, sides: set[str]) -> None:
    """``--config mid-c48 --init <small-c48>`` (or ``small-c48-mid-decoder``, ``small-c48-deep-encoder``): the added
    (shifted-window) blocks start as the identity, so the latent and the picture at any loss are the shallow
    model's; one end-to-end step moves them. Each side gains blocks only where its config asks."""
    torch.manual_seed(0)
    shallow = MSTVSC(TINY).eval()
    deep = MSTVSC(deep_cfg).eval()
    added = deepen(deep, shallow.state_dict())
    grown = {"encoder" if name.startswith(("encoder.", "individual_extractor.")) else "decoder" for name in added}
    assert grown == sides and "encoder.0.0" not in added
    assert ("decoder.0.1" in added and "individual_upsample.stage.1" in added) == ("decoder" in sides)
    assert ("encoder.4.1" in added and "individual_extractor.stage.1" in added) == ("encoder" in sides)
    assert all(deep.get_submodule(name).shift for name in added)
    frames = torch.rand(1, TINY.gop, 64, 64, 3)
    with torch.no_grad():
        y = shallow.encode(frames)
        assert torch.equal(deep.encode(frames).individual, y.individual)
        received, mask = erase(y, torch.tensor([0.6]))
        assert torch.allclose(deep.decode(received, mask), shallow.decode(received, mask), atol=1e-6)
    optimizer = torch.optim.Adam(set_stage(deep.train(), 1), lr=1e-2)
    loss, _ = stage1_loss(deep, frames, LossWeights())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    for block in map(deep.get_submodule, added):  # both residual branches' zero output layers moved
        assert all(weight.abs().sum() > 0 for weight, _ in residual_outputs(block)), block
    with pytest.raises(ValueError, match="never drops a block"):
        deepen(shallow, deep.state_dict())


def test_widening_refuses_another_architecture() -> None:
    narrow = MSTVSC(TINY)
    other = MSTVSC(dataclasses.replace(TINY, latent=2 * TINY.latent, ind_width=24))
    with pytest.raises(ValueError, match="cannot widen"):
        widen_latent(other, narrow.state_dict())
