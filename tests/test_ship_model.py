"""tools/ship_model.py: a checkpoint becomes a shipped model whose card says how it was trained and measured,
including the earlier phases of a model trained on from shipped weights (--continues)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from tool_modules import load_tool

from mstvsc_stream.media import sample_clip_path
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.model.mstvsc import MSTVSC
from mstvsc_stream.runtime.zoo import file_sha256

ship_model = load_tool("ship_model")


def write_run(folder: Path, steps: int, stage1: int, seconds_per_step: float, checkpoint: str) -> Path:
    """A training run's folder: a tiny model's checkpoint at ``steps`` and its log."""
    folder.mkdir()
    cfg = CONFIGS["tiny-test"]
    torch.save({"config": cfg.to_dict(), "state_dict": MSTVSC(cfg).state_dict(), "step": steps, "stage": 2,
                "val": {"psnr@0": 20.0}}, folder / checkpoint)
    log = [{"step": s, "stage": 1 if s <= stage1 else 2, "time": seconds_per_step * s} for s in range(1, steps + 1)]
    (folder / "train_log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in log))
    return folder / checkpoint


@pytest.fixture
def shipped_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A models folder holding one earlier shipped model's card, as ship_model's models root."""
    root = tmp_path / "models"
    (root / "earlier").mkdir(parents=True)
    (root / "earlier" / "card.json").write_text(json.dumps({
        "model_id": "earlier@0123456789abcdef", "data": ["old clips"],
        "training": {"steps": 7250, "stage1_steps": 3004, "hours": 3.78, "hardware": "2 CPU cores"}}))
    monkeypatch.setattr(ship_model, "models_root", lambda: root)
    return root


def ship(monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["ship_model", *args, "--val", str(sample_clip_path()), "--size", "128x128",
                                      "--frames", "4", "--loss", "0", "-q"])
    assert ship_model.main() == 0


def test_a_model_trained_on_from_shipped_weights_carries_its_history(tmp_path: Path, shipped_root: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    checkpoint = write_run(tmp_path / "run", 30, 20, 36.0, "best.pt")
    ship(monkeypatch, "--checkpoint", str(checkpoint), "--name", "later", "--continues", "earlier",
         "--data", "new clips", "old clips, reworded")
    card = json.loads((shipped_root / "later" / "card.json").read_text())
    assert card["weights_sha256"] == file_sha256(shipped_root / "later" / "weights.pt")
    stored = torch.load(shipped_root / "later" / "weights.pt", weights_only=True)["state_dict"]
    trained = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert all(stored[k].dtype == torch.float16 for k in trained if trained[k].is_floating_point())
    assert all(torch.equal(stored[k].float(), trained[k].half().float()) for k in trained)
    training = card["training"]
    assert (training["steps"], training["stage1_steps"], training["continues"]) == (7280, 3024, "earlier@0123456789abcdef")
    assert training["hours"] == pytest.approx(3.78 + 0.3)
    assert training["phases"] == ["7250 steps (3004 stage I, rest stage II), 3.78 h (shipped as earlier@0123456789abcdef)",
                                  "then 30 steps (20 stage I, rest stage II), 0.30 h from its weights: run"]
    assert card["data"] == ["new clips", "old clips, reworded"], "--data is the whole list, replacing the earlier one"
    assert [row["loss"] for row in card["quality"]["rows"]] == [0.0]
    markdown = (shipped_root / "later" / "card.md").read_text()
    assert "- training: 7280 steps (3024 stage I, rest stage II), 4.08 h" in markdown
    assert "  - then 30 steps (20 stage I, rest stage II), 0.30 h from its weights: run" in markdown


def test_a_run_that_starts_in_stage_three_counts_no_stage_one_steps(tmp_path: Path) -> None:
    log = tmp_path / "train_log.jsonl"
    entries = [{"step": s, "stage": 3, "time": 36.0 * s} for s in range(1, 101)]
    log.write_text("".join(json.dumps(e) + "\n" for e in [*entries, {"step": 100, "val": {}, "score": 1.0}]))
    phase = ship_model.run_phase(log, 100)
    assert (phase["steps"], phase["stage1_steps"], phase["stage3_steps"]) == (100, 0, 100)
    assert ship_model.phase_line(phase, ": s3") == "100 steps (0 stage I, 0 stage II, 100 stage III), 1.00 h: s3"
    mixed = [{"step": s, "stage": 1 if s <= 10 else 2 if s <= 30 else 3, "time": 36.0 * s} for s in range(1, 41)]
    log.write_text("".join(json.dumps(e) + "\n" for e in mixed))
    assert ship_model.phase_line(ship_model.run_phase(log, 40), "") == \
        "40 steps (10 stage I, 20 stage II, 10 stage III), 0.40 h"


def test_a_model_shipped_twice_names_each_shipped_phase(tmp_path: Path, shipped_root: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each shipped model's own phase keeps its run's name and says which model id it became."""
    ship(monkeypatch, "--checkpoint", str(write_run(tmp_path / "first", 30, 20, 36.0, "best.pt")),
         "--name", "later", "--continues", "earlier")
    later = json.loads((shipped_root / "later" / "card.json").read_text())
    assert later["data"] == ["old clips"], "without --data the continued model's list is kept"
    ship(monkeypatch, "--checkpoint", str(write_run(tmp_path / "second", 10, 0, 36.0, "best.pt")),
         "--name", "latest", "--continues", "later")
    training = json.loads((shipped_root / "latest" / "card.json").read_text())["training"]
    assert training["phases"] == [
        "7250 steps (3004 stage I, rest stage II), 3.78 h (shipped as earlier@0123456789abcdef)",
        f"then 30 steps (20 stage I, rest stage II), 0.30 h from its weights: first (shipped as {later['model_id']})",
        "then 10 steps (0 stage I, rest stage II), 0.10 h from its weights: second"]
    assert training["steps"] == 7290 and training["continues"] == later["model_id"]


def test_runs_between_the_shipped_model_and_the_checkpoint_are_phases_too(
        tmp_path: Path, shipped_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C = 96 model's history: shipped c48, an unshipped run from it, then the widened run."""
    earlier = json.loads((shipped_root / "earlier" / "card.json").read_text())
    (shipped_root / "earlier" / "card.json").write_text(json.dumps({**earlier, "config": {"latent": 2}}))
    between = write_run(tmp_path / "between", 10, 10, 360.0, "last.pt")
    narrow = torch.load(between, weights_only=False)
    torch.save({**narrow, "config": {**narrow["config"], "latent": 2}}, between)  # still the narrow width
    checkpoint = write_run(tmp_path / "wider", 30, 20, 36.0, "best.pt")
    ship(monkeypatch, "--checkpoint", str(checkpoint), "--name", "later", "--continues", "earlier",
         "--through", str(tmp_path / "between"), "--also-val", str(sample_clip_path()), "--also-size", "96x64")
    card = json.loads((shipped_root / "later" / "card.json").read_text())
    training = card["training"]
    assert (training["steps"], training["stage1_steps"]) == (7290, 3034)
    assert training["hours"] == pytest.approx(3.78 + 1.0 + 0.3)
    assert training["phases"][1:] == ["then 10 steps (10 stage I, rest stage II), 1.00 h from its weights: "
                                      "between (a run, not shipped)",
                                      "then 30 steps (20 stage I, rest stage II), 0.30 h from its weights: "
                                      "wider, widened to C = 4"]
    (also,) = card["quality_also"].values()
    assert also["size"] == "96x64" and [row["loss"] for row in also["rows"]] == [0.0]
    kbps = list(card["kbps_by_size"].values())
    assert list(card["kbps_by_size"]) == ship_model.CARD_SIZES and kbps == sorted(kbps) and kbps[0] > 0
    markdown = (shipped_root / "later" / "card.md").read_text()
    assert markdown.count("| segment loss |") == 2 and "| frame size | 256x192 |" in markdown
    assert "--also-val" in card["measured_with"] and "--also-size 96x64" in card["measured_with"]


def test_through_needs_continues(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = write_run(tmp_path / "run", 3, 2, 1.0, "best.pt")
    monkeypatch.setattr(sys, "argv", ["ship_model", "--checkpoint", str(checkpoint), "--name", "x",
                                      "--val", str(sample_clip_path()), "--through", str(tmp_path / "run")])
    with pytest.raises(SystemExit):
        ship_model.main()
    assert "--through needs --continues" in capsys.readouterr().err


def test_a_run_between_without_its_checkpoint_or_log_is_a_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A carried log keeps no last.pt, so its step must be named; a folder without a log would count 0 h."""
    checkpoint = write_run(tmp_path / "next", 30, 20, 36.0, "best.pt")
    carried = tmp_path / "carried"
    carried.mkdir()
    (carried / "train_log.jsonl").write_text((tmp_path / "next" / "train_log.jsonl").read_text())
    for through, message in ((carried, "no last.pt there; name the step"),
                             (tmp_path / "missing", "no train_log.jsonl there")):
        monkeypatch.setattr(sys, "argv", ["ship_model", "--checkpoint", str(checkpoint), "--name", "x",
                                          "--val", str(sample_clip_path()), "--continues", "earlier",
                                          "--through", str(through)])
        with pytest.raises(SystemExit):
            ship_model.main()
        assert message in capsys.readouterr().err


def test_remeasure_rewrites_only_the_cards_measured_parts(tmp_path: Path, shipped_root: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """An older card gains the second validation set and the kbps table; weights and history stay."""
    torch.manual_seed(0)
    ship(monkeypatch, "--checkpoint", str(write_run(tmp_path / "run", 30, 20, 36.0, "best.pt")), "--name", "later")
    card_path, weights = shipped_root / "later" / "card.json", shipped_root / "later" / "weights.pt"
    before = json.loads(card_path.read_text())
    older = {key: value for key, value in before.items() if key != "kbps_by_size"}
    card_path.write_text(json.dumps({**older, "onnx": {"graphs": ["encoder-128x128.onnx"]}}))
    weights_bytes = weights.read_bytes()
    ship(monkeypatch, "--remeasure", "--name", "later", "--also-val", str(sample_clip_path()), "--also-size", "96x64")
    card = json.loads(card_path.read_text())
    assert weights.read_bytes() == weights_bytes
    assert card["kbps_by_size"] == before["kbps_by_size"] and card["quality"] == before["quality"]
    (also,) = card["quality_also"].values()
    assert also["size"] == "96x64" and [row["loss"] for row in also["rows"]] == [0.0]
    unchanged = ("model_id", "weights_sha256", "training", "data", "config")
    assert {k: card[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert card["onnx"] == {"graphs": ["encoder-128x128.onnx"]}
    assert (shipped_root / "later" / "card.md").read_text().count("| segment loss |") == 2


def test_remeasure_refuses_weights_the_card_does_not_describe(tmp_path: Path, shipped_root: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    ship(monkeypatch, "--checkpoint", str(write_run(tmp_path / "run", 3, 2, 1.0, "best.pt")), "--name", "later")
    card_path = shipped_root / "later" / "card.json"
    card_path.write_text(json.dumps({**json.loads(card_path.read_text()), "weights_sha256": "0" * 64}))
    with pytest.raises(SystemExit):
        ship(monkeypatch, "--remeasure", "--name", "later")
    assert "is not the weights its card describes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ship(monkeypatch, "--remeasure", "--name", "missing")
    assert "is not a shipped model" in capsys.readouterr().err


def test_compare_prints_the_checkpoint_beside_the_card_and_writes_nothing(
        tmp_path: Path, shipped_root: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The ship rule is judged before shipping: same weights measure the same, a second size is not compared."""
    torch.manual_seed(0)
    checkpoint = write_run(tmp_path / "run", 3, 2, 1.0, "best.pt")
    ship(monkeypatch, "--checkpoint", str(checkpoint), "--name", "later")
    folder = shipped_root / "later"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    capsys.readouterr()
    ship(monkeypatch, "--checkpoint", str(checkpoint), "--name", "later", "--compare",
         "--also-val", str(sample_clip_path()), "--also-size", "96x64")
    out = capsys.readouterr().out
    card = json.loads((folder / "card.json").read_text())
    assert f"against {card['model_id']}" in out
    (row,) = card["quality"]["rows"]
    assert f"shipped {row['psnr']:6.2f}" in out and "+0.00 dB" in out
    assert "96x64:" in out and "(not on the card)" in out
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def test_compare_needs_a_checkpoint_and_a_shipped_model(tmp_path: Path, shipped_root: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ship(monkeypatch, "--remeasure", "--name", "earlier", "--compare")
    assert "--compare needs --checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ship(monkeypatch, "--checkpoint", str(write_run(tmp_path / "run", 3, 2, 1.0, "best.pt")),
             "--name", "missing", "--compare")
    assert "is not a shipped model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ship(monkeypatch, "--checkpoint", str(tmp_path / "avg-250.pt"), "--name", "earlier", "--compare")
    assert f"--checkpoint {tmp_path / 'avg-250.pt'}: no such file" in capsys.readouterr().err


def test_a_run_between_can_end_at_the_step_the_next_one_started_from(
        tmp_path: Path, shipped_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run continued from its best checkpoint, not its last.pt, counts only the steps up to that one."""
    write_run(tmp_path / "between", 40, 10, 360.0, "last.pt")
    checkpoint = write_run(tmp_path / "next", 30, 20, 36.0, "best.pt")
    ship(monkeypatch, "--checkpoint", str(checkpoint), "--name", "later", "--continues", "earlier",
         "--through", f"{tmp_path / 'between'}:25")
    training = json.loads((shipped_root / "later" / "card.json").read_text())["training"]
    assert training["phases"][1] == "then 25 steps (10 stage I, rest stage II), 2.50 h from its weights: " \
                                    "between (a run, not shipped)"
    assert training["steps"] == 7250 + 25 + 30
    assert ship_model.run_until("runs/s3g") == (Path("runs/s3g"), None)


def test_the_widening_is_marked_on_the_first_run_at_the_new_width(
        tmp_path: Path, shipped_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Widened in the first --through run (its checkpoint is already wide), then trained on: the card says
    where the width changed, not on the last phase."""
    earlier = json.loads((shipped_root / "earlier" / "card.json").read_text())
    (shipped_root / "earlier" / "card.json").write_text(json.dumps({**earlier, "config": {"latent": 2}}))
    write_run(tmp_path / "widen", 10, 10, 360.0, "last.pt")
    checkpoint = write_run(tmp_path / "stage3", 30, 0, 36.0, "best.pt")
    ship(monkeypatch, "--checkpoint", str(checkpoint), "--name", "later", "--continues", "earlier",
         "--through", str(tmp_path / "widen"))
    phases = json.loads((shipped_root / "later" / "card.json").read_text())["training"]["phases"]
    assert phases[-2].endswith("widen (a run, not shipped), widened to C = 4")
    assert phases[-1].endswith("from its weights: stage3")
