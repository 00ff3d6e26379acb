"""The closed loop end to end: sender -> relay bottleneck -> receiver over loopback, reports back the
reverse path. Uses tools/congestion_bench.py's transport codec (the real model's stream size, no CPU)."""

from __future__ import annotations

import secrets
from types import ModuleType

import pytest
from tool_modules import load_tool

from mstvsc_stream.net.eventloop import run
from mstvsc_stream.net.relay import Impairment

pytestmark = pytest.mark.timeout(60)

def load_bench() -> ModuleType:
    return load_tool("congestion_bench")


@pytest.mark.parametrize("sealed", [False, True])
def test_the_sender_backs_off_to_a_bottleneck_it_learns_of_from_reports(sealed: bool) -> None:
    bench = load_bench()
    key = secrets.token_bytes(32) if sealed else None
    scenario = bench.Scenario(7, Impairment(rate_kbit=110, queue_s=0.2, seed=1))
    result = run(bench.measure(scenario, True, key))
    (sender,), (receiver,), relay = result["senders"], result["receivers"], result["relay"]
    assert sender["feedback"] == "closed loop" and sender["reports_received"] > 20
    assert sender["reports_invalid"] == 0 and receiver["reports_sent"] >= sender["reports_received"]
    assert relay["reversed"] == receiver["reports_sent"]
    assert sender["rate_decreases"] >= 1 and sender["segments_withheld_by_controller"] > 0
    assert sender["rtt_ms_p50"] is not None
    late = [sample["flows"][0]["target_kbps"] for sample in result["samples"] if sample["t"] > 4]
    assert max(late) < 150  # the full stream is ~197 kbit/s: the controller stays near the 110 kbit/s link
    assert receiver["invalid_datagrams"] == 0 and receiver["frames_out"] > 0


def test_without_feedback_the_sender_stays_open_loop_and_the_queue_fills() -> None:
    bench = load_bench()
    scenario = bench.Scenario(4, Impairment(rate_kbit=110, queue_s=0.2, seed=1))
    result = run(bench.measure(scenario, False))
    (sender,), (receiver,), relay = result["senders"], result["receivers"], result["relay"]
    assert sender["feedback"] == "off" and receiver["reports_sent"] == 0 and sender["reports_received"] == 0
    assert sender["segments_withheld"] == 0 and relay["overflowed"] > 0
    assert relay["queue_delay_ms_p95"] > 150


def test_a_datagram_too_short_for_a_header_from_the_followed_sender_is_no_segment() -> None:
    from test_pipeline_units import DESCRIPTOR

    from mstvsc_stream.pipeline.closedloop import ReceiverReports

    reports = ReceiverReports(None)
    reports.segment(b"\x01\x02", DESCRIPTOR, None, 1.0)  # raised WireError out of the receiver's datagram handler
    assert reports.log.report(2.0, 0) is None  # nothing logged, so nothing to report
