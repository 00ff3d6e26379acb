"""tools/latency_report.py: several runs summarised as median (range), as the speed and latency tables quote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tool_modules import load_tool

latency_report = load_tool("latency_report")


def run_result(dropped: int, latency: float, back: float | None, load: float) -> dict:
    sender = {"gops_sent": 75 - dropped, "gops_dropped": dropped, "encode_ms_p50": 100.0, "rung_first": "320x240 @ 30 fps",
              "rung_start": "320x240 @ 30 fps",
              "switches": 2, "seconds_degraded": 4.0}
    receiver = {"gops_held": 0, "frames_out": 300, "decode_ms_p50": 90.0, "latency_ms_p50": latency,
                "latency_ms_p95": latency + 50}
    return {"sender": sender, "receiver": receiver, "load_average_before": [load, 0, 0],
            "adaptation": {"back_after_load_s": back}}


def test_summary_gives_median_and_range_and_says_which_runs_lack_a_figure():
    results = [run_result(0, 400, 3.0, 0.5), run_result(2, 380, None, 1.5), run_result(1, 450, 5.0, 1.0)]
    summary = latency_report.summarize(results)
    assert summary["latency p50 ms"] == {"median": 400, "min": 380, "max": 450, "runs": [400, 380, 450]}
    assert summary["GOPs dropped (encoder behind)"]["median"] == 1
    assert summary["back after the load s"]["median"] == 4.0 and summary["back after the load s"]["runs"][1] is None
    text = latency_report.summary_text(results)
    assert "median (range) of 3 runs; sender started at 320x240 @ 30 fps" in text
    assert "back after the load s" in text and "(1 of 3 runs without it)" in text
    assert "load average before" in text


def test_two_short_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "runs.json"
    done = subprocess.run([sys.executable, str(Path(latency_report.__file__)), "--frames", "8", "--runs", "2",
                           "--fps", "15", "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "median (range) of 2 runs" in done.stdout
    saved = json.loads(out.read_text())
    assert len(saved["runs"]) == 2 and saved["summary"]["frames out"]["runs"] == [8, 8]
