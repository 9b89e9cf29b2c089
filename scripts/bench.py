"""Throughput of mmgym's envs through the public ``gymnasium.make_vec`` API.

Steps each env with a fixed action at several batch sizes and prints a markdown table of the
median over repeats (env-steps per second; for PerpMM also market ticks per second).

    python scripts/bench.py                      # print the table
    python scripts/bench.py --write docs/benchmarks.md
    python scripts/bench.py --envs PerpMM --sizes 1000 --repeats 9
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import mmgym
from mmgym.provenance import commit, machine
from mmgym.scenarios import make_params

QUOTE = [0.0, -0.8, 0.0, 0.0, -1.0]  # one perp: quote at the touch, no hedge
ENVS: dict[str, tuple[str, np.ndarray, dict[str, object]]] = {
    "AvellanedaStoikov": (mmgym.AVELLANEDA_STOIKOV_ID, np.array([0.7, 0.7]), {}),
    "PerpMM": (mmgym.PERP_MM_ID, np.array(QUOTE), {"scenario": "calm"}),
    "PerpMM-K3": (
        mmgym.PERP_MM_ID,
        np.array(QUOTE * 3),
        {"scenario": "cross_margin_event"},
    ),
}


@dataclass
class Result:
    """One row of the benchmark table."""

    env: str
    num_envs: int
    steps_per_second: float
    spread: float
    ticks_per_second: float | None


def _measure(env_name: str, num_envs: int, repeats: int, seconds: float) -> Result:
    env_id, action, kwargs = ENVS[env_name]
    env = gym.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", copy=False, **kwargs
    )
    actions = np.tile(action.astype(np.float32), (num_envs, 1))
    env.reset(seed=0)
    for _ in range(3):
        env.step(actions)
    # Size one repeat to about `seconds` of work.
    t0 = time.perf_counter()
    calls = 0
    while time.perf_counter() - t0 < 0.05:
        env.step(actions)
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    steps = max(1, int(seconds / per_call))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        rates.append(steps * num_envs / (time.perf_counter() - t0))
    median = statistics.median(rates)
    spread = (max(rates) - min(rates)) / median
    ticks = None
    if env_name.startswith("PerpMM"):
        ticks = median * make_params().ticks_per_decision
    env.close()
    return Result(env_name, num_envs, median, spread, ticks)


def _sb3_table(steps: int, num_envs: int = 256) -> str:
    """SB3 PPO env-steps per second including updates: the model and torch threads of a
    ``scripts/train.py agent=ppo`` run (conf/agent/ppo.yaml, conf/train/default.yaml)."""
    import torch
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.config import PPOConfig, TrainConfig, TrainJob
    from agents.sb3.train import make_model
    from agents.sb3.vec_env import NativeVecEnv
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    job = TrainJob(agent=PPOConfig(), train=TrainConfig(num_envs=num_envs))
    torch.set_num_threads(job.train.torch_threads)
    cfg = job.agent
    venv = VecNormalize(NativeVecEnv(PerpMMVectorEnv(num_envs=num_envs, episode_seconds=600.0)))
    model = make_model(job, venv)
    model.learn(total_timesteps=num_envs * cfg.n_steps)  # warm-up (compilation, allocation)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    rate = (model.num_timesteps - num_envs * cfg.n_steps) / (time.perf_counter() - t0)
    scalars_us = _market_scalars_us(venv.venv)
    share = 100 * scalars_us * 1e-6 * rate / num_envs
    print(f"  SB3 PPO            num_envs={num_envs:6d}  {rate:14,.0f} env-steps/s (with updates)")
    print(f"  mm/* scalars       {scalars_us:.0f} us per vector step ({share:.1f} % of a step)")
    return (
        "| trainer | num_envs | env-steps/s including updates | mm/* scalars per vector step |\n"
        "|---|---:|---:|---:|\n"
        f"| SB3 PPO (conf/agent/ppo.yaml), PerpMM calm | {num_envs} | {rate:,.0f} | "
        f"{scalars_us:.0f} us ({share:.1f} %) |"
    )


def _market_scalars_us(native: Any, calls: int = 2000) -> float:
    """Median cost of one ``MarketScalars.update`` (the trainers' ``mm/*`` callback work) on the
    last info of ``native`` (a NativeVecEnv), in microseconds."""
    from agents.market_scalars import MarketScalars

    info = native.last_info
    scalars = MarketScalars(native.num_envs, 1, 10)
    scalars.start(None, info["mid"])
    done = np.zeros(native.num_envs, dtype=np.bool_)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(calls):
            scalars.update(info, done=done)
        times.append((time.perf_counter() - t0) / calls)
    return 1e6 * float(np.median(times))


def _risk_table(steps: int, num_envs: int = 256, repeats: int = 7) -> str:
    """The RiskLimiter per decision for one account (p50/p99 of single calls), and
    RiskLimitedVectorEnv against the bare PerpMM vector env at ``num_envs`` envs: blocks of
    ``steps`` steps alternate between the two, and the medians over ``repeats`` are compared,
    for a fixed quote at the touch (as above) and for uniform random actions."""
    from agents.deploy import RiskLimitedVectorEnv
    from agents.deploy.risk import RiskInputs, RiskLimiter, RiskLimits, VenueSpec, new_quotes
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    params = make_params("calm")
    limiter = RiskLimiter(RiskLimits(), VenueSpec.from_market(params), 1, 1)
    inputs = RiskInputs.unknown(1, 1)
    inputs.accounts[0] = (0.0, 1e4, 1e4, 0.0, 0.0, 0.0, False)
    rng = np.random.default_rng(0)
    quotes = new_quotes(1, 1)
    times = np.zeros(20_000)
    mark = 100.0
    for t in range(times.size):
        mark *= np.exp(rng.normal(0.0, 1e-4))
        mid = round(mark / params.tick_size)
        inputs.assets[0, 0] = (mid - 1, mid + 1, mark, rng.uniform(-5, 5), 1.0, mid - 2, 1.0,
                               mid + 2, False)  # fmt: skip
        inputs.accounts["time_s"] = float(t)
        quotes[0, 0] = (mid - 1 - t % 3, rng.uniform(0, 3), mid + 1 + t % 2, rng.uniform(0, 3), 0.5)
        t0 = time.perf_counter_ns()
        limiter.limit(quotes, inputs)
        times[t] = time.perf_counter_ns() - t0
    p50, p99 = np.percentile(times[1_000:], [50, 99]) / 1e3
    print(f"  RiskLimiter        one account        p50 {p50:.1f} us, p99 {p99:.1f} us")
    lines = [
        "| RiskLimiter, one account, one perp | p50 per decision | p99 per decision |",
        "|---|---:|---:|",
        f"| {times.size - 1_000:,} decisions (target p99 <= 20 us) | {p50:.1f} us | {p99:.1f} us |",
        "",
        f"| {num_envs} envs, calm, kernel on | actions | bare step | limited step | overhead |",
        "|---|---|---:|---:|---:|",
    ]
    for parallel in (True, False):
        bare = PerpMMVectorEnv(num_envs, scenario="calm", copy=False, parallel=parallel)
        limited = RiskLimitedVectorEnv(
            PerpMMVectorEnv(num_envs, scenario="calm", copy=False, parallel=parallel)
        )
        for kind in ("fixed quote", "uniform random"):
            if kind == "fixed quote":
                batch = [np.tile(np.array(QUOTE, dtype=np.float32), (num_envs, 1))] * 8
            else:
                batch = [rng.uniform(-1, 1, (num_envs, 5)).astype(np.float32) for _ in range(8)]
            for env in (bare, limited):
                env.reset(seed=0)
                for a in batch:
                    env.step(a)  # warm-up
            per_step: dict[str, list[float]] = {"bare": [], "limited": []}
            for _ in range(repeats):
                for name, env in (("bare", bare), ("limited", limited)):
                    t0 = time.perf_counter()
                    for j in range(steps):
                        env.step(batch[j % len(batch)])
                    per_step[name].append((time.perf_counter() - t0) / steps)
            medians = {name: statistics.median(v) for name, v in per_step.items()}
            overhead = 100 * (medians["limited"] / medians["bare"] - 1)
            cores = "both cores" if parallel else "one core"
            print(f"  RiskLimitedVectorEnv {cores}, {kind}: {overhead:+.0f} % per step")
            lines.append(
                f"| {cores} | {kind} | {1e6 * medians['bare']:,.0f} us | "
                f"{1e6 * medians['limited']:,.0f} us | {overhead:+.0f} % |"
            )
    return "\n".join(lines)


def _table(results: list[Result]) -> str:
    lines = [
        "| env | num_envs | env-steps/s | env-ticks/s (all perps) | spread of repeats |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ticks = f"{r.ticks_per_second:,.0f}" if r.ticks_per_second is not None else "-"
        lines.append(
            f"| {r.env} | {r.num_envs:,} | {r.steps_per_second:,.0f} | {ticks} | "
            f"{100 * r.spread:.0f} % |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and print (and optionally write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 100, 1000, 10000])
    parser.add_argument(
        "--sizes-k3", nargs="+", type=int, default=[1000], help="batch sizes for PerpMM-K3"
    )
    parser.add_argument("--repeats", type=int, default=5, help="repeats per cell (median)")
    parser.add_argument("--seconds", type=float, default=0.4, help="duration of one repeat")
    parser.add_argument("--write", type=Path, help="write the table into this markdown file")
    parser.add_argument(
        "--sb3-steps",
        type=int,
        default=0,
        help="also time SB3 PPO training (updates included) for this many env steps",
    )
    parser.add_argument(
        "--risk-steps",
        type=int,
        default=0,
        help="also time the RiskLimiter and RiskLimitedVectorEnv (steps per block)",
    )
    args = parser.parse_args()

    results = []
    for env_name in args.envs:
        for n in args.sizes_k3 if env_name == "PerpMM-K3" else args.sizes:
            r = _measure(env_name, n, args.repeats, args.seconds)
            print(f"  {env_name:18s} num_envs={n:6d}  {r.steps_per_second:14,.0f} env-steps/s")
            results.append(r)
    table = _table(results)
    if args.sb3_steps > 0:
        table += "\n\n" + _sb3_table(args.sb3_steps)
    if args.risk_steps > 0:
        table += "\n\n" + _risk_table(args.risk_steps)
    header = (
        f"Machine: {machine()}. Commit {commit()}, {time.strftime('%Y-%m-%d')}. "
        f"Median of {args.repeats} repeats of ~{args.seconds} s, one process, fixed actions, "
        "`make_vec(..., vectorization_mode='vector_entry_point', copy=False)`."
    )
    print()
    print(header)
    print()
    print(table)
    if args.write:
        _write(args.write, header, table)


def _write(path: Path, header: str, table: str) -> None:
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    block = f"{begin}\n{header}\n\n{table}\n{end}"
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text + ("\n" if text else "") + block + "\n"
    path.write_text(text)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
