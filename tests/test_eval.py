"""Evaluation against baselines and ablations, its pictures, plot, report and command line, on a tiny
random-weight codec and small frames (the honesty of the comparison does not depend on the weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mstvsc_stream.cli.eval import main as eval_main
from mstvsc_stream.media import psnr, read_frames, sample_clip_path
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.model.mstvsc import MSTVSC
from mstvsc_stream.analysis.ablations import NO_INTERLEAVE, NO_RECOVERY, SEMANTIC, ContiguousPacketizer
from mstvsc_stream.analysis.evaluation import EvalConfig, QualityMeter, evaluate
from mstvsc_stream.analysis.gallery import Gallery, feature_views
from mstvsc_stream.analysis.report import curves_png, report_html
from mstvsc_stream.runtime.torch_backend import TorchCodec
from mstvsc_stream.runtime.zoo import file_sha256
from mstvsc_stream.wire import GopPacketizer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIZE = (96, 64)


def tiny_model() -> MSTVSC:
    torch.manual_seed(0)
    return MSTVSC(CONFIGS["tiny-test"]).eval()


@pytest.fixture(scope="module")
def codec() -> TorchCodec:
    return TorchCodec(tiny_model(), "tiny-test@" + "00" * 8)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return read_frames(sample_clip_path(), n=8, size=SIZE)


@pytest.fixture(scope="module")
def evaluated(codec: TorchCodec, clip: np.ndarray) -> tuple[list, Gallery]:
    gallery = Gallery(1, codec.gop)
    cfg = EvalConfig([0.0, 0.5], seed=7, ablations=True, baselines=("h264", "h264-fec"))
    return evaluate(codec, clip, 30.0, cfg, gallery), gallery


def test_rows_cover_every_scheme_and_rate_in_order(evaluated) -> None:
    rows, _ = evaluated
    assert [(r.scheme, r.loss) for r in rows] == [
        (scheme, loss) for scheme in (SEMANTIC, NO_RECOVERY, NO_INTERLEAVE, "h264", "h264-fec") for loss in (0.0, 0.5)]
    assert all(r.kbps > 0 and r.ms_ssim is None for r in rows)  # 96x64: MS-SSIM is not measurable


def test_ablations_see_the_same_losses_and_bits(evaluated) -> None:
    rows, _ = evaluated
    semantic = [r for r in rows if r.scheme.startswith(SEMANTIC)]
    for loss in (0.0, 0.5):
        at_rate = [r for r in semantic if r.loss == loss]
        assert len({r.measured_loss for r in at_rate}) == 1 and len({r.kbps for r in at_rate}) == 1
    by_key = {(r.scheme, r.loss): r for r in rows}
    # nothing lost: recovery has nothing to fill, interleaving nothing to spread
    assert by_key[NO_RECOVERY, 0.0].psnr == by_key[SEMANTIC, 0.0].psnr == by_key[NO_INTERLEAVE, 0.0].psnr
    assert by_key[NO_RECOVERY, 0.5].psnr != by_key[SEMANTIC, 0.5].psnr


def test_baseline_rows_meet_the_loss_process(evaluated) -> None:
    rows, _ = evaluated  # their quality is tested in test_baselines, at a bitrate they can reach
    by_key = {(r.scheme, r.loss): r for r in rows}
    for name in ("h264", "h264-fec"):
        assert by_key[name, 0.0].measured_loss == 0
        assert 0.3 < by_key[name, 0.5].measured_loss < 0.7


def test_gallery_keeps_one_gop_per_scheme_and_rate(evaluated, codec: TorchCodec, clip: np.ndarray, tmp_path
                                                   ) -> None:
    _, gallery = evaluated
    assert set(gallery.views) == {SEMANTIC, NO_RECOVERY, NO_INTERLEAVE, "h264", "h264-fec"}
    for by_rate in gallery.views.values():
        assert set(by_rate) == {0.0, 0.5}
        assert all(frames.shape == (4, 64, 96, 3) for frames in by_rate.values())
    gop = clip[gallery.frames]
    codes = codec.encode(gop)
    lossless = codec.decode(codes, np.ones(codes.size, dtype=bool), 64, 96)
    assert np.array_equal(gallery.views[SEMANTIC][0.0], lossless)  # the right GOP was kept
    paths = gallery.save_strips(tmp_path, clip)
    assert [p.name for p in paths] == ["gop1-loss0.png", "gop1-loss0.5.png"]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in paths)


def test_feature_views_zero_the_other_latent(codec: TorchCodec, clip: np.ndarray) -> None:
    views = dict(feature_views(codec, clip[:4]))
    assert list(views) == ["original", "both latents", "common only", "individual only"]
    assert not np.array_equal(views["common only"], views["both latents"])
    assert not np.array_equal(views["individual only"], views["common only"])


def test_contiguous_packetizer_erases_one_block_per_segment() -> None:
    packetizer = GopPacketizer(960, seed=3, payload_size=30)  # 80 elements per segment
    codes = np.random.default_rng(0).integers(-4, 4, 960).astype(np.int8)
    for transport, contiguous in ((ContiguousPacketizer(packetizer), True), (packetizer, False)):
        payloads = dict(enumerate(transport.segments(codes)))
        del payloads[2]
        values, received = transport.reassemble(payloads)
        assert (values[received] == codes[received]).all()
        missing = np.flatnonzero(~received)
        assert len(missing) == 80
        assert (missing.tolist() == list(range(160, 240))) == contiguous


def test_quality_meter_is_the_mean_over_frames(clip: np.ndarray) -> None:
    noisy = np.clip(clip.astype(int) + np.arange(8)[:, None, None, None] * 3, 0, 255).astype(np.uint8)
    meter = QualityMeter()
    meter.add(clip[:4], noisy[:4])
    meter.add(clip[4:], noisy[4:])
    assert meter.psnr == pytest.approx(psnr(clip, noisy))


def test_plot_and_report_show_every_scheme(evaluated) -> None:
    rows, _ = evaluated
    doc = {"clip": "c.mkv", "size": "96x64", "fps": 30.0, "rows": [r.as_dict() for r in rows]}
    png = curves_png(doc)
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    page = report_html(doc, png)
    assert "data:image/png;base64," in page
    assert all(f"<td>{scheme}</td>" in page for scheme in ("mstvsc", "mstvsc-nointerleave", "h264-fec"))


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> str:
    """A tiny model shipped like a real one, so the command line loads it by folder."""
    folder = tmp_path_factory.mktemp("tiny-model")
    model = tiny_model()
    torch.save({"config": model.cfg.to_dict(), "state_dict": model.state_dict()}, folder / "weights.pt")
    card = {"name": "tiny-test", "config": model.cfg.to_dict(), "weights_sha256": file_sha256(folder / "weights.pt")}
    (folder / "card.json").write_text(json.dumps(card))
    return str(folder)


def run_eval(model_folder: str, *args: str) -> int:
    return eval_main(["--input", str(sample_clip_path()), "--size", "96x64", "--frames", "8", "--model",
                      model_folder, "--backend", "torch", "-q", *args])


def test_command_line_writes_json_plot_report_and_frames(model_folder: str, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    rc = run_eval(model_folder, "--loss", "0,0.5", "--baselines", "h265", "--json",
                  str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"), "--report", str(tmp_path / "r.html"),
                  "--save-frames", str(out))
    assert rc == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert {"clip", "size", "fps", "rows"} <= set(doc) and doc["size"] == "96x64"
    assert [r["scheme"] for r in doc["rows"]] == [SEMANTIC, SEMANTIC, "h265", "h265"]
    for row in doc["rows"]:
        assert {"scheme", "loss", "psnr", "ms_ssim", "kbps"} <= set(row)
    assert (tmp_path / "r.png").read_bytes().startswith(PNG_MAGIC)
    assert "data:image/png;base64," in (tmp_path / "r.html").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["gop1-features.png", "gop1-loss0.5.png", "gop1-loss0.png"]
    assert "h265" in capsys.readouterr().out


def test_command_line_gilbert_elliott_is_one_point_at_its_mean(model_folder: str, tmp_path) -> None:
    assert run_eval(model_folder, "--gemodel", "0.1", "0.4", "--json", str(tmp_path / "ge.json")) == 0
    doc = json.loads((tmp_path / "ge.json").read_text())
    assert [row["loss"] for row in doc["rows"]] == [pytest.approx(0.2)]
    assert doc["loss_model"].startswith("gemodel p=0.1 r=0.4")


@pytest.mark.parametrize("args, message", [
    (["--baselines", "h264,vp9"], "unknown baseline 'vp9'"),
    (["--loss", "0,30"], "did you mean 30%"),
    (["--loss", "0.1", "--gemodel", "0.1"], "not allowed with"),
])
def test_command_line_refuses_bad_input_in_one_line(model_folder: str, args, message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_eval(model_folder, *args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
