"""mstvsc-bench on a tiny setting: one size, the ONNX backends, two GOPs; a table and valid JSON."""

from __future__ import annotations

import json

import pytest

from mstvsc_stream.cli import bench

ROW_KEYS = {"size", "backend", "side", "fps", "ms_per_gop", "peak_mb", "wire_ms_per_gop"}


def test_bench_writes_rows_for_both_sides_and_x264(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert bench.main(["--sizes", "320x240", "--backend", "onnx-int8,onnx", "--gops", "2", "--threads", "1", "-q",
                       "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {"cpu", "cores", "onnxruntime", "av"} <= set(doc["machine"])
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
