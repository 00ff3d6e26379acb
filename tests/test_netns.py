"""tools/netns_e2e.sh as CI runs it: the shipped model streaming the sample clip between three network
namespaces (sender, lossy hop, receiver) over veth links, and the namespaces gone afterwards, also when
the run fails. Needs root and `ip netns`; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.timeout(300)]

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "netns_e2e.sh"
LOSS = 0.3
GOPS = 12


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's ip"
    probe = f"mstvsc-probe-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add does not work here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@pytest.fixture(scope="module", autouse=True)
def netns_available() -> None:
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)


def run_script(tag: str, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MSTVSC_NETNS_TAG": tag, "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), "--out", str(out), *args], env=env, capture_output=True,
                          text=True, timeout=280)  # fmt: skip


def leftover_namespaces(tag: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in listed.splitlines() if line.split() and line.split()[0].endswith(f"-{tag}")]


def processes_using(path: Path) -> list[int]:
    """Pids whose command line names ``path``: anything the script started and left running."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(path).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:  # gone meanwhile
                pass
    return found


@pytest.mark.slow
def test_the_clip_crosses_a_lossy_hop_between_namespaces_with_every_frame_out(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    result = run_script(tag, tmp_path, "--loss", f"{LOSS * 100:g}", "--gops", str(GOPS))
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    impairment = summary["impairment"]
    assert impairment in ("netem", "relay")
    assert f"impairment: {'kernel netem' if impairment == 'netem' else 'mstvsc-relay'}" in result.stdout

    sender = json.loads((tmp_path / "sender.json").read_text())
    receiver = json.loads((tmp_path / "receiver.json").read_text())
    assert sender["frames_sent"] == GOPS * 4 and sender["gops_dropped"] == 0
    assert receiver["frames_out"] == sender["frames_sent"]
    assert receiver["end_reason"] == "end_of_input"
    assert receiver["segments_expected"] == GOPS * int(sender["segments_per_gop"].split("/")[1])
    assert abs(receiver["segment_loss_rate"] - LOSS) < 0.15
    # The stream really came across the veth links: the receiver saw the hop's address, not loopback.
    hop = "10.203.0.5" if impairment == "relay" else "10.203.0.1"
    assert f"from {hop}:" in (tmp_path / "receiver.log").read_text()
    if impairment == "relay":
        relayed = json.loads((tmp_path / "relay.json").read_text())
        assert relayed["dropped"] > 0 and relayed["received"] == relayed["forwarded"] + relayed["dropped"]
    else:
        assert "dropped" in (tmp_path / "netem.txt").read_text()

    assert leftover_namespaces(tag) == []
    assert processes_using(tmp_path) == []


def test_a_failing_run_still_removes_its_namespaces_and_processes(tmp_path: Path) -> None:
    """An odd frame size makes the sender refuse after the namespaces and the receiver are up."""
    tag = uuid.uuid4().hex[:8]
    result = run_script(tag, tmp_path, "--size", "17x17", "--gops", "1")
    assert result.returncode != 0
    assert "the sender failed" in result.stderr and "17x17" in result.stderr
    assert (tmp_path / "receiver.log").exists(), "the receiver should have been started before the failure"
    assert leftover_namespaces(tag) == []
    assert processes_using(tmp_path) == []
