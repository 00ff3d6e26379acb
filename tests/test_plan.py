"""Packetisation planner: eq. 1-10 against hand-computed values, the curve f_p, and mstvsc-plan."""

from __future__ import annotations

import json
import math

import pytest

from mstvsc_stream.cli.plan import main as plan_main
from mstvsc_stream.analysis.planner import (PlanError, QualityCurve, best_quality, loss_floor, loss_rate, loss_slope,
                                            packet_length, packet_loss, payload_length, plan_for_quality, plan_packets,
                                            symbols_per_packet, total_bytes)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PAPER = dict(header=49, origin=155520)  # section V-A: 3 + 8 + 20 + 18 header bytes, 155,520 data bytes


def test_eq1_eq2_packet_loss_by_hand() -> None:
    assert symbols_per_packet(100, 2) == 400  # 800 bits, 2 bits a symbol
    # 1 - 0.999**400 = 1 - exp(400 ln 0.999) = 1 - exp(-0.4002001) = 1 - 0.6701859
    assert packet_loss(1e-3, 100, 2) == pytest.approx(0.3298141, abs=1e-7)
    assert packet_loss(0.0, 100, 2) == 0.0 and packet_loss(1.0, 100, 2) == 1.0
    assert packet_loss(1e-12, 1000, 1) == pytest.approx(8e-9, rel=1e-6)  # tiny SER: no rounding to zero


def test_eq3_to_eq5_lengths() -> None:
    assert packet_length(49, 1969) == 2018
    assert payload_length(155520, 80) == 1944
    assert total_bytes(155520, 49, 80) == 80 * 49 + 155520 == 159440


def test_eq6_both_forms_agree() -> None:
    ser, n, bits = 2e-5, 64, 2
    total = total_bytes(PAPER["origin"], PAPER["header"], n)
    second_form = 1 - (1 - ser) ** (8 * (total / n) / bits)
    assert loss_rate(ser, PAPER["header"], PAPER["origin"], n, bits) == pytest.approx(second_form)
    # 64 packets of 49 + 2430 bytes, QPSK: 9916 symbols; 1 - (1 - 2e-5)**9916 = 0.180 (hand: 1 - exp(-0.19832))
    assert loss_rate(ser, PAPER["header"], PAPER["origin"], n, bits) == pytest.approx(1 - math.exp(-0.198322), abs=1e-5)


def test_eq7_floor_bounds_every_packetisation() -> None:
    ser, bits = 1e-4, 1
    floor = loss_floor(ser, PAPER["header"], bits)
    assert floor == pytest.approx(1 - (1 - 1e-4) ** 392)  # 49 bytes = 392 BPSK symbols
    for n in (1, 10, 1_000, 100_000):
        assert loss_rate(ser, PAPER["header"], PAPER["origin"], n, bits) > floor
    assert loss_rate(ser, PAPER["header"], PAPER["origin"], 1e12, bits) == pytest.approx(floor, rel=1e-6)


@pytest.mark.parametrize("ser, bits", [(1e-6, 1), (1e-5, 2), (1e-4, 4)])
def test_eq9_slope_is_negative_and_is_the_derivative(ser: float, bits: int) -> None:
    args = (ser, PAPER["header"], PAPER["origin"])
    losses = [loss_rate(*args, n, bits) for n in (1, 2, 5, 20, 100, 1000)]
    assert all(a > b for a, b in zip(losses, losses[1:]))  # P_L falls as N_p grows
    for n in (3.0, 50.0, 700.0):
        slope = loss_slope(*args, n, bits)
        step = n * 1e-5
        numeric = (loss_rate(*args, n + step, bits) - loss_rate(*args, n - step, bits)) / (2 * step)
        assert slope < 0
        assert slope == pytest.approx(numeric, rel=1e-4)


def test_plan_meets_the_threshold_with_the_fewest_packets() -> None:
    # Hand: packets of at most 1 * ln(0.85) / (8 ln(1 - 1e-5)) = 2031.5 bytes -> payload <= 1982 bytes
    # -> N_p = ceil(155520 / 1982) = 79, payload ceil(155520 / 79) = 1969, P_L = 1 - exp(-16144e-5 ...) = 0.1491
    plan = plan_packets(1e-5, 1, PAPER["header"], PAPER["origin"], 0.15)
    assert (plan.packets, plan.payload, plan.total_bytes) == (79, 1969, 159391)
    assert plan.loss_rate == pytest.approx(0.149083, abs=1e-6)
    assert packet_loss(1e-5, PAPER["header"] + math.ceil(PAPER["origin"] / 78), 1) > 0.15  # 78 is too few
    assert plan_packets(0.0, 1, 49, 1000, 0.01).packets == 1  # an error-free link needs no cutting


def test_unreachable_loss_threshold_names_the_floor() -> None:
    with pytest.raises(PlanError, match=r"out of reach.*headers alone at 0\.98.*eq\. 7"):
        plan_packets(1e-2, 1, PAPER["header"], PAPER["origin"], 0.15)


def test_quality_curve_is_monotone_and_inverts() -> None:
    curve = QualityCurve.from_points([(0.6, 0.85), (0.0, 0.9), (0.3, 0.8), (0.9, 0.5), (0.3, 0.82)])
    assert curve.losses == (0.0, 0.3, 0.6, 0.9)
    assert curve.scores == pytest.approx((0.9, 0.8, 0.8, 0.5))  # the noisy rise at 0.6 is not believed
    assert curve(0.15) == pytest.approx(0.85)
    assert curve.max_loss_for(0.85) == pytest.approx(0.15)
    assert curve.max_loss_for(0.8) == pytest.approx(0.6)
    assert curve.max_loss_for(0.4) == 0.9  # never beyond what was measured
    with pytest.raises(PlanError, match="at most 0.9000"):
        curve.max_loss_for(0.95)


def test_eq8_and_quality_plan() -> None:
    curve = QualityCurve.from_points([(0.0, 0.9), (0.5, 0.7), (1.0, 0.2)])
    floor = loss_floor(1e-4, 49, 1)  # 0.0384
    assert best_quality(curve, 1e-4, 49, 1) == pytest.approx(0.9 - 0.4 * floor)
    max_loss, plan = plan_for_quality(curve, 0.8, 1e-5, 1, PAPER["header"], PAPER["origin"])
    assert max_loss == pytest.approx(0.25)
    assert plan == plan_packets(1e-5, 1, PAPER["header"], PAPER["origin"], 0.25)
    with pytest.raises(PlanError, match=r"MS-SSIM stays below 0\.8846 \(eq\. 8\)"):
        plan_for_quality(curve, 0.89, 1e-4, 1, PAPER["header"], PAPER["origin"])


def test_command_line_json(capsys) -> None:
    assert plan_main(["--ser", "1e-5", "--modulation", "1", "--data", "155520", "--max-loss", "0.15", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"packets": 79, "payload": 1969, "loss_rate": pytest.approx(0.149083),
                                                   "total_bytes": 159391}


@pytest.fixture
def eval_json(tmp_path) -> str:
    """An mstvsc-eval document: the planner must take the model's rows, not a baseline's."""
    rows = [{"scheme": "mstvsc", "loss": 0.0, "ms_ssim": 0.9}, {"scheme": "mstvsc", "loss": 0.5, "ms_ssim": 0.7},
            {"scheme": "h264", "loss": 0.0, "ms_ssim": 0.99}, {"scheme": "mstvsc", "loss": 1.0, "ms_ssim": 0.2}]
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"rows": rows}))
    return str(path)


def test_command_line_quality_from_an_eval_curve_with_plots(eval_json: str, tmp_path, capsys) -> None:
    rc = plan_main(["--ser", "1e-5", "--modulation", "1", "--data", "155520", "--min-ms-ssim", "0.8", "--curve",
                    eval_json, "--plot-loss", str(tmp_path / "loss.png"), "--plot-quality",
                    str(tmp_path / "quality.png"), "--json"])
    assert rc == 0
    plan = plan_packets(1e-5, 1, 49, 155520, 0.25)  # MS-SSIM 0.8 is reached up to loss 0.25
    assert json.loads(capsys.readouterr().out)["packets"] == plan.packets
    for name in ("loss.png", "quality.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize("args", [["--ser", "1e-2"], ["--ser", "1e-5", "--min-ms-ssim", "0.95", "--curve", "EVAL"]])
def test_command_line_unreachable_is_one_line(args: list[str], eval_json: str, capsys) -> None:
    args = [eval_json if a == "EVAL" else a for a in args]
    assert plan_main([*args, "--modulation", "1", "--data", "155520"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of reach" in err[0]


def test_command_line_refuses_bad_numbers(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        plan_main(["--ser", "2", "--modulation", "0", "--data", "10"])
    assert exit_info.value.code == 2
    assert "--ser" in capsys.readouterr().err
