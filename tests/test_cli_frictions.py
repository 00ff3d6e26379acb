"""What a newcomer tripped over on the command line: each mistake is one line, said before anything slow."""

from __future__ import annotations

from pathlib import Path

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
