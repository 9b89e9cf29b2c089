"""The shared action decoder and its inverse: the simulator's mapping, exact round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmgym.core.layout import pack_params
from mmgym.core.orders import QUOTE_DTYPE, decode_actions, decoder_params, encode_quotes
from mmgym.envs.perp_mm import PerpMMSimulator
from mmgym.scenarios import make_params


def _roundtrip(actions, best_bid, best_ask, packed, warm_start=None):  # type: ignore[no-untyped-def]
    """Decode, encode (from ``warm_start``, or zeros), decode again."""
    n, k = best_bid.shape
    quotes = np.zeros((n, k), dtype=QUOTE_DTYPE)
    decode_actions(actions, best_bid, best_ask, packed, quotes)
    encoded = np.zeros((n, 5 * k)) if warm_start is None else warm_start.astype(np.float64)
    cancelled = np.zeros(n, dtype=np.int64)
    total = encode_quotes(quotes, best_bid, best_ask, packed, encoded, cancelled)
    assert (np.abs(encoded) <= 1.0).all()
    again = np.zeros_like(quotes)
    decode_actions(encoded, best_bid, best_ask, packed, again)
    return quotes, again, total, cancelled


def test_decoded_quotes_are_what_the_simulator_places() -> None:
    """decode_actions at the decision-time book gives the prices the kernel's orders rest at
    and the hedge target it plans (one decoder for sim and live)."""
    params = make_params("cross_margin_event", latency_jitter_seconds=(0.0, 0.0, 0.0))
    sim = PerpMMSimulator(16, params)
    all_envs = np.ones(16, dtype=np.bool_)
    sim.reset(all_envs, np.arange(16, dtype=np.uint64))
    rng = np.random.default_rng(0)
    no_reset = np.zeros(16, dtype=np.bool_)
    checked = 0
    for _ in range(20):
        actions = rng.uniform(-1, 1, size=(16, 15)).astype(np.float32)
        actions[:, 2::5] = actions[:, 3::5] = 0.5  # sizes that a fill cannot cut to zero
        quotes = np.zeros((16, 3), dtype=QUOTE_DTYPE)
        decode_actions(actions, sim.assets["best_bid"], sim.assets["best_ask"], sim._packed, quotes)
        inventory = sim.assets["inventory"].copy()
        assert sim.step(actions, no_reset) == -1
        np.testing.assert_array_equal(
            sim.assets["hedge_target"], -quotes["hedge_fraction"] * inventory
        )
        for side in ("bid", "ask"):
            resting = sim.assets[f"{side}_qty"] > 0
            placed = sim.assets[f"{side}_px"][resting]
            np.testing.assert_array_equal(placed, quotes[f"{side}_px"][resting])
            checked += int(resting.sum())
    assert checked > 100


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    mid=st.sampled_from([50.0, 1e4, 3e6, 1e7]),
    max_skew=st.sampled_from([0.0, 1.0, 3.0, 20.0]),
    max_half=st.sampled_from([0.5, 0.7, 7.0, 20.0]),
    max_size=st.sampled_from([0.3, 2.0, 1e3]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_decode_of_encode_is_exact_on_decoded_quotes(
    seed: int, mid: float, max_skew: float, max_half: float, max_size: float, dtype: type
) -> None:
    params = make_params(
        "calm",
        max_skew_ticks=max_skew,
        max_half_spread_ticks=max_half,
        max_quote_size=max_size,
        min_quote_size=0.0,
    )
    packed = pack_params(params)
    rng = np.random.default_rng(seed)
    n = 64
    best_bid = (mid + rng.integers(-5, 5, size=(n, 1))).astype(np.int64)
    best_ask = best_bid + rng.integers(1, 9, size=(n, 1))
    actions = rng.uniform(-1.3, 1.3, size=(n, 5)).astype(dtype)
    edges = np.array([-1.0, 1.0, 0.0, -0.5, 0.5], dtype=dtype)  # exact spreads and sizes
    mask = rng.random((n, 5)) < 0.3
    actions[mask] = rng.choice(edges, size=int(mask.sum()))
    huge = rng.choice([1e300, -1e300, 3.0], size=actions.shape)  # a warm start beyond [-1, 1]
    for warm_start in (None, actions, rng.normal(0, 3, size=actions.shape), huge):
        quotes, again, total, _ = _roundtrip(actions, best_bid, best_ask, packed, warm_start)
        assert total == 0
        for name in QUOTE_DTYPE.names or ():
            np.testing.assert_array_equal(again[name], quotes[name], err_msg=name)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(
        st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_subnormal=True),
        min_size=2,
        max_size=2,
    ),
    fraction=st.floats(min_value=-1.0, max_value=2.0),
)
def test_encoded_sizes_are_never_above_the_request(sizes: list[float], fraction: float) -> None:
    packed = pack_params(make_params("calm"))
    quotes = np.zeros((1, 1), dtype=QUOTE_DTYPE)
    quotes["bid_px"], quotes["ask_px"] = 9_998, 10_003
    quotes["bid_size"], quotes["ask_size"] = sizes
    quotes["hedge_fraction"] = fraction
    bid, ask = np.array([[9_999]]), np.array([[10_001]])
    encoded = np.zeros((1, 5))
    assert encode_quotes(quotes, bid, ask, packed, encoded, np.zeros(1, dtype=np.int64)) == 0
    again = np.zeros_like(quotes)
    decode_actions(encoded, bid, ask, packed, again)
    cap = make_params("calm").max_quote_size
    for side, wanted in zip(("bid_size", "ask_size"), sizes, strict=True):
        got = again[side][0, 0]
        assert got <= wanted
        assert got == min(wanted, cap) or wanted - got < 1e-12 * cap + 1e-300
    wanted = min(1.0, max(0.0, fraction))
    assert wanted - 1e-15 < again["hedge_fraction"][0, 0] <= wanted


def test_non_finite_actions_and_books_decode_to_no_order() -> None:
    packed = pack_params(make_params("calm"))
    actions = np.zeros((4, 5))
    actions[0, 0] = np.nan
    actions[1, 3] = np.inf
    actions[2, 4] = -np.inf
    bid = np.array([[9_999.0], [9_999.0], [9_999.0], [np.nan]])
    ask = np.array([[10_001.0]] * 4)
    quotes = np.zeros((4, 1), dtype=QUOTE_DTYPE)
    assert decode_actions(actions, bid, ask, packed, quotes) == 4
    assert np.isnan(quotes["bid_size"]).all() and np.isnan(quotes["hedge_fraction"]).all()
    encoded = np.zeros((4, 5))
    cancelled = np.zeros(4, dtype=np.int64)
    encode_quotes(quotes, bid, ask, packed, encoded, cancelled)
    again = np.zeros_like(quotes)
    decode_actions(encoded, np.full((4, 1), 9_999), np.full((4, 1), 10_001), packed, again)
    np.testing.assert_array_equal(again["bid_size"], 0.0)
    np.testing.assert_array_equal(again["ask_size"], 0.0)
    np.testing.assert_array_equal(again["hedge_fraction"], 1.0)  # the full offset


@pytest.mark.parametrize(
    ("bid_px", "ask_px", "bid_size", "ask_size", "cancelled"),
    [
        (10_000, 10_000, 1.0, 1.0, 2),  # ask not above the bid: the pair is not expressible
        (9_000, 10_001, 1.0, 1.0, 2),  # far beyond the skew and half-spread range
        (9_000, 10_001, 0.0, 1.0, 0),  # ... but the bid has no size: the ask alone is kept
        (9_000, 10_001, 1.0, 0.0, 1),  # a lone bid beyond the range is cancelled
    ],
)
def test_unrepresentable_sides_are_cancelled_never_repriced(
    bid_px: int, ask_px: int, bid_size: float, ask_size: float, cancelled: int
) -> None:
    packed = pack_params(make_params("calm"))
    quotes = np.zeros((1, 1), dtype=QUOTE_DTYPE)
    quotes[0, 0] = (bid_px, bid_size, ask_px, ask_size, 0.5)
    bid, ask = np.array([[9_999]]), np.array([[10_001]])
    encoded = np.zeros((1, 5))
    counts = np.zeros(1, dtype=np.int64)
    assert encode_quotes(quotes, bid, ask, packed, encoded, counts) == cancelled
    assert counts[0] == cancelled
    again = np.zeros_like(quotes)
    decode_actions(encoded, bid, ask, packed, again)
    for side, px, size in (("bid", bid_px, bid_size), ("ask", ask_px, ask_size)):
        got = again[f"{side}_size"][0, 0]
        assert got in (0.0, size)
        if got > 0:
            assert again[f"{side}_px"][0, 0] == px
    assert again["bid_size"][0, 0] + again["ask_size"][0, 0] == bid_size + ask_size - cancelled


@pytest.mark.parametrize("scenario", ["calm", "cross_margin_event"])
def test_the_decoders_small_record_decodes_and_encodes_as_the_whole_one(scenario: str) -> None:
    params = make_params(scenario)
    packed = pack_params(params)
    small = decoder_params(packed)
    assert small.dtype.itemsize < packed.dtype.itemsize // 10
    rng = np.random.default_rng(5)
    n, k = 512, params.num_assets
    actions = rng.uniform(-1.3, 1.3, size=(n, 5 * k))
    actions[rng.random(actions.shape) < 0.02] = np.nan
    best_bid = rng.integers(9_000, 11_000, size=(n, k)).astype(np.float64)
    best_ask = best_bid + rng.integers(1, 30, size=(n, k))
    quotes = {}
    for name, record in (("whole", packed), ("small", small)):
        quotes[name] = np.zeros((n, k), dtype=QUOTE_DTYPE)
        assert decode_actions(actions, best_bid, best_ask, record, quotes[name]) > 0
    for field in QUOTE_DTYPE.names or ():
        assert np.array_equal(quotes["whole"][field], quotes["small"][field], equal_nan=True)
    cut = quotes["whole"].copy()
    cut["bid_size"] *= 0.7  # sizes the encoder has to search for
    encoded = {}
    for name, record in (("whole", packed), ("small", small)):
        encoded[name] = np.zeros((n, 5 * k))
        cancelled = np.zeros(n, dtype=np.int64)
        encode_quotes(cut, best_bid, best_ask, record, encoded[name], cancelled)
    assert np.array_equal(encoded["whole"], encoded["small"])
