"""The main job: simulate the default scenario with simple quoting policies and summarise.

Runs a batch of ``mmgym/PerpMM-v0`` markets for one episode per policy and scenario, prints the
PnL decomposition, fills and inventory (mean and standard error across envs) and writes the
table as markdown and CSV under ``runs/demo/<time>/``.

    python scripts/demo.py                  # four scenarios, 256 envs, one hour each
    python scripts/demo.py --scenarios calm --num-envs 1024 --episode-seconds 600
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

import mmgym
from agents.baselines.quoting import FixedSpreadPolicy, LinearSkewPolicy
from agents.policy import Policy
from mmgym.core.params import MarketParams
from mmgym.scenarios import DEFAULT_SCENARIO, SCENARIOS, make_params

METRICS: dict[str, str] = {
    "pnl": "PnL",
    "pnl_spread": "spread capture",
    "pnl_inventory": "inventory MtM",
    "pnl_fees": "fees",
    "pnl_funding": "funding",
    "pnl_liquidation": "liquidation",
    "volume": "filled volume",
    "toxic_share": "toxic share",
    "inventory_abs_mean": "mean |q|",
    "inventory_abs_final": "|q_T|",
    "rejected_post_only": "post-only rejects",
    "liquidated": "liquidated share",
}
COMPONENTS = ("pnl_spread", "pnl_inventory", "pnl_fees", "pnl_funding", "pnl_liquidation")


@dataclass
class EpisodeTotals:
    """Per-env sums over one episode."""

    num_envs: int
    sums: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in (*COMPONENTS, "pnl", "volume", "toxic", "q_abs", "rejected_post_only"):
            self.sums[key] = np.zeros(self.num_envs)
        self.sums["liquidated"] = np.zeros(self.num_envs)

    def add(self, info: dict[str, NDArray[np.float64]], active: NDArray[np.bool_]) -> None:
        """Accumulate one step's info for the envs still in their first episode."""

        def per_env(x: NDArray[np.float64]) -> NDArray[np.float64]:
            return (x.sum(axis=1) if x.ndim == 2 else x) * active  # sum over perps

        for key in (*COMPONENTS, "rejected_post_only"):
            self.sums[key] += per_env(info[key])
        self.sums["pnl"] += info["pnl"] * active
        self.sums["volume"] += per_env(info["bid_filled"] + info["ask_filled"])
        self.sums["toxic"] += per_env(info["toxic_filled"])
        self.sums["q_abs"] += per_env(np.abs(info["inventory"]))
        self.sums["liquidated"] += info["liquidated"] * active


def policies_for(params: MarketParams) -> dict[str, Policy]:
    """The demo's policies: quote at the background touch, with and without inventory skew."""
    touch = params.background_half_spread[0]
    return {
        "fixed_spread": FixedSpreadPolicy(params, half_spread_ticks=touch, size=1.0),
        "linear_skew": LinearSkewPolicy(
            params, half_spread_ticks=touch, size=1.0, skew_ticks_at_limit=3.0 * touch
        ),
    }


def run_episode(
    scenario: str, policy_name: str, num_envs: int, seed: int, episode_seconds: float
) -> dict[str, NDArray[np.float64]]:
    """One episode on ``num_envs`` markets; per-env metrics."""
    params = make_params(scenario, episode_seconds=episode_seconds)
    policy = policies_for(params)[policy_name]
    env = gym.make_vec(
        mmgym.PERP_MM_ID,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        scenario=scenario,
        episode_seconds=episode_seconds,
    )
    obs, info = env.reset(seed=seed)
    totals = EpisodeTotals(num_envs)
    steps = params.decisions_per_episode
    active = np.ones(num_envs, dtype=np.bool_)  # envs still in their first episode
    for _ in tqdm(range(steps), desc=f"{scenario:>20s} {policy_name:>12s}", unit="step"):
        obs, _, terminated, truncated, info = env.step(policy.act(obs))
        totals.add(info, active)
        active &= ~(terminated | truncated)
    s = totals.sums
    volume = s["volume"]
    return {
        "pnl": s["pnl"],
        **{key: s[key] for key in COMPONENTS},
        "volume": volume,
        "toxic_share": np.divide(s["toxic"], volume, out=np.zeros_like(volume), where=volume > 0),
        "inventory_abs_mean": s["q_abs"] / steps,
        "inventory_abs_final": np.abs(info["inventory"]).reshape(num_envs, -1).sum(axis=1),
        "rejected_post_only": s["rejected_post_only"],
        "liquidated": s["liquidated"],
    }


def main() -> None:
    """Run the demo and write its summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=[DEFAULT_SCENARIO, "volatile", "liquidation_cascade", "funding_squeeze"],
        choices=sorted(SCENARIOS),
    )
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--episode-seconds", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = parser.parse_args()

    rows = []
    started = time.perf_counter()
    for scenario in args.scenarios:
        params = make_params(scenario, episode_seconds=args.episode_seconds)
        for policy_name in policies_for(params):
            metrics = run_episode(
                scenario, policy_name, args.num_envs, args.seed, args.episode_seconds
            )
            row: dict[str, object] = {"scenario": scenario, "policy": policy_name}
            for key, values in metrics.items():
                row[key] = float(values.mean())
                row[f"{key}_se"] = float(values.std(ddof=1) / np.sqrt(values.size))
            rows.append(row)
    elapsed = time.perf_counter() - started

    out_dir = args.out / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = _markdown(rows, args)
    (out_dir / "summary.md").write_text(table + "\n")
    print()
    print(table)
    print()
    print(f"Simulated in {elapsed:.1f} s. Results: {out_dir}/summary.md and summary.csv")


def _markdown(rows: list[dict[str, object]], args: argparse.Namespace) -> str:
    header = "| scenario | policy | " + " | ".join(METRICS.values()) + " |"
    lines = [
        f"PerpMM-v0, {args.num_envs} envs x {args.episode_seconds:.0f} s, seed {args.seed}: "
        "mean +/- standard error across envs (PnL in quote currency, sizes in base units).",
        "",
        header,
        "|---|---|" + "---:|" * len(METRICS),
    ]
    for row in rows:
        cells = [f"{row[k]:.3g} +/- {row[k + '_se']:.2g}" for k in METRICS]
        lines.append(f"| {row['scenario']} | {row['policy']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
