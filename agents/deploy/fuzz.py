"""Fuzz the RiskLimiter through RiskLimitedVectorEnv with random and adversarial policies.

    python -m agents.deploy.fuzz --decisions 1e6
    python -m agents.deploy.fuzz --decisions 2e5 --scenarios calm volatile --limits default

Scenario ``s`` gets collateral ``COLLATERAL[s]`` (small accounts make the margin checks and
the kill switch act). Each env runs one policy (by index): uniform random actions; garbage
(NaN, infinities, 1e300 mixed in); creep (the largest bid, skewed toward the ask, every
decision); dust (the smallest orders at the touch, on both sides, many of them); race (the
largest order at the touch, alternating sides, so resting orders fill while their replacement
is in flight); cross (quotes through the book). After every step the decision's limited
quotes and the market are checked:

- ``position``: a worst-case position (position + resting + new orders) past max_position, or
  a position past it after the step;
- ``gross`` / ``net``: a worst-case notional past its hard limit that the new orders raised;
- ``reducing``: |position| grew, or flipped, over a step between two decisions not ACTIVE;
- ``halted``: an order resting after a step between two HALTED decisions with no flattening;
- ``quotes``: a limited size or hedge fraction not finite or out of range, or an encoded action
  outside [-1, 1].

Prints the breaches (there must be none: exit code 1 otherwise) and the denials and
transitions by reason, as markdown tables.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from agents.deploy.limited_env import RiskLimitedVectorEnv
from agents.deploy.risk import Reason, RiskLimits, TradingMode
from mmgym.envs.perp_mm import PerpMMVectorEnv

TIGHT = RiskLimits(
    max_order_notional=250.0,
    max_position=4.0,
    max_gross_notional=700.0,
    max_net_notional=450.0,
    min_order_size=0.05,
    max_orders_per_second=2.5,
    order_burst=4.0,
    max_cancels_per_second=2.0,
    cancel_burst=3.0,
    min_margin_coverage=40.0,
    reducing_window_loss_fraction=0.002,
    halt_window_loss_fraction=0.01,
    reducing_drawdown_fraction=0.004,
    halt_drawdown_fraction=0.02,
    volatility_cap_annual=1.0,
    tail_correlation=0.5,
    halt_rejects_per_window=60,
    reducing_hold_seconds=20.0,
)
"""Limits that bind often, so that every check and transition is exercised."""

LIMIT_SETS = {"tight": TIGHT, "default": RiskLimits()}
SCENARIOS = ("calm", "volatile", "flash_crash", "liquidation_cascade", "cross_margin_event")
COLLATERAL = (10_000.0, 10_000.0, 2_000.0, 1_000.0, 300.0)
"""Collateral (quote currency) per scenario, cycled: from a large account to small ones on which
the margin floor, the margin-coverage triggers and the halts act."""
BREACHES = ("position", "gross", "net", "reducing", "halted", "quotes")
TOL = 1e-9


Policy = Callable[[np.random.Generator, int, int, int], NDArray[np.float64]]


def _uniform(rng: np.random.Generator, n: int, k: int, t: int) -> NDArray[np.float64]:
    return rng.uniform(-1.0, 1.0, size=(n, 5 * k))


def _garbage(rng: np.random.Generator, n: int, k: int, t: int) -> NDArray[np.float64]:
    a = rng.uniform(-1.0, 1.0, size=(n, 5 * k))
    bad = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300])
    mask = rng.random(a.shape) < 0.2
    a[mask] = rng.choice(bad, size=int(mask.sum()))
    return a


def _creep(rng: np.random.Generator, n: int, k: int, t: int) -> NDArray[np.float64]:
    a = np.tile([0.2, -1.0, 1.0, -1.0, -1.0], (n, k))
    a[:, 0::5] = rng.uniform(0.0, 0.3, size=(n, k))  # toward the ask, up to the touch
    return a


def _dust(rng: np.random.Generator, n: int, k: int, t: int) -> NDArray[np.float64]:
    a = np.tile([0.0, -1.0, -0.985, -0.985, 0.0], (n, k))  # 0.015 per side at 2.0 max
    return a


def _race(rng: np.random.Generator, n: int, k: int, t: int) -> NDArray[np.float64]:
    side = 1.0 if t % 2 else -1.0
    return np.tile([0.0, -1.0, side, -side, -1.0], (n, k))


def _cross(rng: np.random.Generator, n: int, k: int, t: int) -> NDArray[np.float64]:
    a = rng.uniform(-1.0, 1.0, size=(n, 5 * k))
    a[:, 0::5] = rng.choice([-1.0, 1.0], size=(n, k))
    a[:, 1::5] = -1.0
    return a


POLICIES: dict[str, Policy] = {
    "uniform": _uniform,
    "garbage": _garbage,
    "creep": _creep,
    "dust": _dust,
    "race": _race,
    "cross": _cross,
}


@dataclass
class FuzzReport:
    """What a fuzz run found."""

    decisions: int = 0
    seconds: float = 0.0
    breaches: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BREACHES, 0))
    counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(len(Reason), np.int64))
    modes: NDArray[np.int64] = field(default_factory=lambda: np.zeros(3, np.int64))
    """Decisions spent in each TradingMode."""

    @property
    def total_breaches(self) -> int:
        """All breaches (must be 0)."""
        return sum(self.breaches.values())


def _check_step(
    env: RiskLimitedVectorEnv,
    limits: RiskLimits,
    checked: NDArray[np.bool_],
    report: FuzzReport,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Breaches of the decision just limited (envs in ``checked``); the decision's worst-case
    gross and net notionals, before and after its orders, for the caller's record."""
    sim = env.sim
    a = sim.inputs.assets
    q = sim.quotes
    bid, ask, hedge = q["bid_size"], q["ask_size"], q["hedge_fraction"]
    ok = np.isfinite(bid) & np.isfinite(ask) & (bid >= 0) & (ask >= 0)
    ok &= np.isfinite(hedge) & (hedge >= 0) & (hedge <= 1)
    ok_env = ok.all(axis=1) & (np.abs(sim.actions) <= 1.0).all(axis=1)
    report.breaches["quotes"] += int((~ok_env & checked).sum())
    position, mark = a["position"], a["mark"]
    long0, short0 = position + a["bid_resting"], position - a["ask_resting"]
    long1, short1 = long0 + bid, short0 - ask
    limit = limits.max_position * (1 + TOL)
    over = (long1 > limit) | (short1 < -limit)
    report.breaches["position"] += int((over.any(axis=1) & checked).sum())
    gross0 = (np.maximum(np.maximum(long0, -short0), 0) * mark).sum(axis=1)
    gross1 = (np.maximum(np.maximum(long1, -short1), 0) * mark).sum(axis=1)
    raised = (gross1 > limits.max_gross_notional * (1 + TOL)) & (gross1 > gross0 * (1 + TOL))
    report.breaches["gross"] += int((raised & checked).sum())
    for before, after in (((long0 * mark).sum(1), (long1 * mark).sum(1)),
                          (-(short0 * mark).sum(1), -(short1 * mark).sum(1))):  # fmt: skip
        raised = (after > limits.max_net_notional * (1 + TOL) + TOL) & (after > before + TOL)
        report.breaches["net"] += int((raised & checked).sum())
    return position.copy(), gross0, gross1


def fuzz(
    decisions: float,
    num_envs: int = 256,
    scenarios: tuple[str, ...] = SCENARIOS,
    limits: RiskLimits = TIGHT,
    seed: int = 0,
    episode_seconds: float = 600.0,
    progress: bool = True,
) -> FuzzReport:
    """Run ``decisions`` (summed over envs, split evenly over ``scenarios``) and check them."""
    report = FuzzReport()
    names = list(POLICIES)
    per_scenario = math.ceil(decisions / len(scenarios))
    steps = max(1, math.ceil(per_scenario / num_envs))
    bar = tqdm(total=steps * len(scenarios) * num_envs, disable=not progress, unit="decision")
    started = time.perf_counter()
    for s, scenario in enumerate(scenarios):
        inner = PerpMMVectorEnv(
            num_envs,
            scenario=scenario,
            copy=False,
            parallel=False,  # one core: steadier when other processes share the machine
            episode_seconds=episode_seconds,
            collateral=COLLATERAL[s % len(COLLATERAL)],
        )
        env = RiskLimitedVectorEnv(inner, limits)
        k = env.params.num_assets
        rng = np.random.default_rng([seed, s])
        env.reset(seed=seed * 1_000_003 + s * num_envs)
        groups = [np.arange(num_envs)[i :: len(names)] for i in range(len(names))]
        autoreset = np.zeros(num_envs, dtype=np.bool_)
        previous_mode = np.zeros(num_envs, dtype=np.int64)
        previous_flat = np.zeros(num_envs, dtype=np.bool_)
        actions = np.zeros((num_envs, 5 * k))
        for t in range(steps):
            for name, rows in zip(names, groups, strict=True):
                actions[rows] = POLICIES[name](rng, len(rows), k, t)
            _, _, terminated, truncated, info = env.step(actions)
            checked = ~autoreset
            start, _, _ = _check_step(env, limits, checked, report)
            mode = info["risk_mode"].copy()
            after = info["inventory"].reshape(num_envs, k)
            steady = checked & (previous_mode != TradingMode.ACTIVE) & (mode != TradingMode.ACTIVE)
            steady &= ~info["liquidated"]
            grew = (np.abs(after) > np.abs(start) + TOL) | (after * start < -TOL)
            report.breaches["reducing"] += int((grew.any(axis=1) & steady).sum())
            halted = steady & (previous_mode == TradingMode.HALTED) & (mode == TradingMode.HALTED)
            halted &= ~previous_flat & ~env.limiter.state.flattening
            resting = (info["bid_qty"].reshape(num_envs, k) > 0) | (
                info["ask_qty"].reshape(num_envs, k) > 0
            )
            report.breaches["halted"] += int((resting.any(axis=1) & halted).sum())
            limit = limits.max_position * (1 + TOL)
            report.breaches["position"] += int(((np.abs(after) > limit).any(axis=1)).sum())
            report.modes += np.bincount(mode[checked], minlength=3)
            report.decisions += int(checked.sum())
            previous_mode = mode
            previous_flat = env.limiter.state.flattening.copy()
            autoreset = terminated | truncated
            bar.update(num_envs)
        report.counts += env.limiter.state.denials.sum(axis=0)
    bar.close()
    report.seconds = time.perf_counter() - started
    return report


def tables(report: FuzzReport) -> str:
    """The report as markdown tables: breaches, then counts by reason."""
    lines = [
        f"{report.decisions:,} decisions in {report.seconds:.1f} s "
        f"({report.decisions / max(report.seconds, 1e-9):,.0f} decisions/s); decisions by "
        f"mode: ACTIVE {report.modes[0]:,}, REDUCING {report.modes[1]:,}, "
        f"HALTED {report.modes[2]:,}",
        "",
        "| breach | count |",
        "|---|---:|",
        *(f"| {name} | {count} |" for name, count in report.breaches.items()),
        f"| **total** | **{report.total_breaches}** |",
        "",
        "| reason | kind | count | per 1k decisions |",
        "|---|---|---:|---:|",
    ]
    for reason in Reason:
        count = int(report.counts[reason])
        if count:
            per_k = 1_000 * count / max(report.decisions, 1)
            lines.append(f"| {reason.name} | {reason.kind} | {count:,} | {per_k:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the fuzz from the command line; exit code 1 on any breach."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=float, default=1e6, help="decisions over all envs")
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    parser.add_argument("--limits", choices=sorted(LIMIT_SETS), default="tight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episode-seconds", type=float, default=600.0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if not args.decisions >= 1:
        parser.error(f"--decisions must be >= 1, got {args.decisions}")
    report = fuzz(
        args.decisions,
        args.num_envs,
        tuple(args.scenarios),
        LIMIT_SETS[args.limits],
        args.seed,
        args.episode_seconds,
        progress=not args.no_progress,
    )
    print(
        f"Fuzz: policies {', '.join(POLICIES)} over {', '.join(args.scenarios)}; "
        f"{args.limits} limits, {args.num_envs} envs, seed {args.seed}."
    )
    print(tables(report))
    return 1 if report.total_breaches else 0


if __name__ == "__main__":
    raise SystemExit(main())
