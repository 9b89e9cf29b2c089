"""Throughput of mmgym's envs through the public ``gymnasium.make_vec`` API.

Steps each env with a fixed action at several batch sizes and prints a markdown table of the
median over repeats (env-steps per second; for PerpMM also market ticks per second), for both
copy modes: ``copy=False`` (views of internal buffers) and ``copy=True`` (Gymnasium's default).
The two modes alternate repeat by repeat, so they share the machine's conditions.

``--against REV`` measures the same cells on git revision ``REV`` (exported to a temporary
folder) side by side with the working tree: two worker processes take turns repeat by repeat,
and the table gives the medians and their ratios; with ``--risk-steps`` also the limited env's
overhead of each tree (its own limited step against its own bare step, medians of blocks).

    python scripts/bench.py                      # print the table
    python scripts/bench.py --write docs/benchmarks.md
    python scripts/bench.py --envs PerpMM --sizes 1000 --repeats 9
    python scripts/bench.py --against main --sizes 1 1000 --repeats 9
    python scripts/bench.py --envs AvellanedaStoikov --sizes 1 --onnx-decisions 20000
    python scripts/bench.py --envs AvellanedaStoikov --sizes 1 --guard-decisions 20000
    python scripts/bench.py --envs AvellanedaStoikov --sizes 1 --baseline-decisions 20000
    python scripts/bench.py --envs AvellanedaStoikov --sizes 1 --risk-steps 200
    python scripts/bench.py --envs AvellanedaStoikov --sizes 1 --risk-steps 300 --against main
    python scripts/bench.py --envs AvellanedaStoikov --sizes 1 --risk-steps 300 --risk-runs 9
    python scripts/bench.py --baseline-decisions 20000 --baselines-against main --repeats 5
    python scripts/bench.py --wait-idle 60      # on a shared machine: repeats in idle moments
    python scripts/bench.py --exchange-rtt 1000 --exchange-rate 10   # the paper exchange only
    python scripts/bench.py --envs AvellanedaStoikov --sizes 1 --journal 2000
    python scripts/bench.py --live-latency 500 --repeats 3   # the live runner only

``--baselines-against REV`` times the baselines of git revision ``REV`` (exported to a temporary
folder) and of this checkout side by side: one process per tree and repeat, taking turns, and
the table gives the medians and the ratios.

``--exchange-rtt N`` (N order round trips, direct and through the fault proxy) and
``--exchange-rate SECONDS`` (the sustained WebSocket rate, ``--repeats`` runs) time the paper
exchange instead of the envs (``scripts/bench_exchange.py``; they need the ``live`` extra).
``--live-latency N`` times the live runner's message-to-order latency over N decisions per run
(``--repeats`` runs per cell) instead (``scripts/bench_live.py``; the ``live`` extra).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import mmgym
from mmgym.markdown import table
from mmgym.provenance import commit, machine
from mmgym.scenarios import make_params

QUOTE = [0.0, -0.8, 0.0, 0.0, -1.0]  # one perp: quote at the touch, no hedge
ENVS: dict[str, tuple[str, list[float], dict[str, object]]] = {
    "AvellanedaStoikov": (mmgym.AVELLANEDA_STOIKOV_ID, [0.7, 0.7], {}),
    "PerpMM": (mmgym.PERP_MM_ID, QUOTE, {"scenario": "calm"}),
    "PerpMM-K3": (mmgym.PERP_MM_ID, QUOTE * 3, {"scenario": "cross_margin_event"}),
}
COPY_MODES = (False, True)


class Cell:
    """One env at one batch size, warmed up, stepped on demand in either copy mode (the same
    env object for both, so that both see the same memory and the same numba dispatch)."""

    def __init__(self, env_name: str, num_envs: int, **options: Any) -> None:
        env_id, action, kwargs = ENVS[env_name]
        self.env = gym.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs, **options
        )
        self.actions = np.tile(np.array(action, dtype=np.float32), (num_envs, 1))
        self.num_envs = num_envs
        self.env.reset(seed=0)
        for copy in COPY_MODES:
            self.env.copy = copy
            for _ in range(3):
                self.env.step(self.actions)

    def seconds_per_step(self, budget: float = 0.05) -> float:
        """A quick estimate of one vector step's duration (copy=False)."""
        self.env.copy = False
        t0 = time.perf_counter()
        calls = 0
        while time.perf_counter() - t0 < budget:
            self.env.step(self.actions)
            calls += 1
        return (time.perf_counter() - t0) / calls

    def rate(self, steps: int, copy: bool) -> float:
        """Env-steps per second over ``steps`` vector steps."""
        env, actions = self.env, self.actions
        env.copy = copy
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        return steps * self.num_envs / (time.perf_counter() - t0)


@dataclass
class Result:
    """One row of the benchmark table: medians per copy mode (env-steps/s)."""

    env: str
    num_envs: int
    rates: dict[bool, list[float]]

    def median(self, copy: bool) -> float:
        """Median env-steps per second in one copy mode."""
        return statistics.median(self.rates[copy])

    def spread(self, copy: bool) -> float:
        """(max - min) / median of the repeats."""
        r = self.rates[copy]
        return (max(r) - min(r)) / statistics.median(r)


class IdleWaiter:
    """Waits, before a repeat, until no other process uses the CPUs (on a shared machine).

    The machine counts as idle when at least ``IDLE_FRACTION`` of all CPU time was idle over
    ``IDLE_WINDOW`` seconds (``/proc/stat``). ``max_wait`` 0 (or no ``/proc/stat``) never waits.
    """

    IDLE_FRACTION = 0.95
    IDLE_WINDOW = 0.25

    def __init__(self, max_wait: float) -> None:
        self.max_wait = max_wait if Path("/proc/stat").exists() else 0.0
        self.idle = 0
        self.busy = 0

    @staticmethod
    def _cpu_times() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, all

    def wait(self) -> None:
        """Return once the machine is idle, or after ``max_wait`` seconds (counted as busy)."""
        if self.max_wait <= 0:
            return
        deadline = time.monotonic() + self.max_wait
        while time.monotonic() < deadline:
            idle0, all0 = self._cpu_times()
            time.sleep(self.IDLE_WINDOW)
            idle1, all1 = self._cpu_times()
            if (idle1 - idle0) >= self.IDLE_FRACTION * max(1, all1 - all0):
                self.idle += 1
                return
        self.busy += 1

    def summary(self) -> str:
        """How many repeats started on an idle machine."""
        if self.max_wait <= 0:
            return "repeats taken whatever else ran on the machine"
        return (
            f"{self.idle} of {self.idle + self.busy} repeats started after the CPUs were "
            f">= {100 * self.IDLE_FRACTION:.0f} % idle for {self.IDLE_WINDOW} s (waiting up to "
            f"{self.max_wait:g} s)"
        )


def _measure(
    env_name: str, num_envs: int, repeats: int, seconds: float, idle: IdleWaiter
) -> Result:
    cell = Cell(env_name, num_envs)
    steps = max(1, int(seconds / cell.seconds_per_step()))
    rates: dict[bool, list[float]] = {copy: [] for copy in COPY_MODES}
    for _ in range(repeats):  # the modes take turns, so both see the same conditions
        for copy in COPY_MODES:
            idle.wait()
            rates[copy].append(cell.rate(steps, copy))
    cell.env.close()
    return Result(env_name, num_envs, rates)


def _parallel_table(cells: list[tuple[str, int]], repeats: int, seconds: float, idle: Any) -> str:
    """Serial against parallel build (copy=False) for the cells that run parallel by default."""
    from mmgym.envs import avellaneda_stoikov, perp_mm

    threshold = {
        mmgym.AVELLANEDA_STOIKOV_ID: avellaneda_stoikov.PARALLEL_MIN_ENVS,
        mmgym.PERP_MM_ID: perp_mm.PARALLEL_MIN_ENVS,
    }
    lines = [
        "| env | num_envs | serial, env-steps/s | parallel, env-steps/s | parallel / serial | "
        "spread of repeats |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for env_name, n in cells:
        if n < threshold[ENVS[env_name][0]]:
            continue
        builds = {parallel: Cell(env_name, n, parallel=parallel) for parallel in (False, True)}
        steps = max(1, int(seconds / builds[False].seconds_per_step()))
        rates: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(repeats):
            for parallel, cell in builds.items():
                idle.wait()
                rates[parallel].append(cell.rate(steps, copy=False))
        serial, parallel = (statistics.median(rates[p]) for p in (False, True))
        spread = max((max(r) - min(r)) / statistics.median(r) for r in rates.values())
        lines.append(
            f"| {env_name} | {n:,} | {serial:,.0f} | {parallel:,.0f} | {parallel / serial:.2f} | "
            f"{100 * spread:.0f} % |"
        )
        print(lines[-1], flush=True)
    return "\n".join(lines)


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


def _demo_bundle() -> tuple[Any, float]:
    """The demo's network (conf/agent/ppo_residual.yaml: PPO, 64x64, residual on adaptive),
    untrained (latency does not depend on the weights), exported as a bundle and loaded with
    :func:`agents.deploy.bundle.load_bundle`; and the training episode length (s)."""
    import tempfile

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.config import TrainJob, to_job
    from agents.deploy.bundle import load_bundle
    from agents.deploy.export import export_bundle
    from agents.sb3.train import make_model
    from agents.sb3.vec_env import NativeVecEnv
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    conf = str(Path(__file__).resolve().parent.parent / "conf")
    with initialize_config_dir(config_dir=conf, version_base=None):
        job = to_job(compose(config_name="train", overrides=["agent=ppo_residual"]), TrainJob)
    # PPO's rollout (n_steps x envs) a multiple of its minibatch, as in training.
    envs = job.agent.batch_size // job.agent.n_steps
    venv = VecNormalize(NativeVecEnv(PerpMMVectorEnv(num_envs=envs, episode_seconds=600.0)))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(job)))
        make_model(job, venv).save(run / "model.zip")
        venv.save(str(run / "vecnormalize.pkl"))
        bundle = load_bundle(export_bundle(run, Path(tmp) / "bundle", force=True).path)
    return bundle, job.train.episode_seconds


def _onnx_policy_table(decisions: int) -> str:
    """Latency per decision at batch 1 of the demo's network (:func:`_demo_bundle`): ONNX
    Runtime with the bundle's session options (one intra-op and one inter-op thread, no
    spinning). The observations are the env's own."""
    from agents.residual_policy import ResidualPolicy
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    bundle, episode_seconds = _demo_bundle()
    env = PerpMMVectorEnv(num_envs=1, episode_seconds=episode_seconds)
    policy = bundle.policy
    assert isinstance(policy, ResidualPolicy)
    obs, _ = env.reset(seed=0)
    observations = []
    for _ in range(256):
        observations.append(obs.copy())
        obs, *_ = env.step(policy.act(obs))
    network = policy.learned
    session = network.session  # type: ignore[attr-defined]
    feed = network.input_name  # type: ignore[attr-defined]
    calls = {
        "ONNX Runtime session.run (the graph alone)": lambda o: session.run(None, {feed: o}),
        "OnnxPolicy.act (the bundle's network)": network.act,
        "adaptive baseline alone (the residual's base)": policy.base.act,
        "residual bundle policy (adaptive + network)": policy.act,
    }
    rows = []
    for label, call in calls.items():
        for o in observations[:64]:  # warm-up
            call(o)
        times = np.empty(decisions)
        for i in range(decisions):
            o = observations[i % len(observations)]
            t0 = time.perf_counter_ns()
            call(o)
            times[i] = time.perf_counter_ns() - t0
        p50, p99 = np.percentile(times, [50, 99]) / 1e3
        print(f"  {label:45s} p50 {p50:6.1f} us  p99 {p99:6.1f} us")
        rows.append([label, f"{p50:.1f} us", f"{p99:.1f} us"])
    header = ["policy call, batch 1", "p50 per decision", "p99 per decision"]
    return table(header, rows, align="lrr")


def _guard_table(decisions: int, idle: IdleWaiter, block: int = 1_000) -> str:
    """Latency per decision at batch 1 of :class:`agents.deploy.guard.GuardedPolicy` on the
    demo's residual bundle (:func:`_demo_bundle`, ONNX Runtime with one intra-op and one
    inter-op thread, no spinning) with the default RiskLimits, on the env's own stream: each
    decision reads the simulator's state, decides (timed), and steps the env with the limited
    quotes. A second guard on the same stream runs the stages one by one, each timed: the
    observation checks (shape, dtype, values, age), the model, the decoding (with the check of
    the actions' values) and the limiter; the rest of ``decide`` is glue. Before each block of
    ``block`` decisions, ``idle`` waits for an idle machine (``--wait-idle``)."""
    from agents.deploy.guard import GuardedPolicy, decode_screened, screen_observations
    from agents.deploy.risk import RiskInputs, RiskLimits
    from agents.deploy.risk.simulator_inputs import read_decision_state
    from mmgym.core.orders import encode_quotes
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    bundle, _ = _demo_bundle()
    guard = GuardedPolicy.from_bundle(bundle, RiskLimits())
    staged = GuardedPolicy.from_bundle(bundle, RiskLimits())
    staged.policy = _demo_bundle()[0].policy  # its own (stateful) baseline and session
    env = PerpMMVectorEnv(num_envs=1, episode_seconds=1e6)  # no episode end within the run
    sim = env.sim
    inputs = RiskInputs.unknown(1, 1)
    actions = np.zeros((1, 5))
    cancelled = np.zeros(1, dtype=np.int64)
    d = staged._decision
    stages = ("decide", "decide_cpu", "checks", "model", "decode", "limiter")
    times = {name: np.empty(decisions) for name in stages}
    warmup = 200
    load_before = os.getloadavg()[0]
    obs, _ = env.reset(seed=0)
    for i in range(-warmup, decisions):
        if i >= 0 and i % block == 0:
            idle.wait()
        read_decision_state(sim._packed, sim.accounts, sim.assets, inputs.accounts, inputs.assets)
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        decision = guard.decide(obs, inputs)
        t1 = time.perf_counter_ns()
        cpu = time.thread_time_ns() - c0
        # the same decision, stage by stage
        staged._well_formed(obs)
        screen_observations(
            obs, inputs.accounts["data_age_s"], staged.max_data_age_s, staged.obs_clip, d.untrusted
        )
        t2 = time.perf_counter_ns()
        staged._act(obs)
        t4 = time.perf_counter_ns()
        decode_screened(d.actions, d.untrusted, inputs.assets["best_bid"],
                        inputs.assets["best_ask"], staged._packed, d.quotes,
                        d.requested)  # fmt: skip
        t5 = time.perf_counter_ns()
        staged.limiter.limit(d.quotes, inputs, untrusted=d.untrusted)
        t6 = time.perf_counter_ns()
        if i >= 0:
            for name, value in zip(
                stages, (t1 - t0, cpu, t2 - t1, t4 - t2, t5 - t4, t6 - t5), strict=True
            ):
                times[name][i] = value
        np.copyto(actions, decision.actions)
        encode_quotes(decision.quotes, sim.assets["best_bid"], sim.assets["best_ask"],
                      sim._packed, actions, cancelled)  # fmt: skip
        obs, *_ = env.step(actions)
    load_after = os.getloadavg()[0]
    assert np.array_equal(d.quotes, decision.quotes)  # the stages are the decision
    labels = {
        "decide": "GuardedPolicy.decide, all of it (target p99 <= 200 us)",
        "decide_cpu": "the same, CPU time of the thread (without time descheduled)",
        "checks": "checks: observation shape, dtype, values, age",
        "model": "model: the residual bundle's policy (adaptive + ONNX network)",
        "decode": "decode: the actions' values, decode_actions at the decision-time book",
        "limiter": "limiter: RiskLimiter.limit",
    }
    rows = []
    for name in stages:
        p50, p99 = np.percentile(times[name], [50, 99]) / 1e3
        print(f"  {labels[name]:62s} p50 {p50:6.1f} us  p99 {p99:6.1f} us")
        rows.append([labels[name], f"{p50:.1f} us", f"{p99:.1f} us"])
    note = (
        f"GuardedPolicy on the demo's residual bundle (untrained 64x64 PPO on adaptive), one "
        f"account, default RiskLimits, {decisions:,} decisions of the env's own stream (calm); "
        "ONNX Runtime with intra_op_num_threads = 1, inter_op_num_threads = 1, no spinning. "
        f"Load average {load_before:.1f} before, {load_after:.1f} after; blocks of {block:,} "
        f"decisions: {idle.summary()}."
    )
    header = ["GuardedPolicy, batch 1", "p50 per decision", "p99 per decision"]
    return note + "\n\n" + table(header, rows, align="lrr")


BASELINE_MARKETS = {1: "volatile", 3: "cross_margin_event"}
"""Scenario the baselines are timed in, by number of perps."""


def _rollout(policy: Any, env: Any, steps: int) -> list[np.ndarray]:
    """Observations of ``steps`` decisions of ``policy`` in ``env`` (seeded 0)."""
    obs, _ = env.reset(seed=0)
    out = []
    for _ in range(steps):
        out.append(obs.copy())
        obs, *_ = env.step(policy.act(obs))
    return out


def _call_times_us(policy: Any, observations: list[np.ndarray], calls: int) -> np.ndarray:
    """Duration of each of ``calls`` calls of ``policy.act``, cycling through ``observations``."""
    for o in observations[:16]:  # warm-up
        policy.act(o)
    times = np.empty(calls)
    for i in range(calls):
        o = observations[i % len(observations)]
        t0 = time.perf_counter_ns()
        policy.act(o)
        times[i] = time.perf_counter_ns() - t0
    return times / 1e3


def baseline_latencies(
    decisions: int, repeats: int, batch: int = 256, verbose: bool = True
) -> list[dict[str, Any]]:
    """``act`` latency of every registered PerpMM baseline on the observations of its own
    rollout: p50 and p99 per decision at batch 1 over ``decisions`` calls, and the median call
    at batch ``batch`` (and per env), each the median over ``repeats`` repeats."""
    from agents.baselines.registry import BASELINES, load_all, make_baseline
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    load_all()
    rows = []
    for perps, scenario in BASELINE_MARKETS.items():
        single = PerpMMVectorEnv(num_envs=1, scenario=scenario)
        batched = PerpMMVectorEnv(num_envs=batch, scenario=scenario)
        for name in sorted(BASELINES):
            one = make_baseline(name, single.params)
            many = make_baseline(name, batched.params)
            obs_one, obs_many = _rollout(one, single, 256), _rollout(many, batched, 16)
            p50, p99, call = [], [], []
            for _ in range(repeats):
                times = _call_times_us(one, obs_one, decisions)
                p50.append(float(np.percentile(times, 50)))
                p99.append(float(np.percentile(times, 99)))
                call.append(float(np.median(_call_times_us(many, obs_many, 64))))
            rows.append(
                {
                    "baseline": name,
                    "perps": perps,
                    "scenario": scenario,
                    "p50_us": statistics.median(p50),
                    "p99_us": statistics.median(p99),
                    "batch": batch,
                    "call_us": statistics.median(call),
                }
            )
            r = rows[-1]
            if verbose:
                print(
                    f"  {name:20s} K={perps}  batch 1: p50 {r['p50_us']:7.1f} us  "
                    f"p99 {r['p99_us']:7.1f} us   batch {batch}: {r['call_us']:8.1f} us per call"
                )
        single.close()
        batched.close()
    return rows


def _baseline_table(rows: list[dict[str, Any]], decisions: int, repeats: int) -> str:
    batch = rows[0]["batch"]
    header = [
        "baseline",
        "perps (scenario)",
        "batch 1: p50 per decision",
        "batch 1: p99 per decision",
        f"batch {batch}: per call",
        f"batch {batch}: per env",
    ]
    cells = [
        [
            r["baseline"],
            f"{r['perps']} ({r['scenario']})",
            f"{r['p50_us']:.1f} us",
            f"{r['p99_us']:.1f} us",
            f"{r['call_us']:.1f} us",
            f"{1e3 * r['call_us'] / batch:,.0f} ns",
        ]
        for r in rows
    ]
    note = (
        f"Baselines' `act` on observations of their own rollouts: batch 1 over {decisions:,} "
        f"decisions, batch {batch} over 64 calls; medians of {repeats} repeats."
    )
    return note + "\n\n" + table(header, cells, align="llrrrr")


def _baseline_worker(tree: Path | None, decisions: int) -> list[dict[str, Any]]:
    """:func:`baseline_latencies` (one repeat) in a fresh process importing mmgym and agents
    from ``tree`` (None: this checkout)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    argv = [sys.executable, __file__, "--baseline-worker", "--baseline-decisions", str(decisions)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    answer = json.loads(out.splitlines()[-1])
    if tree is not None and not answer["agents"].startswith(str(tree)):
        raise RuntimeError(f"the worker imported agents from {answer['agents']}, not {tree}")
    return answer["rows"]


def _baselines_against(rev: str, decisions: int, repeats: int) -> str:
    """Baseline latencies of revision ``rev`` and of this checkout, one process per tree and
    repeat, taking turns; medians and ratios."""
    runs: dict[str, list[list[dict[str, Any]]]] = {rev: [], "this checkout": []}
    with tempfile.TemporaryDirectory() as tmp:
        short = _export(rev, Path(tmp))
        for i in range(repeats):
            for label, tree in ((rev, Path(tmp)), ("this checkout", None)):
                print(f"  repeat {i + 1}/{repeats}: {label}", flush=True)
                runs[label].append(_baseline_worker(tree, decisions))
    before_rows, after_rows = runs[rev][0], runs["this checkout"][0]
    batch = after_rows[0]["batch"]
    name = rev if short.startswith(rev) else f"{rev} ({short})"
    header = ["baseline", "perps (scenario)"]
    for quantity in ("batch 1 p50", "batch 1 p99", f"batch {batch} per env"):
        header += [f"{quantity}, {name}", f"{quantity}, this checkout", "ratio"]
    lines = []
    for j, row in enumerate(after_rows):
        assert (before_rows[j]["baseline"], before_rows[j]["perps"]) == (
            row["baseline"],
            row["perps"],
        )
        cells = []
        for key, scale, unit in (
            ("p50_us", 1.0, "us"),
            ("p99_us", 1.0, "us"),
            ("call_us", 1e3 / batch, "ns"),
        ):
            before, after = (
                scale * statistics.median(run[j][key] for run in runs[label])
                for label in (rev, "this checkout")
            )
            cells += [f"{before:,.1f} {unit}", f"{after:,.1f} {unit}", f"{before / after:.1f}x"]
        lines.append([row["baseline"], f"{row['perps']} ({row['scenario']})", *cells])
    note = (
        f"Baselines' `act` on observations of their own rollouts: batch 1 over {decisions:,} "
        f"decisions, batch {batch} over 64 calls; medians of {repeats} processes per tree, the "
        "trees taking turns; ratio: before / after (above 1: faster now)."
    )
    return note + "\n\n" + table(header, lines, align="ll" + "r" * 9)


RISK_ACTIONS = ("fixed quote", "uniform random")
"""The actions the limited env is timed with: the fixed quote at the touch, uniform random."""


class RiskPair:
    """The bare PerpMM vector env and the same env behind ``RiskLimitedVectorEnv`` (calm,
    ``num_envs`` envs, the kernel on both cores or one), stepped on demand with the same
    actions: blocks of steps of one and of the other, one after the other."""

    def __init__(self, num_envs: int, parallel: bool, kind: str) -> None:
        from agents.deploy import RiskLimitedVectorEnv
        from mmgym.envs.perp_mm import PerpMMVectorEnv

        self.parallel = parallel
        self.bare = PerpMMVectorEnv(num_envs, scenario="calm", copy=False, parallel=parallel)
        self.limited = RiskLimitedVectorEnv(
            PerpMMVectorEnv(num_envs, scenario="calm", copy=False, parallel=parallel)
        )
        if kind == "fixed quote":
            self.batch = [np.tile(np.array(QUOTE, dtype=np.float32), (num_envs, 1))] * 8
        else:
            rng = np.random.default_rng(1)
            self.batch = [rng.uniform(-1, 1, (num_envs, 5)).astype(np.float32) for _ in range(8)]
        for env in (self.bare, self.limited):
            env.reset(seed=0)
            for a in self.batch:
                env.step(a)  # warm-up

    def block(self, steps: int, limited_first: bool = False) -> dict[str, float]:
        """Seconds per step of a block of ``steps`` steps of the bare env and one of the
        limited env with the same actions (the bare one first unless ``limited_first``), then
        the limited env's own split (:func:`_limiter_share`, one block)."""
        out = {}
        envs = [("bare", self.bare), ("limited", self.limited)]
        for name, env in envs[::-1] if limited_first else envs:
            t0 = time.perf_counter()
            for j in range(steps):
                env.step(self.batch[j % len(self.batch)])
            out[name] = (time.perf_counter() - t0) / steps
        out["share"] = _limiter_share(self.limited, self.batch, steps, self.parallel)
        return out


def _overhead_cells(blocks: list[dict[str, float]]) -> tuple[float, float, float, float]:
    """(bare step, limited step, overhead, limiter's part / kernel) from the medians of the
    blocks: the overhead is the limited step's median over the bare step's, less 1."""
    bare = statistics.median(b["bare"] for b in blocks)
    limited = statistics.median(b["limited"] for b in blocks)
    share = statistics.median(b["share"] for b in blocks)
    return bare, limited, limited / bare - 1, share


def overhead_interval(blocks: list[dict[str, float]]) -> tuple[float, float, float]:
    """The overhead from the blocks' paired ratios: ``exp(mean log(limited / bare)) - 1`` and
    its 95 % confidence interval (Student's t on the blocks' log ratios, n - 1 degrees of
    freedom; each block's pair ran back to back, so the machine's slow drifts cancel)."""
    return run_interval([b["limited"] / b["bare"] - 1.0 for b in blocks])


def run_interval(overheads: list[float]) -> tuple[float, float, float]:
    """The mean of overheads ``o`` as ``exp(mean log(1 + o)) - 1`` and its 95 % confidence
    interval (Student's t on the ``log(1 + o)``, n - 1 degrees of freedom). Over independent
    runs it takes in what a run's own blocks leave out: what differs between processes
    (memory placement, the threads' cores) moves the overhead by a few percent."""
    from scipy import stats

    logs = np.log1p(np.asarray(overheads, dtype=np.float64))
    n = logs.size
    mean = float(logs.mean())
    if n < 2:
        return math.expm1(mean), math.nan, math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * float(logs.std(ddof=1)) / math.sqrt(n)
    return math.expm1(mean), math.expm1(mean - half), math.expm1(mean + half)


def _interval_cell(blocks: list[dict[str, float]]) -> str:
    mid, low, high = overhead_interval(blocks)
    return f"{100 * mid:+.1f} % ({100 * low:+.1f} to {100 * high:+.1f})"


def _limiter_latency() -> tuple[float, float, int]:
    """The RiskLimiter's p50 and p99 (us) per decision of one account, and the decisions."""
    from agents.deploy.risk import RiskInputs, RiskLimiter, RiskLimits, VenueSpec, new_quotes

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
    return float(p50), float(p99), times.size - 1_000


RISK_HEADER = [
    "| {n} envs, calm, kernel on | actions | bare step | limited step | overhead "
    "| overhead, paired blocks, 95 % CI ({blocks} blocks) | limiter's part / kernel, same steps |",
    "|---|---|---:|---:|---:|---:|---:|",
]


def _risk_table(steps: int, idle: IdleWaiter, num_envs: int = 256, repeats: int = 7) -> str:
    """The RiskLimiter per decision for one account (p50/p99 of single calls), and
    RiskLimitedVectorEnv against the bare PerpMM vector env at ``num_envs`` envs: blocks of
    ``steps`` steps alternate between the two (:class:`RiskPair`), and the medians over
    ``repeats`` are compared, for a fixed quote at the touch (as above) and for uniform random
    actions. The last column splits the limited env's own steps (:func:`_limiter_share`),
    which other processes on the machine disturb less than the comparison of two envs."""
    p50, p99, decisions = _limiter_latency()
    print(f"  RiskLimiter        one account        p50 {p50:.1f} us, p99 {p99:.1f} us")
    lines = [
        "| RiskLimiter, one account, one perp | p50 per decision | p99 per decision |",
        "|---|---:|---:|",
        f"| {decisions:,} decisions (target p99 <= 20 us) | {p50:.1f} us | {p99:.1f} us |",
        "",
        RISK_HEADER[0].format(n=num_envs, blocks=repeats),
        RISK_HEADER[1],
    ]
    for parallel in (True, False):
        for kind in RISK_ACTIONS:
            pair = RiskPair(num_envs, parallel, kind)
            blocks = []
            for j in range(repeats):
                idle.wait()  # each pair of blocks (with --wait-idle)
                blocks.append(pair.block(steps, limited_first=j % 2 == 1))
            bare, limited, overhead, share = _overhead_cells(blocks)
            cores = "both cores" if parallel else "one core"
            print(
                f"  RiskLimitedVectorEnv {cores}, {kind}: {100 * overhead:+.0f} % per step "
                f"(paired: {_interval_cell(blocks)}); "
                f"limiter's part {100 * share:.0f} % of the kernel's in the same steps"
            )
            lines.append(
                f"| {cores} | {kind} | {1e6 * bare:,.0f} us | {1e6 * limited:,.0f} us | "
                f"{100 * overhead:+.0f} % | {_interval_cell(blocks)} | {100 * share:.0f} % |"
            )
    return "\n".join(lines)


def risk_runs_table(
    steps: int, runs: int, repeats: int, idle: IdleWaiter, num_envs: int = 256
) -> str:
    """RiskLimitedVectorEnv against the bare env over ``runs`` independent runs: each cell of
    each run in a fresh worker process, ``repeats`` pairs of blocks of ``steps`` steps (order
    alternating), the cells taking turns run by run; each run's paired overhead
    (:func:`overhead_interval`) and the interval over the runs (:func:`run_interval`).
    ``num_envs`` envs."""
    cells = [(parallel, kind) for parallel in (True, False) for kind in RISK_ACTIONS]
    per_run: dict[tuple[bool, str], list[float]] = {c: [] for c in cells}
    shares: dict[tuple[bool, str], list[float]] = {c: [] for c in cells}
    for run in range(runs):
        for parallel, kind in cells:
            worker = Worker(None)
            try:
                worker.ask(op="risk", num_envs=num_envs, parallel=parallel, kind=kind)
                blocks = []
                for j in range(repeats):
                    idle.wait()
                    blocks.append(
                        worker.ask(op="risk_block", steps=steps, limited_first=j % 2 == 1)
                    )
            finally:
                worker.close()
            overhead = overhead_interval(blocks)[0]
            per_run[(parallel, kind)].append(overhead)
            shares[(parallel, kind)].append(_overhead_cells(blocks)[3])
            cores = "both cores" if parallel else "one core"
            print(f"  run {run + 1}/{runs} {cores}, {kind}: {100 * overhead:+.1f} %", flush=True)
    lines = [
        f"| {num_envs} envs, calm, kernel on | actions | paired overhead of each run "
        f"({repeats} pairs of blocks) | overhead over {runs} runs, 95 % CI "
        "| limiter's part / kernel, median of runs |",
        "|---|---|---|---:|---:|",
    ]
    for parallel, kind in cells:
        values = per_run[(parallel, kind)]
        mid, low, high = run_interval(values)
        each = ", ".join(f"{100 * v:+.1f}" for v in values)
        cores = "both cores" if parallel else "one core"
        lines.append(
            f"| {cores} | {kind} | {each} % | {100 * mid:+.1f} % ({100 * low:+.1f} to "
            f"{100 * high:+.1f}) | {100 * statistics.median(shares[(parallel, kind)]):.0f} % |"
        )
    return "\n".join(lines)


def _risk_against(rev: str, steps: int, repeats: int, idle: IdleWaiter, num_envs: int = 256) -> str:
    """:func:`_risk_table`'s env rows for git revision ``rev`` and this checkout side by side:
    one worker process per tree, the trees taking turns pair of blocks by pair of blocks; each
    tree's overhead compares its own limited and bare steps (medians), and the last column the
    limiter's part (:func:`_limiter_share`, steadier than the comparison of two envs) of this
    checkout over ``rev``'s."""
    lines = [
        f"| {num_envs} envs, calm | actions | tree | bare step | limited step | overhead "
        "| limiter's part / kernel | limiter's part, this / before |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        short = _export(rev, Path(tmp))
        trees = {f"{rev} ({short})": Path(tmp), "this checkout": None}
        for parallel in (True, False):
            for kind in RISK_ACTIONS:
                workers = {label: Worker(tree) for label, tree in trees.items()}
                blocks: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
                try:
                    for w in workers.values():
                        w.ask(op="risk", num_envs=num_envs, parallel=parallel, kind=kind)
                    for _ in range(repeats):
                        for label, w in workers.items():
                            idle.wait()
                            blocks[label].append(w.ask(op="risk_block", steps=steps))
                finally:
                    for w in workers.values():
                        w.close()
                cores = "both cores" if parallel else "one core"
                cells = {label: _overhead_cells(b) for label, b in blocks.items()}
                before, after = (c[3] for c in cells.values())
                for label, (bare, limited, overhead, share) in cells.items():
                    last = f"{after / before:.2f}" if label == "this checkout" else ""
                    lines.append(
                        f"| {cores} | {kind} | {label} | {1e6 * bare:,.0f} us | "
                        f"{1e6 * limited:,.0f} us | {100 * overhead:+.0f} % | "
                        f"{100 * share:.0f} % | {last} |"
                    )
                    print(lines[-1], flush=True)
    return "\n".join(lines)


def _limiter_share(env: Any, batch: list[np.ndarray], steps: int, parallel: bool) -> float:
    """The limited env's step split in two: everything but the kernel's call (reading,
    decoding, limiting, encoding, the glue) over the kernel's call, over a block of ``steps``.
    On one core in CPU time of the thread (``time.thread_time``: time slices lost to other
    processes do not count); on both cores in wall time (the pass and the kernel each wait for
    their slowest thread)."""
    clock = time.perf_counter if parallel else time.thread_time
    sim = env.sim
    spent = {"kernel": 0.0, "total": 0.0}
    kernel_step, limited_step = sim.inner.step, sim.step

    def timed_kernel(actions: np.ndarray, autoreset: np.ndarray) -> int:
        t0 = clock()
        bad = kernel_step(actions, autoreset)
        spent["kernel"] += clock() - t0
        return int(bad)

    def timed_step(actions: np.ndarray, autoreset: np.ndarray) -> int:
        t0 = clock()
        bad = limited_step(actions, autoreset)
        spent["total"] += clock() - t0
        return int(bad)

    sim.inner.step, sim.step = timed_kernel, timed_step
    try:
        for j in range(steps):
            env.step(batch[j % len(batch)])
    finally:
        del sim.inner.step, sim.step  # the methods again
    return (spent["total"] - spent["kernel"]) / spent["kernel"]


def _ticks(env_name: str) -> int:
    return make_params(str(ENVS[env_name][2].get("scenario", "calm"))).ticks_per_decision


def _table(results: list[Result]) -> str:
    header = [
        "env",
        "num_envs",
        "env-steps/s, copy=False",
        "env-steps/s, copy=True (default)",
        "copy=True / copy=False",
        "env-ticks/s (all perps), copy=False",
        "spread of repeats",
    ]
    rows = []
    for r in results:
        fast, default = r.median(False), r.median(True)
        ticks = f"{fast * _ticks(r.env):,.0f}" if r.env.startswith("PerpMM") else "-"
        spread = max(r.spread(False), r.spread(True))
        rows.append(
            [
                r.env,
                f"{r.num_envs:,}",
                f"{fast:,.0f}",
                f"{default:,.0f}",
                f"{default / fast:.2f}",
                ticks,
                f"{100 * spread:.0f} %",
            ]
        )
    return table(header, rows, align="lrrrrrr")


class Worker:
    """A ``bench.py --worker`` process importing mmgym from ``tree`` (None: this checkout)."""

    def __init__(self, tree: Path | None) -> None:
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def ask(self, **request: Any) -> Any:
        """Send one request, return the worker's answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with code {self.proc.wait()}")
        return json.loads(line)

    def close(self) -> None:
        """End the worker."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _serve() -> None:
    """Worker loop: build one cell and time it on request (one JSON object per line)."""
    cell: Cell | None = None
    pair: RiskPair | None = None
    for line in sys.stdin:
        req = json.loads(line)
        answer: Any
        if req["op"] == "where":
            answer = {"mmgym": str(Path(mmgym.__file__).parent), "commit": commit()}
        elif req["op"] == "cell":
            cell = Cell(req["env"], req["num_envs"])
            answer = cell.seconds_per_step()
        elif req["op"] == "risk":
            pair = RiskPair(req["num_envs"], req["parallel"], req["kind"])
            answer = True
        elif req["op"] == "risk_block":
            assert pair is not None
            answer = pair.block(req["steps"], req.get("limited_first", False))
        else:
            assert cell is not None
            answer = cell.rate(req["steps"], req["copy"])
        print(json.dumps(answer), flush=True)


def _export(rev: str, into: Path) -> str:
    """Extract revision ``rev`` of this repository into ``into``; return its short hash."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    archive = subprocess.run([*git, "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return subprocess.run(
        [*git, "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()


def _against(
    rev: str, cells: list[tuple[str, int]], repeats: int, seconds: float, idle: IdleWaiter
) -> str:
    """Medians of ``rev`` and of this checkout, taking turns repeat by repeat, and ratios. Each
    cell runs in a fresh pair of worker processes."""
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        short = _export(rev, Path(tmp))
        trees = {rev: Path(tmp), "this checkout": None}
        for env_name, n in cells:
            workers = {label: Worker(tree) for label, tree in trees.items()}
            try:
                if not lines:
                    where = workers[rev].ask(op="where")
                    assert where["mmgym"].startswith(tmp), where
                    lines += [
                        f"| env | num_envs | copy | {rev} ({short}), env-steps/s | "
                        "this checkout, env-steps/s | ratio |",
                        "|---|---:|---|---:|---:|---:|",
                    ]
                spec = {"env": env_name, "num_envs": n}
                per_step = {label: w.ask(op="cell", **spec) for label, w in workers.items()}
                steps = max(1, int(seconds / per_step[rev]))  # the same work for both trees
                rates: dict[tuple[str, bool], list[float]] = {}
                for _ in range(repeats):
                    for copy in COPY_MODES:
                        for label, w in workers.items():
                            idle.wait()
                            rate = w.ask(op="rate", copy=copy, steps=steps)
                            rates.setdefault((label, copy), []).append(rate)
            finally:
                for w in workers.values():
                    w.close()
            for copy in COPY_MODES:
                before, after = (statistics.median(rates[(label, copy)]) for label in trees)
                lines.append(
                    f"| {env_name} | {n:,} | {copy} | {before:,.0f} | {after:,.0f} | "
                    f"{after / before:.2f} |"
                )
                print(lines[-1], flush=True)
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
        "--against", metavar="REV", help="compare with git revision REV, side by side"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each repeat, wait up to this long for the CPUs to be idle (shared machines)",
    )
    parser.add_argument(
        "--serial-too",
        action="store_true",
        help="also time the serial build of the cells that step on all cores by default",
    )
    parser.add_argument(
        "--onnx-decisions",
        type=int,
        default=0,
        help="also time the demo bundle's ONNX policy at batch 1 over this many decisions",
    )
    parser.add_argument(
        "--guard-decisions",
        type=int,
        default=0,
        help="also time GuardedPolicy on the demo's residual bundle at batch 1 (decisions)",
    )
    parser.add_argument(
        "--baseline-decisions",
        type=int,
        default=0,
        help="also time every registered baseline's act at batch 1 over this many decisions",
    )
    parser.add_argument(
        "--baselines-against",
        metavar="REV",
        help="time the baselines of git revision REV and of this checkout side by side",
    )
    parser.add_argument(
        "--risk-steps",
        type=int,
        default=0,
        help="also time the RiskLimiter and RiskLimitedVectorEnv (steps per block)",
    )
    parser.add_argument(
        "--risk-blocks",
        type=int,
        default=15,
        help="pairs of blocks per cell of --risk-steps (the order alternates; default 15)",
    )
    parser.add_argument(
        "--risk-runs",
        type=int,
        default=1,
        help="with --risk-steps: also this many independent runs of the env rows, each cell "
        "in a fresh process, and the overhead's interval over the runs",
    )
    parser.add_argument(
        "--exchange-rtt",
        type=int,
        default=0,
        metavar="N",
        help="time N order round trips on the paper exchange (place, ack, cancel) instead",
    )
    parser.add_argument(
        "--exchange-rate",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="time the paper exchange's sustained WebSocket message rate instead",
    )
    parser.add_argument("--exchange-server", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--exchange-books", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument(
        "--live-gc",
        type=int,
        default=0,
        metavar="N",
        help="count the garbage collector's runs in a live session of N decisions, with the "
        "runner's DecisionCollector and with CPython's automatic collector (scripts/bench_live.py)",
    )
    parser.add_argument(
        "--live-latency",
        type=int,
        default=0,
        metavar="N",
        help="time the live runner's message-to-order latency over N decisions per run "
        "(paper exchange, lockstep; journal NORMAL and FULL; usual and tenfold book rate) "
        "instead",
    )
    parser.add_argument(
        "--journal",
        type=int,
        default=0,
        metavar="N",
        help="also time the live journal's cost per decision (decision, intent, ack) over N "
        "decisions: each append its own commit, and decision+intent as one batch then the ack; "
        "synchronous FULL and NORMAL (needs the live extra)",
    )
    parser.add_argument("--baseline-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.exchange_server:
        import bench_exchange

        mode, speed, agent = args.exchange_server
        bench_exchange.serve_exchange(mode, float(speed), agent, args.exchange_books)
        return
    if args.live_gc > 0:
        import bench_live

        report = bench_live.collections_table(args.live_gc)
        print(f"\nMachine: {machine()}. Commit {commit()}, {time.strftime('%Y-%m-%d')}.\n")
        print(report)
        return
    if args.live_latency > 0:
        import bench_live

        report = bench_live.report(args.live_latency, args.repeats)
        print(f"\nMachine: {machine()}. Commit {commit()}, {time.strftime('%Y-%m-%d')}.\n")
        print(report)
        return
    if args.exchange_rtt > 0 or args.exchange_rate > 0:
        import bench_exchange

        report = bench_exchange.report(args.exchange_rtt, args.exchange_rate, args.repeats)
        print(f"\nMachine: {machine()}. Commit {commit()}, {time.strftime('%Y-%m-%d')}.\n")
        print(report)
        return
    if args.worker:
        _serve()
        return
    if args.baseline_worker:
        import agents

        rows = baseline_latencies(args.baseline_decisions, 1, verbose=False)
        print(json.dumps({"agents": str(Path(agents.__file__).parent), "rows": rows}))
        return
    if args.baselines_against:
        table = _baselines_against(args.baselines_against, args.baseline_decisions, args.repeats)
        print(f"\nMachine: {machine()}. Commit {commit()}, {time.strftime('%Y-%m-%d')}.\n")
        print(table)
        return
    cells = [
        (env_name, n)
        for env_name in args.envs
        for n in (args.sizes_k3 if env_name == "PerpMM-K3" else args.sizes)
    ]
    conditions = (
        f"Machine: {machine()}. Commit {commit()}, {time.strftime('%Y-%m-%d')}. "
        f"Median of {args.repeats} repeats of ~{args.seconds} s, fixed actions, "
        "`make_vec(..., vectorization_mode='vector_entry_point', copy=...)`"
    )
    idle = IdleWaiter(args.wait_idle)
    if args.against:
        table = _against(args.against, cells, args.repeats, args.seconds, idle)
        if args.risk_steps > 0:
            table += "\n\n" + _risk_against(args.against, args.risk_steps, 7, idle)
        conditions += f"; {idle.summary()}"
        print(
            f"\n{conditions}; one process per tree and cell, taking turns repeat by repeat."
            f"\n\n{table}"
        )
        return

    results = []
    for env_name, n in cells:
        r = _measure(env_name, n, args.repeats, args.seconds, idle)
        print(
            f"  {env_name:18s} num_envs={n:6d}  {r.median(False):14,.0f} env-steps/s (copy=False)"
            f"  {r.median(True):14,.0f} (copy=True)"
        )
        results.append(r)
    table = _table(results)
    if args.serial_too:
        table += "\n\n" + _parallel_table(cells, args.repeats, args.seconds, idle)
    if args.sb3_steps > 0:
        idle.wait()
        table += "\n\n" + _sb3_table(args.sb3_steps)
    if args.risk_steps > 0:
        table += "\n\n" + _risk_table(args.risk_steps, idle, repeats=args.risk_blocks)
        if args.risk_runs > 1:
            table += "\n\n" + risk_runs_table(
                args.risk_steps, args.risk_runs, args.risk_blocks, idle
            )
    if args.onnx_decisions > 0:
        table += "\n\n" + _onnx_policy_table(args.onnx_decisions)
    if args.guard_decisions > 0:
        table += "\n\n" + _guard_table(args.guard_decisions, idle)
    if args.baseline_decisions > 0:
        rows = baseline_latencies(args.baseline_decisions, args.repeats)
        table += "\n\n" + _baseline_table(rows, args.baseline_decisions, args.repeats)
    if args.journal > 0:
        from bench_journal import journal_table

        idle.wait()
        table += "\n\n" + journal_table(args.journal)
    header = (
        f"{conditions}; one process, the copy modes taking turns repeat by repeat; "
        f"{idle.summary()}."
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
