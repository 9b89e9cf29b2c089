"""RLlib sampling throughput on PerpMM: env steps per second sampled by the EnvRunners.

    python -m agents.rllib.bench                              # the default grid of settings
    python -m agents.rllib.bench --runners 2 --envs 32 64     # chosen settings

For each (EnvRunners, envs per runner, observation filter) the algorithm is built once, every
EnvRunner samples one warm-up batch (numba compilation, torch start-up), then all EnvRunners
sample ``--steps`` env steps each in parallel (``EnvRunner.sample(num_timesteps=...)``, the
stochastic exploration policy, as in training) and the wall time of the slowest gives the
throughput. The native env alone (same envs, random actions, no RLlib) is timed as a reference,
as is one full PPO iteration (sampling plus the learner update).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from agents.config import EnvConfig, RLlibPPOConfig, TrainConfig, TrainJob
from mmgym.markdown import table


def bench_job(runners: int, envs: int, normalize_obs: bool, batch: int) -> TrainJob:
    """A training job with the given sampling settings (the calm scenario, 600 s episodes)."""
    agent = RLlibPPOConfig(
        num_env_runners=runners,
        num_envs_per_env_runner=envs,
        normalize_obs=normalize_obs,
        train_batch_size=batch,
        minibatch_size=min(1024, batch),
        num_epochs=5,
    )
    return TrainJob(env=EnvConfig(), agent=agent, train=TrainConfig(), seed=0)


def native_steps_per_second(envs: int, steps: int) -> float:
    """The native vector env alone (one core): env steps per second."""
    from mmgym.envs.perp_mm import PerpMMVectorEnv

    env = PerpMMVectorEnv(num_envs=envs, parallel=False, episode_seconds=600.0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (envs, env.sim.single_action_space.shape[0])).astype(np.float32)
    env.reset(seed=0)
    env.step(actions)
    calls = max(1, steps // envs)
    started = time.perf_counter()
    for _ in range(calls):
        env.step(actions)
    return calls * envs / (time.perf_counter() - started)


def sample_steps_per_second(algo: Any, runners: int, steps: int) -> float:
    """All EnvRunners sample ``steps`` env steps each, in parallel: env steps per second."""

    def sample(runner: Any) -> int:
        episodes = runner.sample(num_timesteps=steps, explore=True)
        return int(sum(len(e) for e in episodes))

    group = algo.env_runner_group
    local = runners == 0
    group.foreach_env_runner(sample, local_env_runner=local)  # warm-up
    started = time.perf_counter()
    counts = group.foreach_env_runner(sample, local_env_runner=local)
    return float(sum(counts)) / (time.perf_counter() - started)


def train_steps_per_second(algo: Any, iterations: int = 2) -> float:
    """Full PPO iterations (sampling, learner update, weight sync): env steps per second."""
    before = algo.train()["num_env_steps_sampled_lifetime"]  # warm-up
    started = time.perf_counter()
    for _ in range(iterations):
        result = algo.train()
    elapsed = time.perf_counter() - started
    return (float(result["num_env_steps_sampled_lifetime"]) - float(before)) / elapsed


def main() -> None:
    """Print a markdown table of sampling (and training) throughput."""
    import ray

    from agents.rllib.train import build_config, register_env, stop_algorithm, training_threads

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runners", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--steps", type=int, default=8192, help="env steps per EnvRunner")
    parser.add_argument("--filter", choices=["on", "off", "both"], default="both")
    parser.add_argument("--train", action="store_true", help="also time full PPO iterations")
    args = parser.parse_args()
    filters = {"on": [True], "off": [False], "both": [True, False]}[args.filter]

    ray.init(include_dashboard=False, log_to_driver=False)
    register_env()
    cpus = int(ray.cluster_resources().get("CPU", 0))
    print(f"Ray {ray.__version__}, {cpus} CPUs; {args.steps} env steps per EnvRunner\n")
    header = ["EnvRunners", "envs/runner", "MeanStdFilter", "native env steps/s"]
    header += ["sampled steps/s", *(["PPO iteration steps/s"] if args.train else [])]
    rows = []
    for runners in args.runners:
        for envs in args.envs:
            native = native_steps_per_second(envs, max(args.steps, 64 * envs))
            for normalize in filters:
                batch = max(args.steps, envs) * max(1, runners)
                job = bench_job(runners, envs, normalize, batch)
                with training_threads(job.agent):
                    algo = build_config(job).build_algo()
                    try:
                        sampled = sample_steps_per_second(algo, runners, args.steps)
                        row = [runners, envs, "on" if normalize else "off"]
                        row += [f"{native:,.0f}", f"{sampled:,.0f}"]
                        if args.train:
                            row.append(f"{train_steps_per_second(algo):,.0f}")
                        print(
                            "  " + "  ".join(f"{h}={v}" for h, v in zip(header, row, strict=True)),
                            flush=True,
                        )
                        rows.append(row)
                    finally:
                        stop_algorithm(algo)
    print()
    print(table(header, rows))
    ray.shutdown()


if __name__ == "__main__":
    main()
