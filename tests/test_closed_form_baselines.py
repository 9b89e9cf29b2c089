"""Closed forms (AS, GLFT, Cartea-Jaimungal), the AS-env policies, the PerpMM baselines and
their calibration.

The CJ table is checked against an independent numerical solution: the nonlinear HJB for
``h(t, q)`` integrated with scipy's Radau solver (no use of the linearisation ``omega``), and
its depths against a numerical maximisation of the Hamiltonian. This fixes which side uses
``q + 1`` and which ``q - 1``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import minimize_scalar

from agents.baselines import calibration as cal
from agents.baselines.as_env_policies import CarteaJaimungalPolicy, GLFTPolicy
from agents.baselines.closed_form import (
    _log_omega_by_recursion,
    avellaneda_stoikov_depths,
    cartea_jaimungal_table,
    cj_log_omega,
    cj_matrix,
    glft_constant,
    glft_depths,
    optimal_spread,
    reservation_price,
)
from agents.baselines.model_baselines import PerpAvellanedaStoikov, PerpCarteaJaimungal, PerpGLFT
from agents.baselines.registry import make_baseline, settings_of
from agents.policy import Policy
from mmgym.core.layout import pack_params
from mmgym.core.orders import decode_quotes
from mmgym.core.params import MarketParams
from mmgym.features.observation import ASSET_FEATURES, OBS_NAMES, observation_dim

# --- AS and GLFT: hand-computed values ---------------------------------------------------------


def test_glft_against_hand_computed_values() -> None:
    # gamma=0.1, sigma=2, A=140, k=1.5 (the AS experiment), to 30 digits with mpmath:
    # c = sqrt(4 x 0.1 / (2 x 1.5 x 140) x (1 + 0.1/1.5)^16) = 0.0517172161219660,
    # (1/gamma) ln(1 + gamma/k) = 10 ln(16/15) = 0.645385211375712.
    assert glft_constant(0.1, 2.0, 140.0, 1.5) == pytest.approx(0.0517172161219660, rel=1e-13)
    bid, ask = glft_depths([-3, 0, 2], 0.1, 2.0, 140.0, 1.5)
    np.testing.assert_allclose(bid, [0.516092171070797, 0.671243819436695, 0.774678251680627])
    np.testing.assert_allclose(ask, [0.826395467802593, 0.671243819436695, 0.567809387192763])
    # A long book buys less eagerly and sells more eagerly; each lot moves both by c.
    assert bid[2] > bid[1] > bid[0] and ask[2] < ask[1] < ask[0]
    with pytest.raises(ValueError, match="gamma"):
        glft_constant(0.0, 2.0, 140.0, 1.5)


def test_as_depths_match_reservation_price_and_spread() -> None:
    q, tau = np.array([-2.0, 0.0, 3.0]), np.array([0.9, 0.5, 0.1])
    bid, ask = avellaneda_stoikov_depths(q, tau, 0.1, 2.0, 1.5)
    r = reservation_price(100.0, q, 0.1, 2.0, tau)
    spread = optimal_spread(0.1, 2.0, tau, 1.5)
    np.testing.assert_allclose(100.0 - bid, r - spread / 2, rtol=1e-14)
    np.testing.assert_allclose(100.0 + ask, r + spread / 2, rtol=1e-14)


# --- Cartea-Jaimungal: hand-computed case -------------------------------------------------------


def test_cj_three_states_closed_form() -> None:
    # Q=1, phi=alpha=0: omega' = M omega with M = a [[0,1,0],[1,0,1],[0,1,0]], a = A/e, z = 1.
    # Then omega_0 = cosh(r) + sqrt(2) sinh(r), omega_{+-1} = cosh(r) + sinh(r)/sqrt(2),
    # r = sqrt(2) a tau.
    A, k, T = 3.0, 2.0, 0.7
    table = cartea_jaimungal_table(0.0, 0.0, A, k, T, 1, 7)
    r = math.sqrt(2.0) * A / math.e * (T - table.times)
    w0 = np.cosh(r) + math.sqrt(2.0) * np.sinh(r)
    w1 = np.cosh(r) + np.sinh(r) / math.sqrt(2.0)
    np.testing.assert_allclose(table.value[:, 1], np.log(w0) / k, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(table.value[:, 0], np.log(w1) / k, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(table.bid_depth[:, 1], (1 + np.log(w0 / w1)) / k, rtol=1e-12)
    np.testing.assert_allclose(table.ask_depth[:, 2], (1 + np.log(w1 / w0)) / k, rtol=1e-12)
    assert np.isnan(table.bid_depth[:, 2]).all() and np.isnan(table.ask_depth[:, 0]).all()
    np.testing.assert_allclose(table.bid_depth[-1, :2], 1 / k)  # at T: z flat, depth 1/k


# --- Cartea-Jaimungal: against the HJB solved numerically ---------------------------------------


@functools.cache
def _hjb(phi: float, alpha: float, A: float, k: float, T: float, Q: int) -> Any:
    """h(t, q) from dh/dt = phi q^2 - sum over sides of sup_d A e^{-k d} (d + h(q') - h(q)),
    the sup evaluated in closed form (A/(k e)) e^{k (h(q') - h(q))}; h(T, q) = -alpha q^2.
    Written independently of the module: no matrix, no omega. Dense output in tau = T - t."""
    q = np.arange(-Q, Q + 1, dtype=np.float64)
    rate = A / (k * math.e)

    def rhs(tau: float, h: np.ndarray) -> np.ndarray:  # d h / d tau
        out = -phi * q**2
        out[:-1] += rate * np.exp(k * (h[1:] - h[:-1]))  # bid: a fill takes q to q + 1
        out[1:] += rate * np.exp(k * (h[:-1] - h[1:]))  # ask: a fill takes q to q - 1
        return out

    sol = solve_ivp(
        rhs, (0.0, T), -alpha * q**2, method="Radau", rtol=1e-11, atol=1e-11, dense_output=True
    )
    assert sol.success
    return sol.sol


def _hjb_solution(
    phi: float, alpha: float, A: float, k: float, T: float, Q: int, times: np.ndarray
) -> np.ndarray:
    return np.asarray(_hjb(phi, alpha, A, k, T, Q)(T - times).T)


CASES = [
    # (phi, alpha, A, k, T, Q): the cj2015 experiment (omega spans e^-75 at T: the last few
    # times are recomputed by the non-negative recursion); a large terminal penalty (e^-450:
    # recomputed over a longer stretch); a PerpMM-like long horizon (mu_max T ~ 4000, which
    # would overflow without the shift).
    (0.2, 0.5, 140.0, 1.5, 1.0, 10),
    (0.2, 3.0, 140.0, 1.5, 1.0, 10),
    (2e-6, 1e-4, 1.4, 130.0, 3600.0, 10),
]


@pytest.mark.parametrize(("phi", "alpha", "A", "k", "T", "Q"), CASES)
def test_cj_table_matches_hjb(
    phi: float, alpha: float, A: float, k: float, T: float, Q: int
) -> None:
    table = cartea_jaimungal_table(phi, alpha, A, k, T, Q, 200)
    h = _hjb_solution(phi, alpha, A, k, T, Q, table.times)
    # Radau at rtol 1e-11 on values of order 1-100: agreement to 1e-7 absolute.
    np.testing.assert_allclose(table.value, h, rtol=0, atol=1e-7 * max(1.0, np.abs(h).max()))
    assert np.isfinite(table.value).all()


@pytest.mark.parametrize(("phi", "alpha", "A", "k", "T", "Q"), CASES[:2])
def test_cj_depths_maximise_the_hamiltonian(
    phi: float, alpha: float, A: float, k: float, T: float, Q: int
) -> None:
    table = cartea_jaimungal_table(phi, alpha, A, k, T, Q, 200)
    h = _hjb_solution(phi, alpha, A, k, T, Q, table.times)
    for n in (0, 100, 190, 199):
        for j in range(2 * Q + 1):
            for side, other in (("bid", j + 1), ("ask", j - 1)):
                depth = (table.bid_depth if side == "bid" else table.ask_depth)[n, j]
                if not 0 <= other <= 2 * Q:
                    assert np.isnan(depth), (side, n, j)  # no quote beyond the limit
                    continue
                gain = h[n, other] - h[n, j]
                best = minimize_scalar(
                    lambda d, g=gain: -math.exp(-k * d) * (d + g),
                    bracket=(-gain, -gain + 1.0 / k, -gain + 5.0 / k),
                    tol=1e-12,
                )
                assert depth == pytest.approx(best.x, abs=1e-5), (side, n, j)


def test_eigendecomposition_and_recursion_agree() -> None:
    phi, alpha, A, k, Q = 0.2, 0.1, 140.0, 1.5, 10
    tau = np.linspace(0.0, 1.0, 101)
    eig = cj_log_omega(phi, alpha, A, k, Q, tau)
    rec = _log_omega_by_recursion(
        cj_matrix(phi, A, k, Q), -alpha * k * np.arange(-Q, Q + 1.0) ** 2, tau, np.arange(101)
    )
    np.testing.assert_allclose(eig, rec, rtol=1e-11, atol=1e-9)


def test_cj_table_is_cached_and_read_only() -> None:
    a = cartea_jaimungal_table(0.2, 0.5, 140.0, 1.5, 1.0, 10, 200)
    assert cartea_jaimungal_table(0.2, 0.5, 140.0, 1.5, 1.0, 10, 200) is a
    with pytest.raises(ValueError):
        a.log_omega[0, 0] = 0.0
    with pytest.raises(ValueError, match="Q"):
        cartea_jaimungal_table(0.2, 0.5, 140.0, 1.5, 1.0, 0, 200)
    with pytest.raises(ValueError, match="phi"):
        cartea_jaimungal_table(-0.2, 0.5, 140.0, 1.5, 1.0, 10, 200)


def test_cj_table_reads_between_its_rows_and_refuses_nan() -> None:
    table = cartea_jaimungal_table(0.2, 0.5, 140.0, 1.5, 1.0, 10, 200)
    dt = float(table.times[1])
    q = np.arange(-12.0, 13.0)  # beyond the limits: held at +/-Q
    column = np.clip(q, -10, 10).astype(int) + 10
    value = table.value
    # Before the start and after the end: the first and last rows exactly.
    np.testing.assert_array_equal(table.value_at(-1.0, q), value[0, column])
    np.testing.assert_array_equal(table.value_at(2.0, q), value[-1, column])
    # Between rows: the linear blend; the nearest whole inventory (0.4 -> 0, 0.6 -> 1).
    blend = 0.75 * value[3, column] + 0.25 * value[4, column]
    np.testing.assert_allclose(table.value_at(3.25 * dt, q), blend, rtol=1e-12)
    near = table.value_at(0.5, np.array([0.4, 0.6]))
    np.testing.assert_array_equal(near, table.value_at(0.5, np.array([0.0, 1.0])))
    # Times and inventories broadcast together; numbers give a number.
    assert table.value_at(np.full((2, 1), 5 * dt), q).shape == (2, q.size)
    assert np.ndim(table.value_at(0.5, 3.0)) == 0
    for t, inventory in ((np.nan, 0.0), (0.5, np.nan)):
        with pytest.raises(ValueError, match="NaN time or inventory"):
            table.depths(t, inventory)


def test_numpy_scalars_are_numbers_and_booleans_are_not() -> None:
    # Settings taken from numpy arrays (a float32 grid, an int64 count) are valid numbers.
    depths = glft_depths(np.array([0.0]), np.float32(0.1), np.float32(2.0), 140.0, np.int64(2))
    np.testing.assert_allclose(depths, glft_depths(np.array([0.0]), 0.1, 2.0, 140.0, 2.0), 1e-6)
    assert avellaneda_stoikov_depths(1.0, 0.5, np.float32(0.1), 2.0, 1.5)[0] > 0
    assert cj_log_omega(np.float32(0.2), 0.0, 140.0, 1.5, 3, np.zeros(1)).shape == (1, 7)
    with pytest.raises(ValueError, match="gamma"):
        glft_depths(np.array([0.0]), True, 2.0, 140.0, 1.5)


# --- AS-env policies ----------------------------------------------------------------------------


def test_as_env_policies() -> None:
    obs = np.array([[-2.0, 0.0], [0.0, 0.5], [10.0, 0.25], [-10.0, 1.0], [12.0, 0.3]], np.float32)
    glft = GLFTPolicy(0.1, 2.0, 140.0, 1.5).act(obs)
    bid, ask = glft_depths(obs[:, 0], 0.1, 2.0, 140.0, 1.5)
    np.testing.assert_allclose(glft, np.stack([bid, ask], 1), rtol=1e-6)
    policy = CarteaJaimungalPolicy(0.2, 0.5, 140.0, 1.5, 1.0, 10, num_steps=200, no_quote_depth=77)
    out = policy.act(obs)
    table = policy.table
    # On the grid the table is read exactly: t = 0.5 is step 100, q = 0 is column 10.
    assert out[1, 0] == np.float32(table.bid_depth[100, 10])
    assert out[1, 1] == np.float32(table.ask_depth[100, 10])
    # At the limits one side is not quoted; beyond them q is held at the limit.
    assert out[2, 0] == 77 and out[3, 1] == 77 and out[4, 0] == 77
    assert out[2, 1] == np.float32(table.ask_depth[50, 20])
    # Between grid points: linear interpolation in time.
    mid = policy.act(np.array([[1.0, 0.5025]], np.float32))[0, 0]
    expect = 0.5 * (table.bid_depth[100, 11] + table.bid_depth[101, 11])
    assert mid == pytest.approx(expect, rel=1e-5)
    for p in (policy, GLFTPolicy(0.1, 2.0, 140.0, 1.5)):
        assert isinstance(p, Policy)


# --- PerpMM baselines: the action decodes to the intended depths --------------------------------

PARAMS = MarketParams(num_assets=2, max_inventory=8.0, max_quote_size=2.0)
EXPLICIT: dict[str, Any] = {"A": 1.4, "k": 130.0, "lot": 1.0}


def _obs(params: MarketParams, inventory: list[float], elapsed: float) -> np.ndarray:
    """Observations (one row per env) with each perp's inventory (base units) and the time."""
    obs = np.zeros((len(inventory), observation_dim(params.num_assets)), dtype=np.float32)
    for a in range(params.num_assets):
        obs[:, a * ASSET_FEATURES + OBS_NAMES.index("inventory")] = (
            np.asarray(inventory) * (1 + a) / params.max_inventory  # perp 1: twice perp 0
        )
        obs[:, a * ASSET_FEATURES + OBS_NAMES.index("time")] = elapsed
    return obs


BASELINES = [
    (PerpAvellanedaStoikov, {"gamma": 0.02, "sigma": 0.009, "k": 130.0, "lot": 1.0}),
    (PerpGLFT, {"gamma": 1.0, "sigma": 0.009, **EXPLICIT}),
    (PerpCarteaJaimungal, {"phi": 1e-4, "alpha": 0.002, **EXPLICIT}),
]


@pytest.mark.parametrize(("cls", "settings"), BASELINES)
@pytest.mark.parametrize("mid_ticks", [10_000.0, 10_000.5])
def test_perp_action_decodes_to_intended_depths(
    cls: type, settings: dict, mid_ticks: float
) -> None:
    policy = cls(PARAMS, **settings)
    inventory = [-4.0, -1.0, 0.0, 1.0, 2.0, 3.9]  # perp 1 holds twice: -8 and 7.8 are limits
    elapsed = 0.3
    obs = _obs(PARAMS, inventory, elapsed)
    action = policy.act(obs)
    assert action.shape == (len(inventory), 5 * PARAMS.num_assets) and action.dtype == np.float32
    P = pack_params(PARAMS)[0]
    tick = PARAMS.tick_size
    for a in range(PARAMS.num_assets):
        q_lots = np.asarray(inventory) * (1 + a) / policy.lot
        t = np.full(len(inventory), elapsed * PARAMS.episode_seconds)
        bid_d, ask_d = policy.quoted_depths(q_lots, t)
        for i in range(len(inventory)):
            block = action[i, 5 * a : 5 * a + 5].astype(np.float64)
            bid_px, bid_size, ask_px, ask_size = decode_quotes(block, mid_ticks, P)
            at_long_limit = round(q_lots[i]) >= policy.Q
            at_short_limit = round(q_lots[i]) <= -policy.Q
            assert bid_size == pytest.approx(0.0 if at_long_limit else policy.lot, abs=1e-6)
            assert ask_size == pytest.approx(0.0 if at_short_limit else policy.lot, abs=1e-6)
            if not at_long_limit:  # outward rounding: at least the depth, less than a tick more
                assert bid_d[i] / tick - 1e-4 <= mid_ticks - bid_px < bid_d[i] / tick + 1
            if not at_short_limit:
                assert ask_d[i] / tick - 1e-4 <= ask_px - mid_ticks < ask_d[i] / tick + 1
            assert block[4] == -1.0  # no hedge


ONE_SIDED = [
    # A thin book (small k): at the limit the AS depth of the side not quoted (26-39 ticks)
    # takes the half-spread beyond its 20-tick range; the quoted side's (15-26 ticks) is within
    # the action's reach (half-spread plus skew).
    (PerpAvellanedaStoikov, {"gamma": 0.05, "sigma": 0.009, "k": 4.0, "lot": 1.0}),
    # A heavy running penalty: at the limit CJ quotes one side 1.4 ticks inside the mid, and
    # its table has no depth (NaN) for the other.
    (PerpCarteaJaimungal, {"phi": 1e-3, "alpha": 0.0, **EXPLICIT}),
]


@pytest.mark.parametrize(("cls", "settings"), ONE_SIDED)
@pytest.mark.parametrize("elapsed", [0.0, 0.3, 0.99])
def test_the_one_quote_at_the_inventory_limit_sits_at_its_depth(
    cls: type, settings: dict, elapsed: float
) -> None:
    # At the limit only one side is quoted; the depth encoded for the other must not move it
    # through the clipping of the action's half-spread and skew.
    params = MarketParams(max_inventory=8.0, max_quote_size=2.0)
    policy = cls(params, **settings)
    inventory = [8.0, -8.0]  # the long and the short limit (Q = 8 lots)
    action = policy.act(_obs(params, inventory, elapsed))
    q_lots = np.asarray(inventory) / policy.lot
    bid_d, ask_d = policy.quoted_depths(q_lots, np.full(2, elapsed * params.episode_seconds))
    P = pack_params(params)[0]
    tick = params.tick_size
    mid_ticks = 10_000.0
    long_limit = decode_quotes(action[0].astype(np.float64), mid_ticks, P)
    short_limit = decode_quotes(action[1].astype(np.float64), mid_ticks, P)
    bid_px, bid_size, ask_px, ask_size = long_limit
    assert bid_size == 0.0 and ask_size == pytest.approx(policy.lot)
    assert ask_d[0] / tick - 1e-4 <= ask_px - mid_ticks < ask_d[0] / tick + 1
    bid_px, bid_size, ask_px, ask_size = short_limit
    assert ask_size == 0.0 and bid_size == pytest.approx(policy.lot)
    assert bid_d[1] / tick - 1e-4 <= mid_ticks - bid_px < bid_d[1] / tick + 1


def test_perp_depths_include_the_fee_and_skew_against_inventory() -> None:
    params = MarketParams()
    glft = PerpGLFT(params, gamma=1.0, sigma=0.009, **EXPLICIT)
    plain = PerpGLFT(params, gamma=1.0, sigma=0.009, fees=False, **EXPLICIT)
    fee = params.maker_fee * params.initial_price  # 0.015: 1.5 ticks
    q, t = np.array([-3.0, 0.0, 3.0]), np.zeros(3)
    bid, ask = glft.quoted_depths(q, t)
    net_bid, net_ask = glft_depths(q, 1.0, 0.009, 1.4 * math.exp(-130.0 * fee), 130.0)
    np.testing.assert_allclose(bid, net_bid + fee)
    np.testing.assert_allclose(ask, net_ask + fee)
    np.testing.assert_allclose(
        plain.quoted_depths(q, t)[0], glft_depths(q, 1.0, 0.009, 1.4, 130.0)[0]
    )
    # A long book quotes its bid deeper and its ask closer.
    assert bid[2] > bid[0] and ask[2] < ask[0]


def test_cartea_jaimungal_takes_the_env_criterion() -> None:
    params = MarketParams(
        reward="inventory_penalty", inventory_penalty=1e-4, terminal_inventory_penalty=0.01
    )
    policy = PerpCarteaJaimungal(params, A=1.4, k=130.0, lot=0.5)
    assert policy.phi == pytest.approx(0.5e-4) and policy.alpha == pytest.approx(0.005)
    assert policy.Q == 20 and policy.table.Q == 20
    assert PerpCarteaJaimungal(MarketParams(), A=1.4, k=130.0).phi == 0.0


def test_perp_bad_settings() -> None:
    with pytest.raises(ValueError, match="lot"):
        PerpGLFT(MarketParams(), lot=5.0, sigma=0.01, A=1.0, k=100.0)
    with pytest.raises(ValueError, match="gamma"):
        PerpGLFT(MarketParams(), gamma=-1.0, sigma=0.01, A=1.0, k=100.0)
    with pytest.raises(ValueError, match="alpha"):
        PerpCarteaJaimungal(MarketParams(), alpha=-1.0, A=1.0, k=100.0)


# --- registry and calibration -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["avellaneda_stoikov", "glft", "cartea_jaimungal"])
def test_registry_builds_each_model_baseline(name: str) -> None:
    params = MarketParams()
    settings = settings_of(name)
    assert {"k", "lot"} <= set(settings) and settings["lot"] is None
    policy = make_baseline(name, params)  # calibrated defaults (cached, ~0.5 s once)
    obs = np.zeros((3, observation_dim(1)), dtype=np.float32)
    action = policy.act(obs)
    assert action.shape == (3, 5) and np.isfinite(action).all()
    with pytest.raises(ValueError, match="no setting"):
        make_baseline(name, params, volatility=1.0)


def test_calibration() -> None:
    params = MarketParams()
    fit = cal.calibrate(params)
    assert cal.calibrate(params) is fit  # cached per parameter set
    # sigma: calm volatility 0.5 per sqrt(year) at price 100.
    assert fit.sigma == pytest.approx(0.5 * 100 / math.sqrt(365 * 24 * 3600), rel=1e-12)
    assert fit.lot == 1.0
    # The default market (stationary regimes): about 0.9 lot/s per side at the mid, falling by
    # e every ~1.5 ticks. Seeded, so reproducible; the wide bands only guard the method.
    assert 0.3 < fit.A < 5.0 and 20.0 < fit.k < 400.0, fit
    rates = np.asarray(fit.rates)
    assert (np.diff(rates[::2]) < 0).all()  # whole-tick steps: fewer fills further out
    # The log-linear fit is within a factor 2 of every measured rate up to 4 ticks (where the
    # baselines quote). Further out the regimes break the exponential: the stressed book's
    # 6-tick background spread fills a 6-tick quote more often than a 5-tick one.
    for depth, rate in zip(fit.depths, fit.rates, strict=True):
        if depth <= 4 * params.tick_size + 1e-12:
            assert 0.5 < fit.intensity(depth) / rate < 2.0, (depth, rate)
    with pytest.raises(ValueError, match="lot"):
        cal.calibrate(params, lot=100.0)


def test_recursion_takes_over_where_the_eigendecomposition_loses_precision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agents.baselines import closed_form

    calls: list[np.ndarray] = []
    original = closed_form._log_omega_by_recursion

    def spy(*args: Any) -> np.ndarray:
        calls.append(args[3])
        return original(*args)

    monkeypatch.setattr(closed_form, "_log_omega_by_recursion", spy)
    tau = np.linspace(0.0, 1.0, 201)
    cj_log_omega(0.2, 0.1, 140.0, 1.5, 10, tau)  # omega spans e^-15 at T: accurate enough
    assert not calls
    out = cj_log_omega(0.2, 3.0, 140.0, 1.5, 10, tau)  # spans e^-450: recomputed near T
    assert len(calls) == 1 and 0 in calls[0] and len(calls[0]) < tau.size
    assert np.isfinite(out).all()
