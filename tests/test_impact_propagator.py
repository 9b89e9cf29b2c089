"""The impact propagator (mmgym.core.impact) against its closed form, the metaorder experiment
and the adverse-selection estimator (mmgym.analysis.metaorder, mmgym.analysis.adverse_selection).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmgym.analysis.adverse_selection import (
    AdverseSelection,
    taker_markouts,
    touch_quoter_markouts,
)
from mmgym.analysis.metaorder import (
    FIXED_CALM,
    MetaorderRun,
    metaorder_impact,
    square_root_fit,
)
from mmgym.analysis.order_flow import propagator_kept
from mmgym.core.params import MarketParams
from mmgym.scenarios import make_params

DURATIONS = (10.0, 100.0, 1000.0)
QUIET = {**FIXED_CALM, "decoupling_per_hour": (0.0, 1.0)}  # the fast part on its 10 s pull


def closed_form_bp(p: MarketParams, child: float, seconds: float, after: float = 0.0) -> float:
    """Anchor move (bp) of ``seconds`` of one child order per tick, ``after`` seconds after the
    last: the discrete propagator sum c q sum_j s_j d_j^m (1 - d_j^N) / (1 - d_j)."""
    dt = p.tick_seconds
    n, m = round(seconds / dt), round(after / dt)
    c = p.impact_coefficient / p.depth_top[0]
    taus = (p.impact_decay_seconds, *p.impact_memory_seconds)
    shares = (
        1.0 - p.impact_permanent_share - sum(p.impact_memory_shares),
        *p.impact_memory_shares,
    )
    ticks = p.impact_permanent_share * n
    for tau, s in zip(taus, shares, strict=True):
        d = math.exp(-dt / tau)
        ticks += s * d**m * (1.0 - d**n) / (1.0 - d)
    return c * child * ticks / (p.initial_price / p.tick_size) * 1e4


@pytest.fixture(scope="module")
def default_run() -> MetaorderRun:
    return metaorder_impact("calm", DURATIONS, envs_per_duration=4, seed=3, **QUIET)


def test_metaorder_moves_the_anchor_by_the_propagator_sum(default_run: MetaorderRun) -> None:
    # The paired difference of the anchors is the metaorder's own impact: the closed-form sum,
    # up to the price's drift from its initial level over the run (the offsets are in ticks;
    # calm 1 h sd 0.5 %) and the rare crowd close that one run triggers and not the other:
    # 3 % of the value.
    p = make_params("calm", **QUIET)
    child = default_run.participation * default_run.volume_per_second * p.tick_seconds
    for duration in DURATIONS:
        rows = default_run.durations == duration
        end = closed_form_bp(p, child, duration)
        later = closed_form_bp(p, child, duration, after=duration)
        assert np.median(default_run.anchor_impact_bp[rows]) == pytest.approx(end, rel=0.03)
        assert np.median(default_run.anchor_after_bp[rows]) == pytest.approx(later, rel=0.03)


def test_default_propagator_gives_the_square_root_law(default_run: MetaorderRun) -> None:
    # Closed form of the default propagator at a constant rate: I(T) ~ T^delta with delta
    # within 0.05 of 1/2 between 10 s and 1000 s; the simulated anchor's exponent within 0.02
    # of the closed form's (the anchors' paired differences are nearly deterministic).
    p = make_params("calm", **QUIET)
    t = np.array(DURATIONS)
    closed = np.array([propagator_kept(p, s) * s for s in t])
    delta = np.polyfit(np.log(t), np.log(closed), 1)[0]
    assert abs(delta - 0.5) < 0.05, delta
    fit = square_root_fit(default_run, anchor=True)
    assert abs(fit.exponent.value - delta) < 0.02, (fit.exponent, delta)


def test_transient_only_setting_reverts_fully_and_keeps_the_old_law() -> None:
    # Memory and permanent shares 0: one exponential of 10 s, so 100 s after the end of a
    # 100 s metaorder e^-10 (5e-5) of its impact remains, and its impact saturates at c q tau.
    old = {**QUIET, "impact_memory_shares": (0.0, 0.0, 0.0), "impact_permanent_share": 0.0}
    run = metaorder_impact("calm", (100.0,), envs_per_duration=4, seed=5, **old)
    assert np.median(run.anchor_after_bp / run.anchor_impact_bp) == pytest.approx(0.0, abs=1e-3)
    p = make_params("calm", **old)
    child = run.participation * run.volume_per_second * p.tick_seconds
    assert np.median(run.anchor_impact_bp) == pytest.approx(
        closed_form_bp(p, child, 100.0), rel=0.03
    )


def test_shares_above_one_are_rejected() -> None:
    with pytest.raises(ValueError, match="impact_permanent_share"):
        MarketParams(impact_memory_shares=(0.5, 0.3, 0.1), impact_permanent_share=0.2).validate()


def test_square_root_fit_recovers_a_known_law() -> None:
    # Synthetic impacts I = 3 Q^0.6 (1 + 0.2 eps), 400 per size at 6 sizes: the WLS exponent's
    # SE is about 0.003; it must be within 3 SE of 0.6, and the reversion (after = 0.25 I)
    # within 3 SE of 0.75.
    rng = np.random.default_rng(0)
    q = np.repeat(np.logspace(-5, -2, 6), 400)
    impact = 3.0 * q**0.6 * (1.0 + 0.2 * rng.standard_normal(q.size))
    after = 0.25 * impact + 0.01 * 3.0 * q**0.6 * rng.standard_normal(q.size)
    run = MetaorderRun(q * 864.0, q, impact, after, impact, after, 100.0, 1.0, 0.1, 1.0)
    fit = square_root_fit(run)
    assert fit.exponent.se < 0.01
    assert abs(fit.exponent.value - 0.6) < 3 * fit.exponent.se, fit.exponent
    assert abs(fit.reversion.value - 0.75) < 3 * fit.reversion.se, fit.reversion


def test_adverse_selection_share_is_a_ratio_with_a_clustered_se() -> None:
    # 500 envs whose AS sums are 0.1 x their effective sums plus noise of sd 1: the share's SE
    # is about 1 / (sqrt(500) x 20) = 0.0022; it must be within 3 SE of 0.1.
    rng = np.random.default_rng(1)
    eff = rng.uniform(10.0, 30.0, 500)
    result = AdverseSelection(eff / 2.5, eff, 0.1 * eff + rng.standard_normal(500), 300.0)
    assert result.share.se == pytest.approx(1.0 / (math.sqrt(500) * 20.0), rel=0.2)
    assert abs(result.share.value - 0.1) < 3 * result.share.se
    assert result.effective.value == pytest.approx(2.5)


def test_touch_quoter_earns_the_background_half_spread() -> None:
    # Calm background makers quote anchor -/+ 2 ticks rounded outward: a spread of 4 or 5
    # ticks, so a quoter at the touch earns 2 to 2.5 ticks per fill: 2 to 2.5 bp at price
    # 100, and at most 2.5 x 100 / 99 bp while the price stays above 99 (6 minutes of calm:
    # the price's standard deviation over them is about 0.07 %, so a 1 % fall is ~15 SD away).
    result = touch_quoter_markouts("calm", "calm", num_envs=4, hours=0.1, horizon_seconds=30.0)
    assert result.filled.sum() > 0.0
    assert 2.0 * 100.0 / 101.0 <= result.effective.value <= 2.5 * 100.0 / 99.0


def test_a_touch_quoter_with_no_delay_is_not_a_move_behind_the_book() -> None:
    # Decisions one tick apart, so no delay: the quotes land at the start of each tick, before
    # the tick's takers and price move, as the background's stand. The quoter is then not left
    # alone at an old touch when the background requotes, and its markout one tick after a
    # fill is what the informed flow and the impact carry: 0.12 +- 0.017 of the effective
    # spread on this run (32 envs x 0.5 h, seed 0), on 122 units filled. When orders landed
    # after the tick's move (commit f878039) the same run gave 0.299 +- 0.004 on 2,201 units:
    # every move of the touch left the quote at the old price, first in line. The share's
    # bound sits 4.6 SE above the first and 23 SE below the second; the fills' between the two.
    result = touch_quoter_markouts("calm", "calm", num_envs=32, hours=0.5, horizon_seconds=0.1)
    assert result.share.value < 0.2, result.share
    assert result.filled.sum() < 1000.0, result.filled.sum()


def test_takers_pay_the_background_half_spread_and_lose_nothing_to_a_still_price() -> None:
    # The fair price, its jumps, the informed drift, the flow's impact and the carry held
    # still: the book only recentres on a fixed anchor, so the takers' effective half-spread is
    # the makers' 2 ticks rounded outward (2 to 2.5 bp at price 100) plus the little their
    # larger orders walk, and the mid's move after a trade has nothing to follow (the calm
    # market's 0.09 bp per unit at 10 s comes from the moves these overrides switch off).
    still = {
        "volatility": (1e-9, 1e-9, 1e-9),
        "jump_rate_per_hour": (0.0, 0.0, 0.0),
        "signal_move": (0.0, 0.0, 0.0),
        "impact_coefficient": 0.0,
        "carry_volatility": (0.0, 0.0, 0.0),
        "carry_squeeze_per_hour": (0.0, 0.0, 0.0),
    }
    result = taker_markouts("calm", "calm", num_envs=4, hours=0.1, horizon_seconds=10.0, **still)
    assert result.filled.sum() > 100.0
    assert 2.0 * 100.0 / 101.0 <= result.effective.value <= 3.0
    assert abs(result.adverse.value) < 0.01
