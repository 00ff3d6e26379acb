"""mstvsc-bench on a tiny setting: one size, the ONNX backends, two GOPs; a table and valid JSON."""

from __future__ import annotations

import json

import pytest

from mstvsc_stream.analysis.bench import combine_runs
from mstvsc_stream.cli import bench

ROW_KEYS = {"size", "backend", "side", "fps", "ms_per_gop", "peak_mb", "wire_ms_per_gop"}


def test_bench_writes_rows_for_both_sides_and_x264(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--sizes", "320x240", "--backend", "onnx-int8,onnx", "--gops", "2", "--threads", "1", "-q",
                       "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {"cpu", "cores", "onnxruntime", "av"} <= set(doc["machine"])
    assert len(doc["load_average_start"]) == len(doc["load_average_end"]) == 3 and doc["runs"] == 1
    rows = doc["rows"]
    assert [(r["backend"], r["side"]) for r in rows] == [("onnx-cpu-int8", "encode"), ("onnx-cpu-int8", "decode"),
                                                         ("onnx-cpu", "encode"), ("onnx-cpu", "decode"),
                                                         ("x264", "encode")]
    for row in rows:
        assert ROW_KEYS <= set(row) and row["size"] == "320x240"
        assert row["fps"] > 0 and row["ms_per_gop"] > 0 and row["peak_mb"] > 0
        assert row["fps"] == pytest.approx(4000 / row["ms_per_gop"])
    assert all(r["wire_ms_per_gop"] > 0 for r in rows[:4]) and rows[4]["wire_ms_per_gop"] is None
    assert rows[4]["kbps"] > 0
    assert "onnx-cpu  encode" in capsys.readouterr().out


def test_runs_combine_into_the_median_and_range_of_each_row() -> None:
    def row(fps: float, wire: float | None = 0.1) -> dict:
        return {"size": "320x240", "backend": "x", "side": "encode", "fps": fps, "ms_per_gop": 4000 / fps,
                "peak_mb": fps, "wire_ms_per_gop": wire}

    rows = combine_runs([[row(10)], [row(30)], [row(20)]])
    assert len(rows) == 1
    assert (rows[0]["fps"], rows[0]["fps_min"], rows[0]["fps_max"]) == (20, 10, 30)
    assert rows[0]["ms_per_gop"] == pytest.approx(200) and rows[0]["peak_mb"] == 30
    assert rows[0]["fps_runs"] == [10, 30, 20]
    assert combine_runs([[row(10, None)], [row(12, None)]])[0]["wire_ms_per_gop"] is None


@pytest.mark.parametrize("args, message", [
    (["--backend", "tensorrt"], "unknown backend 'tensorrt'"),
    (["--sizes", "640"], "size must be WxH"),
    (["--gops", "0"], "positive whole number"),
    (["--json", "/no/such/dir/out.json"], "no directory"),
])
def test_bad_options_are_one_line(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench.main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
