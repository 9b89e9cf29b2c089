"""The simulation experiment of Avellaneda & Stoikov (2008), section 4.

1000 paths of 200 steps (s0=100, T=1, sigma=2, dt=0.005, A=140, k=1.5, q0=0): the "inventory"
strategy (optimal spread around the reservation price) against the "symmetric" one (the same
spread around the mid), for several risk aversions gamma.

    python -m experiments.as2008.run [--gammas 0.1 0.01 1.0] [--seed 2008] [--out DIR]

prints the table, published values in brackets, and writes it to ``DIR/results.md``
(``python scripts/reproduce.py experiment=as2008`` runs the same into a Hydra run directory).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np

import mmgym
from agents.baselines.as_env_policies import AvellanedaStoikovPolicy, SymmetricPolicy
from mmgym.markdown import table

SIGMA, K, T = 2.0, 1.5, 1.0
NUM_PATHS, NUM_STEPS = 1000, 200
STRATEGIES = ("inventory", "symmetric")


class Row(NamedTuple):
    """One row of the paper's table."""

    spread: float
    profit: float
    std_profit: float
    final_q: float
    std_final_q: float


PUBLISHED: dict[tuple[float, str], Row] = {
    (0.1, "inventory"): Row(1.49, 65.0, 6.6, 0.08, 2.9),
    (0.1, "symmetric"): Row(1.49, 68.4, 12.7, 0.26, 8.4),
    (0.01, "inventory"): Row(1.35, 68.6, 8.7, 0.12, 5.1),
    (0.01, "symmetric"): Row(1.35, 68.8, 12.8, 0.09, 8.7),
}
"""(gamma, strategy) -> published row (Quantitative Finance 8(3), 2008, section 4)."""


class Sample(NamedTuple):
    """Per-path results of one simulated configuration."""

    spread: float
    wealth: np.ndarray
    final_q: np.ndarray
    max_abs_depth: float

    def row(self) -> Row:
        """Summary statistics in the layout of the paper's table."""
        return Row(
            self.spread,
            float(self.wealth.mean()),
            float(self.wealth.std(ddof=1)),
            float(self.final_q.mean()),
            float(self.final_q.std(ddof=1)),
        )


def simulate(gamma: float, strategy: str, num_paths: int = NUM_PATHS, seed: int = 2008) -> Sample:
    """Run the experiment through the native vector env with a baseline policy."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    env = gym.make_vec(
        mmgym.AVELLANEDA_STOIKOV_ID, num_envs=num_paths, vectorization_mode="vector_entry_point"
    )
    cls = AvellanedaStoikovPolicy if strategy == "inventory" else SymmetricPolicy
    policy = cls(gamma=gamma, sigma=SIGMA, k=K, T=T)
    obs, _ = env.reset(seed=seed)
    spreads, max_abs_depth = [], 0.0
    info: dict[str, np.ndarray] = {}
    for _ in range(NUM_STEPS):
        actions = policy.act(obs)
        spreads.append(float(np.mean(actions[:, 0].astype(np.float64) + actions[:, 1])))
        max_abs_depth = max(max_abs_depth, float(np.abs(actions).max()))
        obs, _, terminated, truncated, info = env.step(actions)
    if not (truncated.all() and not terminated.any()):
        raise RuntimeError("the AS episode did not end after T / dt steps")
    return Sample(float(np.mean(spreads)), info["wealth"], info["inventory"], max_abs_depth)


def markdown_table(gammas: tuple[float, ...] = (0.1, 0.01), seed: int = 2008) -> str:
    """Simulated rows beside the published ones (where the paper has them)."""
    header = [
        "gamma", "strategy", "avg spread", "profit", "std(profit)", "final q", "std(final q)"
    ]  # fmt: skip
    rows = []
    for gamma in gammas:
        for strategy in STRATEGIES:
            sim = simulate(gamma, strategy, seed=seed).row()
            pub = PUBLISHED.get((gamma, strategy))
            cells = [
                f"{s:.2f}" + (f" ({p})" if pub is not None else "")
                for s, p in zip(sim, pub if pub is not None else sim, strict=True)
            ]
            rows.append([gamma, strategy, *cells])
    return table(header, rows, align="llrrrrr")


def main(argv: list[str] | None = None) -> str:
    """Simulate, print the table and write it to ``--out`` (if given)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--gammas", nargs="+", type=float, default=[0.1, 0.01])
    parser.add_argument("--seed", type=int, default=2008)
    parser.add_argument("--out", default=None, help="directory for results.md")
    args = parser.parse_args(argv)
    table = markdown_table(tuple(args.gammas), seed=args.seed)
    print(table)
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text(table + "\n")
    return table


if __name__ == "__main__":
    main()
