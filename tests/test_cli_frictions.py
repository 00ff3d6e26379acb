"""What a newcomer tripped over on the command line: each mistake is one line, said before anything slow."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_cli_send_recv import TORCH, assert_one_line_error, cli, tiny_model  # noqa: F401


def test_a_bad_listen_address_is_one_line_without_the_usage() -> None:
    result = cli("recv", "--listen", "nonsense")
    assert_one_line_error(result, "mstvsc-recv", "--listen", "HOST:PORT", "--help")
    assert "usage:" not in result.stderr


def test_an_unresolvable_destination_fails_before_the_model_loads(tiny_model: Path) -> None:
    """Not even -q: the one line is all there is, no model-loading lines before it."""
    result = cli("send", "--input", "sample", "--to", "no-such-host.invalid:5000", "--model", str(tiny_model), *TORCH)
    assert_one_line_error(result, "mstvsc-send", "no-such-host.invalid")


def test_every_model_option_says_what_it_does() -> None:
    text = " ".join(cli("recv", "--help").stdout.split())
    assert "--device {cpu,cuda} where inference runs" in text
    assert "within 0.03 dB" in text


def test_a_record_format_without_a_recording_is_one_line() -> None:
    assert_one_line_error(cli("recv", "--listen", ":0", "--record-format", "nut"), "mstvsc-recv", "--record")


def test_a_recording_in_a_folder_that_takes_no_files_is_refused_at_start(capsys) -> None:  # noqa: ANN001
    """/proc/out.mkv was found only when the first frame was due; the run had listened for nothing."""
    from mstvsc_stream.cli.recv import main

    with pytest.raises(SystemExit) as info:
        main(["--listen", ":0", "--record", "/proc/out.mkv"])
    assert info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "--record: cannot write in '/proc'" in line


def _parse_error(module: str, argv: list[str], capsys) -> str:  # noqa: ANN001 - pytest's capsys
    """Parse ``argv`` with the command's own parser (in-process: fast); the one line it exits with."""
    parser = importlib.import_module(f"mstvsc_stream.cli.{module}").build_parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


SEND = ["--input", "sample", "--to", "127.0.0.1:5000"]


@pytest.mark.parametrize(
    ("argv", "words"),
    [(["--fps", "inf"], ["--fps", "'inf' is not a positive number"]),  # was an OverflowError traceback
     (["--fps", "1e9"], ["--fps", "more than 1000"]),  # was 'descriptor field out of range' after the model loaded
     (["--kbps", "inf"], ["--kbps", "'inf'"]),  # was 'cannot convert float NaN to integer'
     (["--ttl", "1000"], ["--ttl", "0 to 255"]),  # was accepted
     (["--seed", "xyz"], ["--seed", "'xyz' is not a whole number"]),  # was 'invalid <lambda> value'
     (["--seed", "-1"], ["--seed", "64-bit"]),  # was refused only after the model loaded
     (["--size", "100000x100000"], ["--size", "3840x2160"]),  # was '286706 segments ...; use larger payloads'
     (["--frames", "abc"], ["--frames", "'abc' is not a whole number"])],  # was 'invalid literal for int()'
)
def test_send_refuses_impossible_numbers_in_one_line(argv: list[str], words: list[str], capsys) -> None:  # noqa: ANN001
    line = _parse_error("send", SEND + argv, capsys)
    assert line.startswith("mstvsc-send: error: ")
    for word in words:
        assert word in line


@pytest.mark.parametrize("option", ["--duration", "--idle-exit", "--source-timeout", "--playout-ms"])
def test_recv_refuses_an_infinite_time(option: str, capsys) -> None:  # noqa: ANN001
    assert option in _parse_error("recv", ["--listen", ":5000", option, "inf"], capsys)


def test_the_demo_takes_sample_like_send_and_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`mstvsc-demo --input sample` failed with 'cannot open video sample'."""
    from mstvsc_stream.cli import demo
    from mstvsc_stream.media import sample_clip_path

    inputs = []

    async def fake_demo(codec, config):  # noqa: ANN001, ANN202
        inputs.append(config.input)
        return []

    monkeypatch.setattr(demo, "open_codec", lambda args: SimpleNamespace(model_id="stub", gop=4))
    monkeypatch.setattr(demo, "run_demo", fake_demo)
    assert demo.main(["--input", "sample", "--out", str(tmp_path), "-q"]) == 0
    assert Path(inputs[0]) == sample_clip_path()


def test_bench_says_what_its_device_option_does() -> None:
    from mstvsc_stream.cli.bench import build_parser

    assert "where inference runs" in " ".join(build_parser().format_help().split())


def test_bench_lists_the_models_like_every_codec_command(capsys) -> None:  # noqa: ANN001
    """docs/usage.md says every codec command takes --list-models; mstvsc-bench refused it."""
    from mstvsc_stream.cli.bench import build_parser
    from mstvsc_stream.runtime import DEFAULT_MODEL

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--list-models"])
    assert info.value.code == 0 and DEFAULT_MODEL in capsys.readouterr().out


@pytest.mark.parametrize(
    ("module", "argv", "option"),
    [("recv", ["--listen", ":0", "--stats-json"], "--stats-json"),
     ("send", [*SEND, "--stats-json"], "--stats-json"),
     ("relay", ["--listen", ":0", "--to", "127.0.0.1:5000", "--stats-json"], "--stats-json"),
     ("eval", ["--input", "sample", "--json"], "--json"),
     ("demo", ["--json"], "--json"),
     ("bench", ["--json"], "--json")],
)
def test_an_output_file_that_is_a_directory_is_refused_before_the_run(
    module: str, argv: list[str], option: str, tmp_path: Path, capsys  # noqa: ANN001
) -> None:
    """It was found only when the results were written at the end ('[Errno 21] Is a directory'), and
    the run's results were lost."""
    command = importlib.import_module(f"mstvsc_stream.cli.{module}")
    with pytest.raises(SystemExit) as info:
        command.main([*argv, str(tmp_path), "--out", str(tmp_path / "out")] if module == "demo"
                     else [*argv, str(tmp_path)])
    assert info.value.code == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and option in line and "is a directory" in line
