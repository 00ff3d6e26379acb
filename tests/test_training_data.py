"""Training inputs: a folder of videos, the Vimeo-90k septuplet layout, animated stills; train.py runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from mstvsc_stream.media import Recorder
from mstvsc_stream.model.data import ClipStore, DataError, GopSampler, animate_still, decode_video, find_videos, vimeo_septuplets
from tool_modules import load_tool



def _clip(path: Path, frames: int = 12, size: tuple[int, int] = (160, 128)) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size[1], size[0] * 2, 3), dtype=np.uint8)
    with Recorder(path, 10.0, size) as rec:
        for t in range(frames):
            rec.write(np.ascontiguousarray(base[:, 2 * t : 2 * t + size[0]]))
    return path


def test_folder_of_videos(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _clip(tmp_path / "a.mkv")
    _clip(tmp_path / "sub" / "b.mkv")
    (tmp_path / "notes.txt").write_text("not a video")
    videos = find_videos([tmp_path])
    assert [v.name for v in videos] == ["a.mkv", "b.mkv"]
    frames = decode_video(videos[0])
    assert frames.shape == (12, 128, 160, 3)
    with pytest.raises(DataError, match="no such file"):
        find_videos([tmp_path / "missing"])
    with pytest.raises(DataError, match="cannot decode|no video"):
        decode_video(tmp_path / "notes.txt")


def test_vimeo_septuplet_layout(tmp_path: Path) -> None:
    for seq in ["00001/0001", "00001/0002"]:
        d = tmp_path / "sequences" / seq
        d.mkdir(parents=True)
        for i in range(1, 8):
            cv2.imwrite(str(d / f"im{i}.png"), np.full((64, 96, 3), 30 * i, np.uint8))
    (tmp_path / "sep_trainlist.txt").write_text("00001/0002\n")
    sequences = vimeo_septuplets(tmp_path)
    assert len(sequences) == 1 and sequences[0].shape == (7, 64, 96, 3)
    assert sequences[0][6, 0, 0, 0] == 210
    (tmp_path / "sep_trainlist.txt").unlink()
    assert len(vimeo_septuplets(tmp_path)) == 2
    with pytest.raises(DataError):
        vimeo_septuplets(tmp_path / "sequences")


def test_sampler_crops_and_stills() -> None:
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (10, 100, 120, 3), dtype=np.uint8)
    still = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    sampler = GopSampler([clip], [still], gop=4, seed=2, still_fraction=0.5)
    batch = sampler.batch(6, 64)
    assert batch.shape == (6, 4, 64, 64, 3) and batch.dtype == np.uint8
    # a clip smaller than the crop is skipped, never upscaled; with nothing else to draw from, that is an error
    mixed = GopSampler([clip[:, :40, :50] * 0, clip], [], gop=4, seed=5).batch(20, 64)
    assert mixed.shape == (20, 4, 64, 64, 3) and mixed.any(axis=(1, 2, 3, 4)).all()
    with pytest.raises(DataError, match="at least 64x64"):
        GopSampler([clip[:, :40, :50]], [], gop=4).batch(2, 64)
    moving = animate_still(still, 4, 64, np.random.default_rng(3))
    assert moving.shape == (4, 64, 64, 3) and not np.array_equal(moving[0], moving[3])
    with pytest.raises(DataError):
        GopSampler([], [], gop=4)


def test_sampler_draws_clips_in_proportion_to_their_weights() -> None:
    dark, bright, never = (np.full((8, 64, 64, 3), v, np.uint8) for v in (0, 255, 128))
    sampler = GopSampler([dark, bright, never], [], gop=4, seed=7, clip_weights=[1, 3, 0])
    means = sampler.batch(400, 64).mean(axis=(1, 2, 3, 4))
    assert not (means == 128).any()
    assert 0.68 < (means == 255).mean() < 0.82
    with pytest.raises(DataError, match="one non-negative weight per clip"):
        GopSampler([dark, bright], [], gop=4, clip_weights=[1])
    with pytest.raises(DataError, match="one non-negative weight per clip"):
        GopSampler([dark], [], gop=4, clip_weights=[-1])


def test_a_video_named_twice_is_stored_once_and_drawn_twice_as_often(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    train = load_tool("train")
    data = tmp_path / "data"
    data.mkdir()
    _clip(data / "a.mkv", size=(128, 128))
    _clip(data / "b.mp4", size=(128, 128))
    weights: list[list[float]] = []
    init = GopSampler.__init__
    monkeypatch.setattr(GopSampler, "__init__",
                        lambda self, *a, **kw: weights.append(kw["clip_weights"]) or init(self, *a, **kw))
    out = tmp_path / "run"
    assert train.main(["--config", "tiny-test", "--data", str(data), str(data / "a.mkv"), "--no-stills",
                       "--out", str(out), "--stage1-steps", "1", "--stage2-steps", "0", "--batch", "1",
                       "--crop", "0:64", "--warmup", "1"]) == 0
    index = json.loads((out / "clips.json").read_text())
    assert [s.split(":")[0] for s in index["sources"]] == [str((data / n).resolve()) for n in ("a.mkv", "b.mp4")]
    assert len(index["shapes"]) == 4  # each video at full and half size, once
    assert weights == [[2.0, 2.0, 1.0, 1.0]]


def test_train_tool_runs_and_resumes(tmp_path: Path) -> None:
    train = load_tool("train")
    _clip(tmp_path / "clip.mkv", frames=12, size=(128, 128))
    out = tmp_path / "run"
    common = ["--config", "tiny-test", "--data", str(tmp_path / "clip.mkv"), "--val", str(tmp_path / "clip.mkv"),
              "--val-size", "128x128", "--val-gops", "1", "--no-stills", "--out", str(out), "--batch", "2",
              "--crop", "0:64", "--val-every", "2", "--save-every", "2", "--warmup", "1"]
    assert train.main(common + ["--stage1-steps", "2", "--stage2-steps", "0"]) == 0
    assert (out / "last.pt").exists() and (out / "best.pt").exists()
    assert train.main(common + ["--stage1-steps", "2", "--stage2-steps", "2", "--resume"]) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in log if "stage" in e] == [1, 1, 2, 2]
    assert any("val" in e for e in log)
    # end-to-end stage III under bf16 autocast, with the clip store reused from disk
    assert train.main(common + ["--stage1-steps", "2", "--stage2-steps", "2", "--stage3-steps", "2", "--resume",
                                "--precision", "bf16"]) == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in log if "stage" in e][-2:] == [3, 3]
    assert all(math.isfinite(e["mse"]) for e in log if "mse" in e)


def test_crop_and_batch_follow_their_schedules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Stage II can train on larger crops at a smaller batch (the loss recovery's maps of real frame sizes)."""
    train = load_tool("train")
    assert [train.scheduled(step, "0:128,3:256") for step in (0, 2, 3, 9)] == [128, 128, 256, 256]
    assert train.scheduled(5, "8") == 8 and train.scheduled(4, "3:2,0:8") == 2
    for bad in ("5:128", "0:0", "0:x", "", "0:8:2"):
        with pytest.raises(ValueError):
            train.scheduled(0, bad)
    _clip(tmp_path / "clip.mkv", frames=12, size=(128, 128))
    drawn: list[tuple[int, int]] = []
    draw = GopSampler.batch
    monkeypatch.setattr(GopSampler, "batch", lambda self, batch, size: drawn.append((batch, size)) or draw(self, batch, size))
    common = ["--config", "tiny-test", "--data", str(tmp_path / "clip.mkv"), "--no-stills", "--out", str(tmp_path / "run"),
              "--stage1-steps", "2", "--stage2-steps", "2", "--warmup", "1", "--crop", "0:64,2:128"]
    assert train.main([*common, "--batch", "0:2,2:1"]) == 0
    assert drawn == [(2, 64), (2, 64), (1, 128), (1, 128)]
    with pytest.raises(SystemExit):
        train.main([*common, "--batch", "2:1"])
    assert "--batch 2:1: expected a number or 'step:value,...' starting at step 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main([*common, "--crop", "0:64,2:96"])
    assert "--crop 0:64,2:96: every size must be a multiple of 64" in capsys.readouterr().err


def test_train_tool_keeps_the_narrow_channels_of_a_widened_model(tmp_path: Path) -> None:
    """--keep-narrow: the narrow model's projection rows survive stage I and a resume into stage II;
    without a narrower --init the option is refused with one line."""
    import dataclasses

    import torch

    from mstvsc_stream.model.config import CONFIGS
    from mstvsc_stream.model.mstvsc import MSTVSC

    train = load_tool("train")
    tiny = CONFIGS["tiny-test"]
    narrow = MSTVSC(dataclasses.replace(tiny, latent=tiny.latent // 2))
    init = tmp_path / "narrow.pt"
    torch.save({"config": narrow.cfg.to_dict(), "state_dict": narrow.state_dict()}, init)
    _clip(tmp_path / "clip.mkv", frames=12, size=(128, 128))
    out = tmp_path / "run"
    common = ["--config", "tiny-test", "--data", str(tmp_path / "clip.mkv"), "--no-stills", "--out", str(out),
              "--batch", "2", "--crop", "0:64", "--save-every", "2", "--warmup", "1", "--lr", "1e-2"]
    assert train.main(common + ["--init", str(init), "--keep-narrow", "--stage1-steps", "2", "--stage2-steps", "0"]) == 0
    assert train.main(common + ["--stage1-steps", "2", "--stage2-steps", "2", "--resume"]) == 0
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["kept"] == narrow.cfg.latent and state["step"] == 4
    c = narrow.cfg.latent
    for name in ("to_common.weight", "to_individual.bias"):
        assert torch.equal(state["state_dict"][name][:c], narrow.state_dict()[name])
    refused = ["--init", str(out / "last.pt"), "--keep-narrow", "--out", str(tmp_path / "same"), "--stage1-steps", "1",
               "--stage2-steps", "0"]
    assert train.main(common + refused) == 2


def _tiny_start(tmp_path: Path) -> tuple[dict, Path]:
    """A random tiny-test model saved as an --init (its weights and path), and a clip to train on."""
    import torch

    from mstvsc_stream.model.config import CONFIGS
    from mstvsc_stream.model.mstvsc import MSTVSC

    weights = MSTVSC(CONFIGS["tiny-test"]).state_dict()
    init = tmp_path / "start.pt"
    torch.save({"config": CONFIGS["tiny-test"].to_dict(), "state_dict": weights}, init)
    _clip(tmp_path / "clip.mkv", frames=12, size=(128, 128))
    return weights, init


def test_train_tool_widens_the_recovery_of_an_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--recovery-width: the run's config and recovery modules take the new width, and a recovery-only step
    leaves every other weight as the init had it (the widened start itself: tests/test_model.py)."""
    import torch

    from mstvsc_stream.model.config import CONFIGS

    train = load_tool("train")
    narrow, init = _tiny_start(tmp_path)
    out = tmp_path / "run"
    width = 2 * CONFIGS["tiny-test"].recovery_width
    assert train.main(["--init", str(init), "--recovery-width", str(width), "--recovery-only", "--data",
                       str(tmp_path / "clip.mkv"), "--no-stills", "--out", str(out), "--batch", "2", "--crop", "0:64",
                       "--warmup", "1", "--stage1-steps", "0", "--stage2-steps", "1"]) == 0
    assert f"widened the loss recovery to {width} hidden channels" in capsys.readouterr().err
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["config"]["recovery_width"] == width
    weights = state["state_dict"]
    assert weights["common_recovery.net.0.weight"].shape[0] == width
    assert all(torch.equal(weights[k], v) for k, v in narrow.items() if not k.startswith(("common_recovery.",
                                                                                          "individual_recovery.")))
    with pytest.raises(SystemExit):
        train.main(["--init", str(init), "--recovery-width", "0", "--out", str(out)])
    assert "--recovery-width 0: expected a number of channels, at least 1" in capsys.readouterr().err


def test_train_tool_adds_recovery_stages_to_an_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--recovery-stages: the run's config takes the cascade, the added stack is the only new tensor set,
    and a recovery-only step leaves every weight outside the recovery as the init had it."""
    import torch

    train = load_tool("train")
    one, init = _tiny_start(tmp_path)
    out = tmp_path / "run"
    assert train.main(["--init", str(init), "--recovery-stages", "2", "--recovery-only", "--data",
                       str(tmp_path / "clip.mkv"), "--no-stills", "--out", str(out), "--batch", "2", "--crop", "0:64",
                       "--warmup", "1", "--stage1-steps", "0", "--stage2-steps", "1"]) == 0
    assert "initial values (new, or shapes differ): common_recovery.refine.0." in capsys.readouterr().err
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["config"]["recovery_stages"] == 2
    assert {k for k in state["state_dict"] if k not in one} == {k for k in state["state_dict"] if ".refine.0." in k}
    assert all(torch.equal(state["state_dict"][k], v) for k, v in one.items()
               if not k.startswith(("common_recovery.", "individual_recovery.")))
    with pytest.raises(SystemExit):
        train.main(["--init", str(init), "--recovery-stages", "0", "--out", str(out)])
    assert "--recovery-stages 0: expected a number of stacks, at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--init", str(tmp_path / "missing.pt"), "--out", str(out)])
    assert f"--init {tmp_path / 'missing.pt'}: no such file" in capsys.readouterr().err
    assert train.parse_args(["--init", str(tmp_path / "missing.pt"), "--out", str(out), "--resume"]).resume  # not read


def test_train_tool_deepens_an_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--config with more blocks per stage than the --init's: every block of the init keeps its weights
    (the added ones start as the identity: tests/test_model.py), and a deeper --init is refused."""
    import torch

    train = load_tool("train")
    shallow, init = _tiny_start(tmp_path)
    out = tmp_path / "run"
    # one stage-III step at a learning rate of 0: what the init loaded is what the run saves
    common = ["--data", str(tmp_path / "clip.mkv"), "--no-stills", "--batch", "2", "--crop", "0:64", "--warmup", "1",
              "--stage1-steps", "0", "--stage2-steps", "0", "--stage3-steps", "1", "--stage3-lr", "0"]
    assert train.main(["--init", str(init), "--config", "tiny-test-mid", "--out", str(out), *common]) == 0
    assert "added 12 Swin blocks to reach depths (2, 2, 2, 2, 2, 2)" in capsys.readouterr().err
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["config"]["name"] == "tiny-test-mid"
    assert all(torch.equal(state["state_dict"][k], v) for k, v in shallow.items())
    assert train.main(["--init", str(out / "last.pt"), "--config", "tiny-test", "--out", str(tmp_path / "back"),
                       *common]) == 2
    assert "not in the deeper model" in capsys.readouterr().err


def test_ema_validates_and_keeps_the_average_and_a_resume_continues_it(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """--ema: best.pt holds the moving average (validated), last.pt the trained weights plus the average;
    at a decay near 1 the average stays at the starting weights through a resume, while training moves on."""
    import torch

    train = load_tool("train")
    start, init = _tiny_start(tmp_path)
    out = tmp_path / "run"
    common = ["--init", str(init), "--data", str(tmp_path / "clip.mkv"), "--val", str(tmp_path / "clip.mkv"),
              "--val-size", "128x128", "--val-gops", "1", "--no-stills", "--out", str(out), "--batch", "2",
              "--crop", "0:64", "--val-every", "2", "--save-every", "2", "--warmup", "1", "--lr", "1e-2",
              "--ema", "0.999999", "--stage2-steps", "0"]

    def furthest(weights: dict[str, torch.Tensor]) -> float:
        return max(float((weights[k].float() - v.float()).abs().max()) for k, v in start.items())

    assert train.main(common + ["--stage1-steps", "2"]) == 0
    assert train.main(common + ["--stage1-steps", "4", "--resume"]) == 0
    last = torch.load(out / "last.pt", weights_only=False)
    best = torch.load(out / "best.pt", weights_only=False)
    assert last["step"] == 4 and furthest(last["state_dict"]) > 1e-3  # trained on
    average = {k.removeprefix("module."): v for k, v in last["average"].items() if k.startswith("module.")}
    assert furthest(average) < 1e-4 and furthest(best["state_dict"]) < 1e-4
    assert int(last["average"]["n_averaged"]) == 5  # the start, then one update per step across the resume
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [sorted(e["val_trained"]) for e in log if "val" in e] == [["psnr@0", "psnr@0.9"]] * 2
    with pytest.raises(SystemExit):
        train.main(common + ["--stage1-steps", "1", "--ema", "1"])
    assert "--ema 1.0: expected a decay per step in [0, 1)" in capsys.readouterr().err

def test_clip_store_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (5, 16, 24, 3), dtype=np.uint8), rng.integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)]
    store = ClipStore(tmp_path / "clips.u8")
    assert not store.current(["a", "b"])
    store.build(iter(clips), ["a", "b"])
    assert store.current(["a", "b"]) and not store.current(["a"])
    opened = store.open()
    assert [c.shape for c in opened] == [c.shape for c in clips]
    assert all(np.array_equal(a, b) for a, b in zip(opened, clips))
    assert not opened[0].flags.writeable


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clip store and the checkpoints: a failed write names the file, removes its temporary file (which
    would hold the space the next attempt needs) and keeps what was written before."""
    import errno

    import torch

    from mstvsc_stream.model.config import CONFIGS
    from mstvsc_stream.model.mstvsc import MSTVSC

    def filling():
        yield np.zeros((4, 8, 8, 3), np.uint8)
        raise OSError(errno.ENOSPC, "No space left on device")

    store = ClipStore(tmp_path / "clips.u8")
    with pytest.raises(DataError, match=r"cannot write the decoded clips to .*clips.u8: No space left on device"):
        store.build(filling(), ["a"])
    assert not list(tmp_path.glob("*.tmp")) and not store.current(["a"])

    train = load_tool("train")
    model = MSTVSC(CONFIGS["tiny-test"])
    optimizer = torch.optim.Adam(model.parameters())
    last = tmp_path / "last.pt"
    train.save(last, model, model.cfg, optimizer, 1, 1, 0.0, {})

    def short_write(*_args, **_kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1779840 vs 1779760")

    monkeypatch.setattr(torch, "save", short_write)
    with pytest.raises(SystemExit, match=r"cannot write .*last.pt at step 2 \(\d+ MB free there\): .*unexpected pos"):
        train.save(last, model, model.cfg, optimizer, 2, 1, 0.0, {})
    monkeypatch.undo()
    assert not (tmp_path / "last.tmp").exists() and torch.load(last, weights_only=False)["step"] == 1


def test_runs_on_the_same_data_share_one_clip_cache(tmp_path: Path) -> None:
    train = load_tool("train")
    _clip(tmp_path / "clip.mkv", frames=12, size=(128, 128))
    cache = tmp_path / "cache"
    common = ["--config", "tiny-test", "--data", str(tmp_path / "clip.mkv"), "--no-stills", "--batch", "2",
              "--crop", "0:64", "--stage1-steps", "1", "--stage2-steps", "0", "--clip-cache", str(cache)]
    for run in ("one", "two"):
        assert train.main(common + ["--out", str(tmp_path / run)]) == 0
        assert not (tmp_path / run / "clips.u8").exists()
    (store,) = cache.glob("clips-*.u8")
    built = store.stat().st_mtime_ns
    assert train.main(common + ["--out", str(tmp_path / "three")]) == 0 and store.stat().st_mtime_ns == built


def test_init_from_another_config_takes_every_fitting_tensor() -> None:
    import dataclasses

    import torch

    from mstvsc_stream.model.config import CONFIGS
    from mstvsc_stream.model.mstvsc import MSTVSC

    train = load_tool("train")
    source = MSTVSC(CONFIGS["tiny-test"])
    wider = MSTVSC(dataclasses.replace(CONFIGS["tiny-test"], recovery_width=12))
    skipped = train.load_fitting(wider, source.state_dict())
    assert skipped and all(k.startswith(("common_recovery", "individual_recovery")) for k in skipped)
    taken = [k for k in source.state_dict() if k not in skipped]
    assert all(torch.equal(wider.state_dict()[k], source.state_dict()[k]) for k in taken)
