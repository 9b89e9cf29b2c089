"""The declaration table of market parameters: rules, error messages and the packed record."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mmgym
from mmgym.core.avellaneda_stoikov import ASParams
from mmgym.core.codes import HedgeSchedule, Regime, Reward, names
from mmgym.core.layout import pack_params, param_dtype
from mmgym.core.param_spec import field_doc, field_packed, field_rules
from mmgym.core.params import HEDGE_SCHEDULES, REGIMES, REWARDS, MarketParams
from mmgym.scenarios import SCENARIOS, make_params

FIELDS = dataclasses.fields(MarketParams)
KERNEL_SOURCES = sorted((Path(mmgym.__file__).parent / "core").glob("*.py"))
AS_KERNEL = Path(mmgym.__file__).parent / "core" / "avellaneda_stoikov.py"


def test_every_field_declares_a_meaning_and_a_rule() -> None:
    assert [f.name for f in FIELDS if not field_doc(f)] == []
    assert [f.name for f in FIELDS if not field_rules(f)] == []


@pytest.mark.parametrize("name", [f.name for f in FIELDS])
def test_every_field_refuses_none_naming_itself(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be .*, got None$"):
        MarketParams().replace(**{name: None})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_assets": 0}, "num_assets must be an integer in [1, 16], got 0"),
        ({"crowd_accounts": 7}, "crowd_accounts must be an even integer in [2, 256], got 7"),
        ({"maker_fee": 0.02}, "maker_fee must be a rate in (-0.01, 0.01), got 0.02"),
        ({"taker_fee": -0.001}, "taker_fee must be a rate in [0, 0.01), got -0.001"),
        ({"new_level_fraction": 0.0}, "new_level_fraction must be in (0, 1], got 0.0"),
        ({"jump_down_prob": 1.5}, "jump_down_prob must be in [0, 1], got 1.5"),
        (
            {"volatility": (-0.1, 1.0, 2.0)},
            "volatility must be three finite numbers > 0 (calm, volatile, stressed), "
            "got (-0.1, 1.0, 2.0)",
        ),
        (
            {"informed_fraction": (0.1, 0.2, 1.1)},
            "informed_fraction must be three numbers in [0, 1] (calm, volatile, stressed), "
            "got (0.1, 0.2, 1.1)",
        ),
        ({"asset_correlation": (0.3, 1.0, 0.9)}, "asset_correlation must be three correlations"),
        ({"horizons": (10.0, 1.0, 300.0)}, "horizons must be increasing, got (10.0, 1.0, 300.0)"),
        ({"tick_size": True}, "tick_size must be a finite number > 0, got True"),
        ({"order_size_tail": 1.0}, "order_size_tail must be > 1 (a finite mean order size)"),
        ({"hedge_schedule": "vwap"}, "hedge_schedule must be one of ['twap', 'almgren_chriss']"),
        ({"random_funding_phase": 1}, "random_funding_phase must be True or False, got 1"),
        (
            {"margin_tiers": ((0.0, 20.0), (100.0, 40.0))},
            "margin_tiers must be (lower bound, max leverage) pairs from 0 up, bounds rising, "
            "leverage >= 1 falling",
        ),
        # rules across fields
        (
            {"hawkes_self": 0.6, "hawkes_cross": 0.4},
            "hawkes_self + hawkes_cross must be < 1 (the branching ratio",
        ),
        (
            {"decision_interval": 0.25},
            "decision_interval must be a positive whole multiple of tick_seconds (0.1), got 0.25",
        ),
        (
            {"latency_cap_seconds": 2.0},
            "latency_cap_seconds must be < decision_interval (1.0), got 2.0",
        ),
        ({"min_quote_size": 3.0}, "min_quote_size must be <= max_quote_size (2.0), got 3.0"),
    ],
)
def test_errors_name_the_field_the_requirement_and_the_value(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        MarketParams().replace(**overrides)


def test_code_names_are_the_parameter_spellings() -> None:
    assert REGIMES == ("calm", "volatile", "stressed") == names(Regime)
    assert REWARDS == ("pnl", "inventory_penalty")
    assert HEDGE_SCHEDULES == ("twap", "almgren_chriss")
    for codes in (Regime, Reward, HedgeSchedule):
        assert all(names(codes)[member] == member.name.lower() for member in codes)


def test_packed_names_are_unique_and_the_record_holds_every_one() -> None:
    packed = [p.name for f in FIELDS for p in field_packed(f)]
    assert len(packed) == len(set(packed))
    assert set(param_dtype(MarketParams()).names) == set(packed)


def _read_by(paths: list[Path]) -> set[str]:
    """Fields of the packed record ``P`` that the sources read."""
    return {name for path in paths for name in re.findall(r"\bP\.(\w+)", path.read_text())}


def test_the_kernel_reads_every_packed_entry_and_no_other() -> None:
    used = _read_by([path for path in KERNEL_SOURCES if path.name != AS_KERNEL.name])
    packed = set(param_dtype(MarketParams()).names)
    assert sorted(packed - used) == [], "packed but never read by the kernel"
    assert sorted(used - packed) == [], "read by the kernel but never packed"
    as_packed = set(ASParams().packed().dtype.names or ())
    assert _read_by([AS_KERNEL]) == as_packed


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_packed_shapes_follow_the_market(scenario: str) -> None:
    p = make_params(scenario)
    r = pack_params(p)[0]
    assert r["depth_profile"].shape == (3, p.book_levels)
    assert r["shock_cholesky"].shape == (3, p.num_assets, p.num_assets)
    assert r["maintenance_tiers"].shape == (len(p.margin_tiers), 3)
    assert r["ticks_per_decision"] == p.ticks_per_decision
    np.testing.assert_allclose(
        r["latency_jitter_ticks"], np.array(p.latency_jitter_seconds) / p.tick_seconds
    )
    assert r["hedge_schedule"] == HEDGE_SCHEDULES.index(p.hedge_schedule)
    assert r["reward_mode"] == REWARDS.index(p.reward)
