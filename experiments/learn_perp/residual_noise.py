"""What exploration noise costs a residual agent: ``adaptive`` plus Gaussian corrections.

A residual PPO agent explores by sampling its correction from a Gaussian around the network's
mean; at the start of training the mean is 0, so the env sees ``adaptive``'s action plus
``residual_scale x clip(N(0, std), -1, 1)`` (:func:`agents.residual.residual_action`). This
runner evaluates exactly that policy for several ``std`` (PPO's ``exp(log_std_init)``), on all
components or on one, against the same markets as ``learn_perp`` (seeds 1000-1003 x 64 envs,
600 s episodes), and writes a table of mean episode PnL, CVaR 5 % and fill rate
(``exploration_noise.md``, its numbers in ``exploration_noise.json``).

    python -m experiments.learn_perp.residual_noise [--out experiments/learn_perp] [--render]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agents.baselines.registry import make_baseline
from agents.evaluation import EvaluationConfig, PolicyFactory, evaluate, summarise
from agents.residual import ResidualPolicy
from experiments.pages import interval
from mmgym.core.orders import ACTION_NAMES
from mmgym.core.params import MarketParams
from mmgym.markdown import table

STDS = (0.0, math.exp(-4.0), math.exp(-3.0), math.exp(-2.5), math.exp(-2.0), math.exp(-1.0))
ONE_COMPONENT_STD = math.exp(-1.0)


class GaussianCorrection:
    """Corrections ``N(0, std)`` on the selected action components (others 0)."""

    def __init__(self, std: float, components: tuple[int, ...], seed: int = 0) -> None:
        self.std = std
        self.mask = np.zeros(len(ACTION_NAMES))
        self.mask[list(components)] = 1.0
        self.rng = np.random.default_rng(seed)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Fresh noise for every env and step."""
        noise = self.rng.normal(0.0, self.std, size=(obs.shape[0], len(ACTION_NAMES)))
        return (noise * self.mask).astype(np.float32)

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """No state."""


def factory(std: float, components: tuple[int, ...], scale: float) -> PolicyFactory:
    """``adaptive`` plus noise of ``std`` on ``components``, for the market's params."""

    def build(params: MarketParams) -> ResidualPolicy:
        base = make_baseline("adaptive", params)
        return ResidualPolicy(base, GaussianCorrection(std, components), scale)

    return build


EVAL_SEEDS = (1000, 1001, 1002, 1003)
EVAL_NUM_ENVS = 64
EPISODE_SECONDS = 600.0
COLUMNS = ("episodes", "pnl", "pnl_ci_low", "pnl_ci_high", "cvar_5", "fill_rate")
"""What the page keeps of the evaluation's summary, per policy and scenario."""


def markdown(record: dict[str, Any]) -> str:
    """The page: one row per noise setting, one column per scenario."""
    scenarios = record["scenarios"]
    seeds = record["seeds"]
    cell = {(r["policy"], r["scenario"]): r for r in record["rows"]}
    lines = [
        f"`adaptive` + {record['scale']:g} x clip(N(0, std), -1, 1) per action component; "
        f"{len(seeds) * record['num_envs']} episodes of {record['episode_seconds']:g} s per cell "
        f"(seeds {seeds[0]}-{seeds[-1]} x {record['num_envs']} envs). PnL (quote currency per "
        "episode) [95 % CI, Student's t] / CVaR 5 % / fill rate.",
        "",
    ]
    rows = []
    for label in record["policies"]:
        cells = [label]
        for scenario in scenarios:
            row = cell[label, scenario]
            ci = interval(row["pnl_ci_low"], row["pnl_ci_high"])
            cells.append(f"{row['pnl']:.3g} {ci} / {row['cvar_5']:.3g} / {row['fill_rate']:.2f}")
        rows.append(cells)
    align = "l" + "r" * len(scenarios)
    lines.append(table(["correction noise", *scenarios], rows, align))
    return "\n".join(lines)


def render(out: Path) -> str:
    """Rewrite ``exploration_noise.md`` under ``out`` from its JSON (nothing is evaluated)."""
    text = markdown(json.loads((out / "exploration_noise.json").read_text()))
    (out / "exploration_noise.md").write_text(text + "\n")
    return text


def main(argv: list[str] | None = None) -> str:
    """Evaluate, print and write ``exploration_noise.md`` and ``exploration_noise.json``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", default="experiments/learn_perp")
    parser.add_argument("--scale", type=float, default=0.5, help="residual_scale")
    parser.add_argument(
        "--scenarios", nargs="+", default=["calm", "volatile", "liquidation_cascade"]
    )
    parser.add_argument("--render", action="store_true", help="only rewrite the page from its JSON")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.render:
        text = render(out)
        print(text)
        return text
    every = tuple(range(len(ACTION_NAMES)))
    settings: dict[str, tuple[float, tuple[int, ...]]] = {
        f"std {std:.3g}": (std, every) for std in STDS
    }
    for k, name in enumerate(ACTION_NAMES):
        settings[f"std {ONE_COMPONENT_STD:.3g} on {name} only"] = (ONE_COMPONENT_STD, (k,))
    factories = {label: factory(std, comp, args.scale) for label, (std, comp) in settings.items()}
    config = EvaluationConfig(
        policies=list(factories),
        scenarios=list(args.scenarios),
        seeds=list(EVAL_SEEDS),
        num_envs=EVAL_NUM_ENVS,
        episode_seconds=EPISODE_SECONDS,
    )
    episodes, _ = evaluate(config, factories)
    table = summarise(episodes, config.cvar_alpha)
    record = {
        "scale": args.scale,
        "scenarios": list(args.scenarios),
        "seeds": list(EVAL_SEEDS),
        "num_envs": EVAL_NUM_ENVS,
        "episode_seconds": EPISODE_SECONDS,
        "policies": list(factories),
        "rows": [
            {"policy": str(r["policy"]), "scenario": str(r["scenario"])}
            | {c: float(r[c]) for c in COLUMNS}
            for _, r in table.iterrows()
        ],
    }
    text = markdown(record)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "exploration_noise.md").write_text(text + "\n")
    (out / "exploration_noise.json").write_text(json.dumps(record, indent=2) + "\n")
    return text


if __name__ == "__main__":
    main()
