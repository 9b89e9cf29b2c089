"""What exploration noise costs a residual agent: ``adaptive`` plus Gaussian corrections.

A residual PPO agent explores by sampling its correction from a Gaussian around the network's
mean; at the start of training the mean is 0, so the env sees ``adaptive``'s action plus
``residual_scale x clip(N(0, std), -1, 1)`` (:func:`agents.residual.residual_action`). This
runner evaluates exactly that policy for several ``std`` (PPO's ``exp(log_std_init)``), on all
components or on one, against the same markets as ``learn_perp`` (seeds 1000-1003 x 64 envs,
600 s episodes), and writes a table of mean episode PnL, CVaR 5 % and fill rate.

    python -m experiments.learn_perp.residual_noise [--out experiments/learn_perp]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from agents.baselines.registry import make_baseline
from agents.evaluation import EvaluationConfig, PolicyFactory, evaluate, summarise
from agents.residual import ResidualPolicy
from mmgym.core.orders import ACTION_NAMES
from mmgym.core.params import MarketParams

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


def main(argv: list[str] | None = None) -> str:
    """Evaluate, print and write ``exploration_noise.md``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", default="experiments/learn_perp")
    parser.add_argument("--scale", type=float, default=0.5, help="residual_scale")
    parser.add_argument(
        "--scenarios", nargs="+", default=["calm", "volatile", "liquidation_cascade"]
    )
    args = parser.parse_args(argv)
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
        seeds=[1000, 1001, 1002, 1003],
        num_envs=64,
        episode_seconds=600.0,
    )
    episodes, _ = evaluate(config, factories)
    table = summarise(episodes, config.cvar_alpha)
    lines = [
        f"`adaptive` + {args.scale:g} x clip(N(0, std), -1, 1) per action component; "
        "256 episodes of 600 s per cell (seeds 1000-1003 x 64 envs). PnL [95 % CI] / CVaR 5 % "
        "/ fill rate.",
        "",
        "| correction noise | " + " | ".join(args.scenarios) + " |",
        "|---|" + "---:|" * len(args.scenarios),
    ]
    for label in factories:
        cells = []
        for scenario in args.scenarios:
            row = table[(table["policy"] == label) & (table["scenario"] == scenario)].iloc[0]
            cells.append(
                f"{row['pnl']:.3g} [{row['pnl_ci_low']:.3g}, {row['pnl_ci_high']:.3g}] / "
                f"{row['cvar_5']:.3g} / {row['fill_rate']:.2f}"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "exploration_noise.md").write_text(text)
    return text


if __name__ == "__main__":
    main()
