"""Run the policy and every baseline through the RiskLimiter over the stress suite, on common
random numbers: in each scenario, seed ``s`` resets env ``i`` with ``s x num_envs + i`` for
every policy, so policies meet the same markets and their differences are paired."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from tqdm import tqdm

from agents.baselines.registry import make_baseline
from agents.deploy.risk import RiskLimits, TradingMode
from agents.deploy.risk.reasons import NUM_REASONS, Reason
from agents.deploy.vetting.config import VetConfig, order_reasons
from agents.deploy.vetting.policies import VettedPolicy, scenario_market
from agents.evaluation.harness import run_batch
from agents.market import Market
from agents.policy import Policy

LIMIT_TOLERANCE = 1e-9
"""|inventory| within this of the limit counts as at the limit (base units)."""


def inventory_limit(limits: RiskLimits) -> float:
    """The inventory limit of ``time_at_inventory_limit``: the RiskLimiter's soft position
    limit (base units), past which it admits only reducing orders."""
    return limits.soft_limit_fraction * limits.max_position


class RiskRecorder:
    """The risk measures of one batch of episodes (each env's first episode), step by step:
    largest |inventory| of any perp, decisions at the inventory limit, decisions REDUCING,
    whether the kill switch HALTed the account, limiter counts per reason, and the fair-price
    path (to check common random numbers)."""

    def __init__(self, num_envs: int, steps: int, num_assets: int, limit: float) -> None:
        self.limit = limit
        self.length = np.zeros(num_envs, dtype=np.int64)
        self.max_inventory = np.zeros(num_envs)
        self.at_limit = np.zeros(num_envs, dtype=np.int64)
        self.reducing = np.zeros(num_envs, dtype=np.int64)
        self.halted = np.zeros(num_envs, dtype=np.bool_)
        self.counts = np.zeros((num_envs, NUM_REASONS), dtype=np.int64)
        self.fair = np.full((steps, num_envs, num_assets), np.nan)

    def __call__(self, t: int, info: dict[str, Any], active: NDArray[np.bool_]) -> None:
        n = self.length.shape[0]
        q = np.abs(np.asarray(info["inventory"])).reshape(n, -1).max(axis=1)
        mode = np.asarray(info["risk_mode"])
        self.length += active
        np.maximum(self.max_inventory, np.where(active, q, 0.0), out=self.max_inventory)
        self.at_limit += active & (q >= self.limit - LIMIT_TOLERANCE)
        self.reducing += active & (mode == TradingMode.REDUCING)
        self.halted |= active & (mode == TradingMode.HALTED)
        self.counts += np.asarray(info["risk_denials"]) * active[:, None]
        fair = np.asarray(info["fair_price"]).reshape(n, -1)
        self.fair[t] = np.where(active[:, None], fair, np.nan)

    def rows(self, ignored: tuple[Reason, ...]) -> list[dict[str, float]]:
        """Per env: its risk measures (``denials`` counts order reasons not ``ignored``;
        ``denials_<REASON>`` every reason that counted anything in the batch)."""
        counted = [r for r in order_reasons() if r not in ignored]
        denials = self.counts[:, counted].sum(axis=1)
        used = [r for r in Reason if r is not Reason.NONE and self.counts[:, r].any()]
        out = []
        for i in range(self.length.shape[0]):
            steps = max(int(self.length[i]), 1)
            row = {
                "max_inventory_abs": float(self.max_inventory[i]),
                "time_at_inventory_limit": float(self.at_limit[i]) / steps,
                "time_reducing": float(self.reducing[i]) / steps,
                "kill_switch_halted": float(self.halted[i]),
                "denials": float(denials[i]),
            }
            row.update({f"denials_{r.name}": float(self.counts[i, r]) for r in used})
            out.append(row)
        return out


@dataclass
class SuiteResult:
    """Every episode of the suite, the equity bands and the common-random-numbers check."""

    episodes: pd.DataFrame
    """One row per (scenario, policy, seed, env): the evaluation's episode metrics and the
    :class:`RiskRecorder`'s."""
    bands: pd.DataFrame
    """Quantiles over envs of cumulative PnL per (scenario, policy, seed) and step."""
    markets: dict[str, Market]
    policy: str
    """The vetted policy's display name."""
    baselines: list[str]
    crn: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    """Per scenario and baseline: ``envs`` compared, ``steps`` compared (both in their first
    episode) and ``mismatched_envs`` whose fair-price path differs from the policy's."""
    seconds: float = 0.0


def run_suite(
    vetted: VettedPolicy, config: VetConfig, limits: RiskLimits, progress: bool = True
) -> SuiteResult:
    """Run the vetted policy, then every baseline, in every scenario and seed of ``config``,
    each behind a RiskLimiter with ``limits``."""
    started = time.perf_counter()
    baselines = list(config.baselines)
    others = [b for b in baselines if b != vetted.name]
    ignored = tuple(Reason[name] for name in config.thresholds.denials_ignored)
    rows: list[dict[str, Any]] = []
    bands: list[pd.DataFrame] = []
    markets: dict[str, Market] = {}
    crn: dict[str, dict[str, dict[str, int]]] = {}
    total = len(config.scenarios) * (1 + len(others))
    with tqdm(total=total, desc="vet", unit="policy", disable=not progress) as bar:
        for scenario in config.scenarios:
            market = scenario_market(
                scenario, config.episode_seconds, config.env_overrides, vetted.interface
            )
            markets[scenario] = market
            reference: dict[int, NDArray[np.float64]] = {}
            crn[scenario] = {}
            for name in [vetted.name, *others]:
                bar.set_postfix_str(f"{scenario}/{name}")
                if name == vetted.name:
                    policy = vetted.factory(market.params)
                else:
                    policy = make_baseline(name, market.params)
                for seed in config.seeds:
                    batch, band, recorder = _run_seed(policy, market, config, seed, limits)
                    risk = recorder.rows(ignored)
                    for row, extra in zip(batch, risk, strict=True):
                        rows.append(
                            {"scenario": scenario, "policy": name, "seed": seed, **row, **extra}
                        )
                    band.insert(0, "seed", seed)
                    band.insert(0, "policy", name)
                    band.insert(0, "scenario", scenario)
                    bands.append(band)
                    if name == vetted.name:
                        reference[seed] = recorder.fair
                    else:
                        _compare_paths(crn[scenario], name, reference[seed], recorder.fair)
                bar.update()
    episodes = pd.DataFrame(rows)
    episodes = episodes.fillna({c: 0.0 for c in episodes.columns if c.startswith("denials_")})
    return SuiteResult(
        episodes=episodes,
        bands=pd.concat(bands, ignore_index=True),
        markets=markets,
        policy=vetted.name,
        baselines=baselines,
        crn=crn,
        seconds=time.perf_counter() - started,
    )


def _run_seed(
    policy: Policy, market: Market, config: VetConfig, seed: int, limits: RiskLimits
) -> tuple[list[dict[str, float]], pd.DataFrame, RiskRecorder]:
    params = market.params
    recorder = RiskRecorder(
        config.num_envs, params.decisions_per_episode, params.num_assets, inventory_limit(limits)
    )
    batch, band = run_batch(
        policy,
        params,
        config.num_envs,
        seed,
        [],
        scenario=market.scenario,
        overrides=market.overrides,
        limits=limits,
        observer=recorder,
    )
    return batch, band, recorder


def _compare_paths(
    out: dict[str, dict[str, int]],
    name: str,
    reference: NDArray[np.float64],
    path: NDArray[np.float64],
) -> None:
    """Count the envs whose fair-price path differs from the policy's where both are in their
    first episode."""
    both = ~np.isnan(reference) & ~np.isnan(path)
    differs = (both & (reference != path)).any(axis=(0, 2))
    entry = out.setdefault(name, {"envs": 0, "steps": 0, "mismatched_envs": 0})
    entry["envs"] += int(reference.shape[1])
    entry["steps"] += int(both.all(axis=2).sum())
    entry["mismatched_envs"] += int(differs.sum())
