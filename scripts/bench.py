"""Throughput of mmgym's envs through the public ``gymnasium.make_vec`` API.

Steps each env with a fixed action at several batch sizes and prints a markdown table of the
median over repeats (env-steps per second; for PerpMM also market ticks per second), for both
copy modes: ``copy=False`` (views of internal buffers) and ``copy=True`` (Gymnasium's default).
The two modes alternate repeat by repeat, so they share the machine's conditions.

``--against REV`` measures the same cells on git revision ``REV`` (exported to a temporary
folder) side by side with the working tree: two worker processes take turns repeat by repeat,
and the table gives the medians and their ratios.

    python scripts/bench.py                      # print the table
    python scripts/bench.py --write docs/benchmarks.md
    python scripts/bench.py --envs PerpMM --sizes 1000 --repeats 9
    python scripts/bench.py --against main --sizes 1 1000 --repeats 9
    python scripts/bench.py --wait-idle 60      # on a shared machine: repeats in idle moments
"""

from __future__ import annotations

import argparse
import json
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


def _ticks(env_name: str) -> int:
    return make_params(str(ENVS[env_name][2].get("scenario", "calm"))).ticks_per_decision


def _table(results: list[Result]) -> str:
    lines = [
        "| env | num_envs | env-steps/s, copy=False | env-steps/s, copy=True (default) | "
        "copy=True / copy=False | env-ticks/s (all perps), copy=False | spread of repeats |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        fast, default = r.median(False), r.median(True)
        ticks = f"{fast * _ticks(r.env):,.0f}" if r.env.startswith("PerpMM") else "-"
        spread = max(r.spread(False), r.spread(True))
        lines.append(
            f"| {r.env} | {r.num_envs:,} | {fast:,.0f} | {default:,.0f} | {default / fast:.2f} | "
            f"{ticks} | {100 * spread:.0f} % |"
        )
    return "\n".join(lines)


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
    for line in sys.stdin:
        req = json.loads(line)
        answer: Any
        if req["op"] == "where":
            answer = {"mmgym": str(Path(mmgym.__file__).parent), "commit": commit()}
        elif req["op"] == "cell":
            cell = Cell(req["env"], req["num_envs"])
            answer = cell.seconds_per_step()
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
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _serve()
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
