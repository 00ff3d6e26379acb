"""Loss models: netem meanings, closed-form statistics, reproducibility, and probability parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mstvsc_stream.net.loss import (
    BernoulliLoss,
    GilbertElliottLoss,
    LossModel,
    LossProcess,
    ProbabilityError,
    loss_pattern,
    parse_probability,
)


def run_lengths(flags: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a boolean vector."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.3", 0.3), ("30%", 0.3), (" 12.5% ", 0.125), ("0", 0.0), ("1", 1.0), ("100%", 1.0), ("0%", 0.0)],
)
def test_parse_probability_accepts_fractions_and_percents(text: str, expected: float) -> None:
    assert parse_probability(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("30", "did you mean 30%"), ("abc", "not a probability"), ("-0.1", "between 0 and 1"),
     ("101%", "between 0 and 1"), ("nan", "between 0 and 1"), ("", "not a probability"), ("%", "not a probability")],
)
def test_parse_probability_rejects_with_one_line(text: str, fragment: str) -> None:
    with pytest.raises(ProbabilityError, match=fragment) as info:
        parse_probability(text)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


@given(st.integers(min_value=0, max_value=10_000))
def test_percent_and_fraction_agree(basis_points: int) -> None:
    assert parse_probability(f"{basis_points / 100}%") == pytest.approx(parse_probability(f"{basis_points / 10_000}"))


def test_bernoulli_delivers_the_configured_loss_rate() -> None:
    n, p = 20_000, 0.3
    lost = loss_pattern(BernoulliLoss(p), n, seed=7)
    assert lost.dtype == bool and lost.shape == (n,)
    assert abs(lost.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_simple_gilbert_matches_stationary_loss_and_burst_lengths() -> None:
    p, r = 0.05, 0.25  # mean loss p/(p+r) = 1/6, losses come in geometric bursts of mean 1/r = 4
    model = GilbertElliottLoss.netem(p, r)
    lost = loss_pattern(model, 200_000, seed=3)
    assert model.mean_loss_rate == pytest.approx(p / (p + r))
    assert lost.mean() == pytest.approx(model.mean_loss_rate, rel=0.05)
    assert run_lengths(lost).mean() == pytest.approx(1 / r, rel=0.05)
    assert run_lengths(~lost).mean() == pytest.approx(1 / p, rel=0.05)


def test_gilbert_elliott_with_partial_loss_in_both_states() -> None:
    model = GilbertElliottLoss.netem(0.1, 0.3, 0.8, 0.02)
    expected = 0.25 * 0.8 + 0.75 * 0.02  # bad state share p/(p+r) = 0.25
    assert model.mean_loss_rate == pytest.approx(expected)
    assert loss_pattern(model, 200_000, seed=5).mean() == pytest.approx(expected, rel=0.05)


def test_gemodel_with_only_p_is_bernoulli_as_netem_documents() -> None:
    model = GilbertElliottLoss.netem(0.2)
    assert (model.r, model.bad_loss, model.good_loss) == (pytest.approx(0.8), 1.0, 0.0)
    lost = loss_pattern(model, 100_000, seed=11)
    assert lost.mean() == pytest.approx(0.2, abs=0.01)
    after_a_loss = lost[1:][lost[:-1]]
    assert after_a_loss.mean() == pytest.approx(0.2, abs=0.015)  # no burstiness


def test_degenerate_chains() -> None:
    assert not loss_pattern(GilbertElliottLoss(p=0.0, r=0.0), 5000, seed=1).any()
    stuck = loss_pattern(GilbertElliottLoss(p=0.01, r=0.0), 5000, seed=1)
    first = int(np.argmax(stuck))
    assert stuck.any() and stuck[first:].all()
    assert loss_pattern(BernoulliLoss(1.0), 100, seed=1).all()


def test_same_seed_same_pattern_other_seed_other_pattern() -> None:
    model = GilbertElliottLoss.netem(0.1, 0.4)
    np.testing.assert_array_equal(loss_pattern(model, 10_000, seed=42), loss_pattern(model, 10_000, seed=42))
    assert (loss_pattern(model, 10_000, seed=42) != loss_pattern(model, 10_000, seed=43)).any()


@pytest.mark.parametrize("model", [BernoulliLoss(0.3), GilbertElliottLoss.netem(0.05, 0.3, 0.9, 0.01)])
def test_stream_does_not_depend_on_how_it_is_consumed(model: LossModel) -> None:
    whole = loss_pattern(model, 10_000, seed=9)
    one_by_one = LossProcess(model, seed=9)
    np.testing.assert_array_equal([one_by_one.lose() for _ in range(10_000)], whole)
    pieces = LossProcess(model, seed=9)
    np.testing.assert_array_equal(np.concatenate([pieces.draw(k) for k in (1, 4095, 0, 3000, 2904)]), whole)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ProbabilityError, match="loss probability"):
        BernoulliLoss(1.5)
    with pytest.raises(ProbabilityError, match="gemodel r"):
        GilbertElliottLoss(0.1, -0.2)
    with pytest.raises(ValueError, match="-1 packets"):
        LossProcess(BernoulliLoss(0.1), seed=1).draw(-1)
    assert loss_pattern(BernoulliLoss(0.1), 0, seed=1).shape == (0,)
