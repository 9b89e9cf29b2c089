"""Lockstep equality: orders on the paper venue and the same quotes encoded into a PerpMM env
give the same fills, positions and funding payments, and the two kernels end bit for bit equal.

The venue is driven through its order API with wire orders (the HTTP layer is tested in
test_paper_exchange_http.py); the env side encodes its quotes with
:func:`mmgym.core.orders.encode_quotes` as agents/deploy/limited_env.py does.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from mmgym.core.layout import pack_params
from mmgym.core.orders import QUOTE_DTYPE, decoder_params, encode_quotes
from mmgym.envs.perp_mm import PerpMMEnv
from mmgym.exchange import PaperVenue

USER = "0x" + "ab" * 20
STEPS = 300
OVERRIDES: dict[str, Any] = {
    "episode_seconds": 3600.0,
    "funding_interval_seconds": 60.0,  # several payments within STEPS decisions
}


def _wire(perp: int, is_buy: bool, ticks: int, size: float, tick: float) -> dict[str, Any]:
    decimals = max(0, -math.floor(math.log10(tick) + 1e-9))
    return {
        "a": perp,
        "b": is_buy,
        "p": f"{ticks * tick:.{decimals}f}",
        "s": f"{size:.2f}",
        "r": False,
        "t": {"limit": {"tif": "Alo" if is_buy else "Gtc"}},
    }


def _desired(
    t: int, k: int, best_bid: int, best_ask: int, q: float, own: dict[bool, int | None]
) -> dict[bool, tuple]:
    """A baseline-like rule: quotes around the mid, skewed against inventory, sizes that vary
    (so takers fill them partly), one side paused when the inventory is large. ``own`` holds
    the prices (ticks) of the side's resting orders: the bid, replaced first, stays under the
    resting ask (the venue refuses an order that would cross its own account's)."""
    mid = 0.5 * (best_bid + best_ask)
    half = 1.0 + (t + k) % 3
    skew = -2.0 * q
    bid = min(math.floor(mid - half + skew), best_ask - 1)
    if own[False] is not None:
        bid = min(bid, own[False] - 1)
    ask = max(math.ceil(mid + half + skew), best_bid + 1)
    size = 0.3 + 0.1 * ((t + k) % 4)
    return {True: (bid, size if q < 3.0 else 0.0), False: (ask, size if q > -3.0 else 0.0)}


def _hedge_step(
    t: int,
    k: int,
    venue: PaperVenue,
    sim: Any,
    hedges: dict[int, list[float]],
    seen: dict[str, int],
) -> float:
    """Every 40 decisions, a hedge order toward half the perp position on the venue; the env
    side's hedge fraction that aims at the working order's target (else holds the hedge)."""
    a = sim.assets[0, k]
    inventory, hedge = float(a["inventory"]), float(a["hedge_position"])
    if k in hedges:  # a target the perp position no longer covers: the venue cancels it
        target = hedges[k][0]
        covered = target * inventory < 0.0 and abs(target) <= abs(inventory) * (1 + 1e-12)
        if not (target == 0.0 or covered):
            del hedges[k]
            seen["hedge_canceled"] += 1
    if t % 40 == 20 and k not in hedges and abs(inventory) >= 0.2:
        size = round(abs(-0.5 * inventory - hedge), 2)
        if size >= 0.01:
            is_buy = -0.5 * inventory > hedge
            order = {
                "a": venue.params.num_assets + k,
                "b": is_buy,
                "p": "100",
                "s": f"{size:.2f}",
                "r": False,
                "t": {"limit": {"tif": "Gtc"}},
            }
            assert "resting" in venue.place(order), (t, k)
            target = hedge + (size if is_buy else -size)
            hedges[k] = [target, size, hedge]
    if inventory == 0.0:
        return 0.0
    target = hedges[k][0] if k in hedges else hedge
    return min(1.0, max(0.0, -target / inventory))


@pytest.mark.parametrize(("num_assets", "seed"), [(1, 0), (2, 5)])
def test_orders_on_the_venue_match_the_env_fill_for_fill(num_assets: int, seed: int) -> None:
    overrides = {**OVERRIDES, "num_assets": num_assets}
    env = PerpMMEnv("calm", **overrides)
    env.reset(seed=seed)
    sim = env.sim
    params = env.params
    coins = ["BTC", "ETH"][:num_assets]
    venue = PaperVenue(params, seed, coins, USER, epoch_ms=0)
    decoder = decoder_params(pack_params(params))
    quotes = np.zeros((1, num_assets), dtype=QUOTE_DTYPE)
    action = np.zeros((1, 5 * num_assets))
    cancelled = np.zeros(1, dtype=np.int64)
    tick = params.tick_size
    seen = {"partial": 0, "funding": 0, "two_prices": 0, "fills": 0, "tiny": 0, "hedged": 0}
    seen["hedge_canceled"] = 0
    hedges: dict[int, list[float]] = {}
    """The env side's working hedge orders: perp -> [target, remaining]."""

    mine: dict[tuple[int, bool], list[Any]] = {}
    """The env side's own book: (perp, is_buy) -> [ticks, remaining size]."""
    for t in range(STEPS):
        replace = t % 5 < 3
        placed: set[tuple[int, bool]] = set()
        quotes[0] = 0
        for k in range(num_assets):
            a = sim.assets[0, k]
            best_bid, best_ask = int(a["best_bid"]), int(a["best_ask"])
            assert venue.best_ticks(k) == (best_bid, best_ask), f"books differ at step {t}"
            own = {
                side: (mine[(k, side)][0] if (k, side) in mine else None) for side in (True, False)
            }
            want = _desired(t, k, best_bid, best_ask, float(a["inventory"]), own)
            for is_buy, (ticks, size) in want.items():
                side = "bid" if is_buy else "ask"
                resting = venue.book.resting_order(k, is_buy)
                held = mine.get((k, is_buy))
                # the venue's book is the env side's book, to the bit
                assert (resting is None) == (held is None), (t, k, side, resting, held)
                if resting is not None and held is not None:
                    assert (resting.ticks, resting.remaining) == tuple(held), (t, k, side)
                if not replace and held is not None:
                    if held[1] < params.min_quote_size:  # the kernel cannot quote it: the
                        seen["tiny"] += 1  # venue cancels it at the decision
                        held[1] = 0.0
                    else:
                        quotes[f"{side}_px"][0, k], quotes[f"{side}_size"][0, k] = held
                    continue
                if size <= 0.0:
                    if resting is not None:
                        assert venue.cancel(k, resting.oid) == "success"
                        del mine[(k, is_buy)]
                    continue
                order = _wire(k, is_buy, ticks, size, tick)
                if resting is not None and t % 2 == 0:
                    status = venue.modify(resting.oid, order)
                else:
                    if resting is not None:
                        assert venue.cancel(k, resting.oid) == "success"
                    status = venue.place(order)
                assert "resting" in status, (t, k, side, status)
                mine[(k, is_buy)] = [ticks, float(order["s"])]
                placed.add((k, is_buy))
                quotes[f"{side}_px"][0, k] = ticks
                quotes[f"{side}_size"][0, k] = float(order["s"])
        for k in range(num_assets):
            quotes["hedge_fraction"][0, k] = _hedge_step(t, k, venue, sim, hedges, seen)
        assert (
            encode_quotes(
                quotes, sim.assets["best_bid"], sim.assets["best_ask"], decoder, action, cancelled
            )
            == 0
        )
        sent = {key: key in placed for key in mine}
        """Whether each side's order is new this step (else it was held)."""

        hedge_before = [float(sim.assets[0, k]["hedge_position"]) for k in range(num_assets)]
        before_fills = len(venue.fills)
        before_funding = len(venue.fundings)
        _, _, terminated, truncated, info = env.step(action[0])
        assert venue.advance(1) == 1
        assert not (terminated or truncated)

        for (k, is_buy), new in sent.items():
            side = "bid" if is_buy else "ask"
            held = float(sim.assets[0, k][f"{side}_qty"])
            entry = mine[(k, is_buy)]
            if entry[1] == 0.0:
                del mine[(k, is_buy)]
                continue
            if new:  # the new order is what the kernel holds after its arrival
                entry[1] = held
            else:  # a held order: every fill of the interval is its own
                entry[1] -= float(np.atleast_1d(info[f"{side}_filled"])[k])
                if held > 0.0 and abs(entry[1] - held) <= 1e-9:
                    entry[1] = held
            if held == 0.0 or entry[1] <= 1e-9:
                del mine[(k, is_buy)]  # filled, or rejected when it reached the book

        for k in range(num_assets):  # the hedge venue's child of the interval
            moved = float(sim.assets[0, k]["hedge_position"]) - hedge_before[k]
            order = hedges.get(k)
            if order is not None and moved != 0.0 and (moved > 0.0) == (order[0] > order[2]):
                order[1] -= abs(moved)
                if order[1] <= 1e-9:
                    del hedges[k]
        hedge_fills = [f for f in venue.fills[before_fills:] if f["coin"].endswith("-HEDGE")]
        for k, coin in enumerate(coins):
            got = [f for f in hedge_fills if f["coin"] == f"{coin}-HEDGE"]
            size = sum(float(f["sz"]) for f in got)
            assert size == pytest.approx(np.atleast_1d(info["hedge_filled"])[k], rel=1e-12)
            assert all(f["crossed"] for f in got)
            seen["hedged"] += len(got)
        fills = [f for f in venue.fills[before_fills:] if not f["coin"].endswith("-HEDGE")]
        seen["fills"] += len(fills)
        by_side: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for f in fills:
            by_side[(f["coin"], f["side"])].append(f)
            order = venue.book.orders[f["oid"]]
            seen["partial"] += float(f["sz"]) < order.orig_sz - 1e-9
        fees = np.zeros(num_assets)
        for k, coin in enumerate(coins):
            for side, name in (("B", "bid"), ("A", "ask")):
                got = by_side[(coin, side)]
                size = sum(float(f["sz"]) for f in got)
                notional = sum(float(f["sz"]) * float(f["px"]) for f in got)
                fees[k] += sum(float(f["fee"]) for f in got)
                seen["two_prices"] += len({f["px"] for f in got}) > 1
                # sizes are the kernel's own sums (one or two parts); notional to float rounding
                expected = np.atleast_1d(info[f"{name}_filled"])[k]
                assert size == pytest.approx(expected, rel=1e-12, abs=1e-12), (t, coin, side)
                expected = np.atleast_1d(info[f"{name}_notional"])[k]
                assert notional == pytest.approx(expected, rel=1e-9, abs=1e-9), (t, coin, side)
        np.testing.assert_allclose(fees, -np.atleast_1d(info["pnl_fees"]), rtol=1e-9, atol=1e-12)

        state = venue.clearinghouse_state()
        held_positions = [p["position"] for p in state["assetPositions"]]
        positions = {p["coin"]: float(p["szi"]) for p in held_positions}
        for k, coin in enumerate(coins):
            assert positions.get(coin, 0.0) == float(sim.assets[0, k]["inventory"])
        payments = {f["coin"]: float(f["usdc"]) for f in venue.fundings[before_funding:]}
        paid = np.atleast_1d(info["funding_paid"])
        for k, coin in enumerate(coins):
            assert payments.get(coin, 0.0) == -paid[k], (t, coin)
        seen["funding"] += len(payments)

    # the same actions went in: both kernels hold the same state, bit for bit
    assert venue.sim.assets.tobytes() == sim.assets.tobytes()
    assert venue.sim.accounts.tobytes() == sim.accounts.tobytes()
    # the run exercised partial fills, fills of a replaced and a new order in one interval,
    # funding payments and a remainder below the market's quote size
    assert seen["fills"] > 20 and seen["partial"] > 5, seen
    assert seen["two_prices"] >= 1 and seen["funding"] >= 2 and seen["tiny"] >= 1, seen
    assert seen["hedged"] >= 5 and seen["hedge_canceled"] >= 1, seen
