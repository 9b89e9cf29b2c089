"""Risk metrics on synthetic series with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.metrics import (
    confidence_interval,
    cvar,
    markouts,
    max_drawdown,
    mean_confidence_interval,
    sharpe,
    sortino,
    time_at_limit,
)


def test_max_drawdown_of_a_known_path() -> None:
    # cumulative: 1, 3, 0, 2, -2, 5 -> peak 3 then trough -2: drawdown 5
    assert max_drawdown([1, 2, -3, 2, -4, 7]) == 5.0
    assert max_drawdown([1, 1, 1]) == 0.0
    assert max_drawdown([-1, -1]) == 2.0  # from the starting 0


def test_sharpe_and_sortino_by_hand() -> None:
    x = np.array([1.0, -1.0, 2.0, 0.0])
    mean, sd = 0.5, math.sqrt(((0.5**2) + 1.5**2 + 1.5**2 + 0.5**2) / 3)
    assert sharpe(x) == pytest.approx(mean / sd)
    downside = math.sqrt((0 + 1 + 0 + 0) / 4)
    assert sortino(x) == pytest.approx(mean / downside)
    assert sharpe([2.0, 2.0]) == 0.0
    assert sortino([1.0, 2.0]) == 0.0  # no downside


def test_sharpe_of_gaussian_steps_matches_its_parameter() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    x = rng.normal(0.1, 1.0, n)
    # SE of the Sharpe estimate ~ sqrt((1 + S^2 / 2) / n) = 0.0032
    assert abs(sharpe(x) - 0.1) < 4 * math.sqrt((1 + 0.1**2 / 2) / n)


def test_cvar_with_fractional_tail() -> None:
    x = np.arange(1.0, 21.0)  # 1..20
    assert cvar(x, 0.05) == 1.0  # the worst 1 of 20
    assert cvar(x, 0.1) == 1.5  # mean of 1 and 2
    assert cvar(x, 0.125) == pytest.approx((1 + 2 + 0.5 * 3) / 2.5)
    assert cvar(x, 1.0) == pytest.approx(x.mean())
    with pytest.raises(ValueError, match="alpha"):
        cvar(x, 0.0)


def test_cvar_of_a_normal_sample_matches_the_closed_form() -> None:
    rng = np.random.default_rng(1)
    n = 200_000
    x = rng.normal(0.0, 1.0, n)
    # CVaR_5% of N(0,1) = -phi(z_0.05) / 0.05 = -2.0627; SE ~ sd_tail / sqrt(alpha n) ~ 0.007
    exact = -math.exp(-0.5 * 1.6448536269514722**2) / math.sqrt(2 * math.pi) / 0.05
    assert abs(cvar(x, 0.05) - exact) < 4 * 0.45 / math.sqrt(0.05 * n)


def test_markouts_sign_adverse_selection() -> None:
    mid = np.array([100.0, 100.0, 99.0, 98.0, 98.0])
    bid_qty = np.array([1.0, 0.0, 0.0, 0.0, 0.0])  # bought 1 at 99.9 in step 0
    bid_px = np.array([99.9, 0.0, 0.0, 0.0, 0.0])
    ask_qty = np.array([0.0, 2.0, 0.0, 0.0, 0.0])  # sold 2 at 100.1 in step 1
    ask_px = np.array([0.0, 100.1, 0.0, 0.0, 0.0])
    m = markouts(mid, bid_qty, bid_px, ask_qty, ask_px, horizons=(0, 1, 10))
    assert m[0] == pytest.approx(1 * (100.0 - 99.9) + 2 * (100.1 - 100.0))
    assert m[1] == pytest.approx(1 * (100.0 - 99.9) + 2 * (100.1 - 99.0))
    assert m[10] == pytest.approx(1 * (98.0 - 99.9) + 2 * (100.1 - 98.0))  # past the end


@pytest.mark.parametrize(
    ("n", "t"),
    # Student's t quantiles t_{0.975, n-1} from the standard tables.
    [(2, 12.706), (3, 4.303), (4, 3.182), (5, 2.776), (11, 2.228), (31, 2.042)],
)
def test_confidence_interval_uses_students_t(n: int, t: float) -> None:
    x = np.arange(n, dtype=np.float64) ** 2
    se = np.std(x, ddof=1) / np.sqrt(n)
    mean, lo, hi = mean_confidence_interval(x)
    assert mean == pytest.approx(x.mean())
    assert hi - mean == pytest.approx(t * se, rel=5e-4)  # the table's 3 decimals
    assert mean - lo == pytest.approx(hi - mean)


def test_two_seeds_give_a_ci_6_5_times_wider_than_the_normal_one() -> None:
    _, lo, hi = mean_confidence_interval([1.0, 2.0])
    assert (hi - lo) / (2 * 1.959964 * 0.5) == pytest.approx(6.48, abs=0.01)


def test_a_single_value_has_no_confidence_interval() -> None:
    mean, lo, hi = mean_confidence_interval([3.0])
    assert mean == 3.0 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(b) for b in confidence_interval(3.0, 0.0, 1))
    with pytest.raises(ValueError, match="at least one value"):
        mean_confidence_interval([])


def test_time_at_limit() -> None:
    assert time_at_limit([0.0, 10.0, -10.0, 9.5], 10.0) == 0.5
