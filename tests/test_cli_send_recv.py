"""mstvsc-send, mstvsc-recv and mstvsc-demo as a user runs them: separate processes, real UDP on loopback.

A tiny model folder (random weights, a real card) stands in for the shipped model so the processes start
and stream quickly.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mstvsc_stream import __version__
from mstvsc_stream.media import read_frames, sample_clip_path
from mstvsc_stream.model.config import CONFIGS
from mstvsc_stream.model.mstvsc import MSTVSC

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[1]


# The tiny model has no exported ONNX graphs; PyTorch runs it at once instead of exporting them first.
TORCH = ("--backend", "torch")


# Two processes with a thread per core each fight over a small machine's cores; one thread each is faster.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(module: str, *args: str, timeout: float = 60, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"mstvsc_stream.cli.{module}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def start(module: str, *args: str, env: dict[str, str] = ENV) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", f"mstvsc_stream.cli.{module}", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def assert_one_line_error(result: subprocess.CompletedProcess[str], prog: str, *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{prog}: ") and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder as the zoo expects it: weights.pt and a card whose hash matches them."""
    folder = tmp_path_factory.mktemp("models") / "tiny-test"
    folder.mkdir()
    torch.manual_seed(0)
    config = CONFIGS["tiny-test"]
    torch.save({"config": config.to_dict(), "state_dict": MSTVSC(config).state_dict()}, folder / "weights.pt")
    digest = hashlib.sha256((folder / "weights.pt").read_bytes()).hexdigest()
    card = {"name": "tiny-test", "config": config.to_dict(), "weights_sha256": digest}
    (folder / "card.json").write_text(json.dumps(card))
    return folder


def wait_for_line(process: subprocess.Popen[str], text: str) -> str:
    """Its stderr up to the first line containing ``text`` (the process must get that far)."""
    assert process.stderr is not None
    seen = ""
    while text not in seen:
        line = process.stderr.readline()
        assert line, f"exited before saying {text!r}: {seen}"
        seen += line
    return seen


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sender_with_a_missing_input_fails_in_one_line(tmp_path: Path) -> None:
    result = cli("send", "--input", str(tmp_path / "missing.mp4"), "--to", "127.0.0.1:9", "-q")
    assert_one_line_error(result, "mstvsc-send", "missing.mp4")


def test_sender_with_a_missing_camera_fails_in_one_line() -> None:
    result = cli("send", "--camera", "57", "--to", "127.0.0.1:9", "-q")
    assert_one_line_error(result, "mstvsc-send", "camera 57")


def test_sender_with_an_unresolvable_destination_fails_in_one_line(tiny_model: Path) -> None:
    result = cli("send", "--input", str(sample_clip_path()), "--to", "no-such-host.invalid:5000",
                 "--model", str(tiny_model), *TORCH, "-q")  # fmt: skip
    assert_one_line_error(result, "mstvsc-send", "no-such-host.invalid")


@pytest.mark.parametrize("module", ["send", "recv", "demo"])
def test_version(module: str) -> None:
    result = cli(module, "--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_receiver_refuses_an_unknown_recording_format_before_starting(tmp_path: Path) -> None:
    result = cli("recv", "--listen", ":0", "--record", str(tmp_path / "out.xyz"))
    assert result.returncode == 2 and "cannot record" in result.stderr


def stream_once(folder: Path, receiver_args: list[str], sender_args: list[str],
                env: dict[str, str] = ENV) -> tuple[dict, dict, str]:
    """One finite stream, mstvsc-send to mstvsc-recv on loopback; both reports and both logs. The sender
    runs --no-realtime: a busy machine must not make it drop GOPs, so frame counts are exact."""
    port = free_udp_port()
    rx_stats, tx_stats = folder / "rx.json", folder / "tx.json"
    receiver = start("recv", "--listen", f"127.0.0.1:{port}", "--stats-json", str(rx_stats), "--idle-exit", "20",
                     *receiver_args, env=env)  # fmt: skip
    try:
        log = wait_for_line(receiver, "listening on")
        sent = cli("send", "--input", str(sample_clip_path()), "--no-realtime", "--to", f"127.0.0.1:{port}",
                   "--stats-json", str(tx_stats), *sender_args, env=env)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        log += receiver.communicate(timeout=60)[1]
    finally:
        receiver.kill()
    assert receiver.returncode == 0, log
    return json.loads(tx_stats.read_text()), json.loads(rx_stats.read_text()), sent.stderr + log


def test_send_to_recv_records_every_frame_and_exits_at_the_end_of_input(tiny_model: Path, tmp_path: Path) -> None:
    recording = tmp_path / "out.mkv"
    model = ["--model", str(tiny_model), *TORCH]
    tx, rx, log = stream_once(tmp_path, [*model, "--record", str(recording)],
                              ["--size", "128x96", "--frames", "18", "-q", *model])  # fmt: skip
    assert tx["frames_sent"] == 16, "18 frames make 4 whole GOPs; the 2 left over are not sent"
    assert rx["end_reason"] == "end_of_input", "the receiver must not wait for --idle-exit"
    assert rx["frames_out"] == tx["frames_sent"] and rx["segment_loss_rate"] == 0.0
    assert read_frames(recording).shape == (16, 96, 128, 3)
    assert "receiving session" in log and "Traceback" not in log


def test_send_to_recv_without_pytorch_runs_the_shipped_onnx_graphs(tmp_path: Path) -> None:
    """The streaming install has no PyTorch: both CLIs, in processes where `import torch` fails, stream
    the default model on ONNX Runtime (int8 on the CPU) and say so in their reports."""
    blocker = tmp_path / "blocked" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("torch is blocked in this test")\n')
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(blocker.parent), ENV.get("PYTHONPATH", "")])}
    refused = cli("send", "--input", str(sample_clip_path()), "--to", "127.0.0.1:9", "--backend", "torch", env=env)
    assert_one_line_error(refused, "mstvsc-send", "needs PyTorch")  # the block works
    tx, rx, log = stream_once(tmp_path, ["--threads", "1"], ["--size", "320x240", "--frames", "8", "--threads", "1"],
                              env)  # fmt: skip
    assert tx["backend"] == rx["backend"] == "onnx-cpu-int8"
    assert rx["frames_out"] == tx["frames_sent"] == 8
    assert "backend auto: ONNX Runtime on the CPU" in log and "Traceback" not in log


def test_ctrl_c_ends_both_ends_cleanly(tiny_model: Path, tmp_path: Path) -> None:
    """Ctrl-C on a looping sender still ends its stream properly: the receiver sees the end of input,
    finalises its recording and exits by itself; every frame sent comes out."""
    port = free_udp_port()
    recording, rx_stats, tx_stats = tmp_path / "out.mp4", tmp_path / "rx.json", tmp_path / "tx.json"
    receiver = start("recv", "--listen", f"127.0.0.1:{port}", "--model", str(tiny_model), *TORCH,
                     "--record", str(recording), "--stats-json", str(rx_stats), "--idle-exit", "20")  # fmt: skip
    sender = None
    try:
        receiver_log = wait_for_line(receiver, "listening on")
        sender = start("send", "--input", str(sample_clip_path()), "--loop", "--size", "128x96", "--to",
                       f"127.0.0.1:{port}", "--model", str(tiny_model), *TORCH,
                       "--stats-json", str(tx_stats))  # fmt: skip
        receiver_log += wait_for_line(receiver, "receiving session")
        sender.send_signal(signal.SIGINT)
        _, sender_log = sender.communicate(timeout=30)
        receiver_log += receiver.communicate(timeout=30)[1]
    finally:
        for process in (sender, receiver):
            if process is not None:
                process.kill()
    assert sender.returncode == 0 and "Traceback" not in sender_log, sender_log
    assert receiver.returncode == 0 and "Traceback" not in receiver_log, receiver_log
    tx, rx = json.loads(tx_stats.read_text()), json.loads(rx_stats.read_text())
    assert rx["end_reason"] == "end_of_input"
    assert rx["frames_out"] == tx["frames_sent"] > 0
    assert len(read_frames(recording)) == rx["frames_out"]


def test_ctrl_c_stops_a_waiting_receiver_and_still_reports(tiny_model: Path, tmp_path: Path) -> None:
    stats = tmp_path / "rx.json"
    receiver = start("recv", "--listen", "127.0.0.1:0", "--model", str(tiny_model), *TORCH, "--stats-json", str(stats))
    try:
        wait_for_line(receiver, "listening on")
        receiver.send_signal(signal.SIGINT)
        _, log = receiver.communicate(timeout=30)
    finally:
        receiver.kill()
    assert receiver.returncode == 0 and "Traceback" not in log, log
    assert json.loads(stats.read_text())["end_reason"] == "stopped"


def test_receiver_without_a_screen_fails_in_one_line(tiny_model: Path) -> None:
    env = {key: value for key, value in ENV.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "mstvsc_stream.cli.recv", "--listen", "127.0.0.1:0", "--display",
                             "--model", str(tiny_model), *TORCH, "-q"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert_one_line_error(result, "mstvsc-recv", "no display")
