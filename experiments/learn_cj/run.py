"""Does PPO learn the Cartea-Jaimungal optimum? Its value as a fraction of ``h(0, 0)``.

The market and criterion are those of :mod:`experiments.cj2015.run`:
``mmgym/AvellanedaStoikov-v0`` with ``reward="inventory_penalty"`` (``phi = 0.2``,
``alpha = 0.5``; ``A = 140``, ``k = 1.5``, ``sigma = 2``, ``T = 1``), so an episode's return is
one draw of ``E[X_T + q_T (S_T - alpha q_T) - phi int q_t^2 dt]``. PPO (stable-baselines3)
trains on the native vector env through :class:`~agents.sb3.vec_env.NativeVecEnv` and
``VecNormalize`` (observations ``(q, t)`` and rewards scaled by running statistics); its actions
are the raw depths ``(delta_bid, delta_ask)``.

Its deterministic policy (the Gaussian's mean) is scored three ways:

- **simulated**: mean criterion over ``eval_paths`` env paths with its SE, by the same code that
  scores the exact CJ strategy in cj2015 (:func:`experiments.cj2015.run.simulate`, seed 2015),
  so the paths are shared with CJ and the difference CJ - PPO is paired;
- **exact**: the policy is Markov in ``(q, t)``, so its expected criterion in the discrete env
  is computed without noise by cj2015's backward induction
  (:func:`experiments.cj2015.run.exact_value`); this also draws the learning curve;
- as a fraction of three references: the closed form ``h(0, 0)`` (continuous time, inventory
  limit ``Q = 10``), the exact discrete-env value of the CJ strategy, and the exact optimum of
  the discrete env (:func:`discrete_optimum`, backward induction maximising over depths: no
  policy can do better in this env).

    python -m experiments.learn_cj.run [--out experiments/learn_cj] [--steps N] [--seeds 0 1 2]
    python -m experiments.learn_cj.run --out experiments/learn_cj --render   # page from its JSON
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from agents.baselines.closed_form import cartea_jaimungal_table
from agents.config import PPOConfig, TrainJob
from agents.learned import SB3Policy
from agents.metrics import mean_confidence_interval
from agents.policy import Policy
from agents.sb3.train import make_model
from agents.sb3.vec_env import NativeVecEnv
from experiments.cj2015 import run as cj2015
from experiments.cj2015.run import Sample, cj_policy, exact_value, simulate
from experiments.pages import interval
from mmgym.envs.avellaneda_stoikov import AvellanedaStoikovVectorEnv
from mmgym.markdown import table


def learn_cj_ppo() -> PPOConfig:
    """PPO's settings in this experiment: undiscounted (``gamma = 1``, the criterion is a sum
    over a finite episode), a larger learning rate and batch, a narrower initial noise."""
    return PPOConfig(
        learning_rate=1e-3,
        n_steps=100,
        batch_size=5120,
        n_epochs=5,
        gamma=1.0,
        gae_lambda=0.95,
        clip_range=0.2,
        net_arch=[64, 64],
        log_std_init=-1.0,
    )


@dataclass(frozen=True)
class LearnConfig:
    """The experiment. The market is cj2015's config with ``dt`` and ``eval_paths`` replaced."""

    dt: float = 0.005
    """Env time step: 200 steps per episode (see the README for the trade-off)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    total_steps: int = 5_000_000
    """Env steps per seed (summed over envs)."""
    num_envs: int = 512
    eval_paths: int = 20_000
    curve_every: int = 250_000
    """Exact (DP) value of the current policy every this many env steps."""
    ppo: PPOConfig = field(default_factory=learn_cj_ppo)
    """The agent, built as ``scripts/train.py`` builds it (:func:`agents.sb3.train.make_model`);
    the batch is cut to one rollout (``n_steps x num_envs``) when that is smaller."""
    torch_threads: int = 1
    target: float = 0.95
    market: dict[str, Any] = field(default_factory=dict)
    """Overrides of cj2015's config (e.g. ``{"phi": 0.1}``); empty: cj2015's settings."""

    def cj(self) -> cj2015.Config:
        """cj2015's config for this experiment."""
        base = cj2015.Config.load(**self.market)
        return replace(base, dt=self.dt, num_paths=self.eval_paths)


def discrete_optimum(c: cj2015.Config, sweeps: int = 20) -> float:
    """The optimal expected criterion of the discrete env from ``q = 0``, by backward induction.

    Per step the env fills the bid with probability ``p_b = min(1, A exp(-k d_b) dt)`` and the
    ask independently with ``p_a``, then charges ``phi dt q'^2`` (and ``alpha q'^2`` at the last
    step). With ``W(q) = V_next(q) - penalty q^2`` the step's value is
    ``p_b d_b + p_a d_a + p_b (1 - p_a) (W(q+1) - W(q)) + (1 - p_b) p_a (W(q-1) - W(q)) + W(q)``.
    For a fixed ``d_a`` it is ``p_b (d_b + c_b) + const``, maximised at ``d_b = 1/k - c_b`` (or at
    the depth where ``p_b`` reaches 1, if that is larger); the two sides are optimised in turn
    (``sweeps`` times; the coupling ``p_b p_a`` is small). Same inventory truncation as
    :func:`~experiments.cj2015.run.exact_value` (``|q| <= dp_inventory``, held at the edge).
    """
    q = np.arange(-c.dp_inventory, c.dp_inventory + 1, dtype=np.float64)
    value = np.zeros_like(q)
    floor = math.log(c.A * c.dt) / c.k if c.A * c.dt > 0 else -c.max_depth
    for n in range(c.num_steps - 1, -1, -1):
        penalty = c.phi * c.dt + (c.alpha if n == c.num_steps - 1 else 0.0)
        w = value - penalty * q**2
        gain_up = np.append(w[1:], w[-1]) - w
        gain_down = np.insert(w[:-1], 0, w[0]) - w
        bid = np.full_like(q, 1.0 / c.k)
        ask = bid.copy()
        for _ in range(sweeps):
            p_a = _fill_probability(ask, c)
            bid = _best_depth((1.0 - p_a) * gain_up - p_a * gain_down, floor, c)
            p_b = _fill_probability(bid, c)
            ask = _best_depth((1.0 - p_b) * gain_down - p_b * gain_up, floor, c)
        p_b, p_a = _fill_probability(bid, c), _fill_probability(ask, c)
        value = (
            p_b * bid + p_a * ask + p_b * (1.0 - p_a) * gain_up + (1.0 - p_b) * p_a * gain_down + w
        )
    return float(value[c.dp_inventory])


def _fill_probability(depth: np.ndarray, c: cj2015.Config) -> np.ndarray:
    return np.minimum(1.0, c.A * np.exp(-c.k * depth) * c.dt)


def _best_depth(gain: np.ndarray, floor: float, c: cj2015.Config) -> np.ndarray:
    return np.clip(np.maximum(1.0 / c.k - gain, floor), -c.max_depth, c.max_depth)


@dataclass
class References:
    """The values PPO is measured against (all exact, no sampling noise)."""

    h00: float
    cj_exact: float
    optimum: float
    glft_tuned: float
    glft_gamma: float

    @property
    def bias(self) -> float:
        """Discretisation bias of the env's CJ value against the closed form."""
        return self.cj_exact - self.h00


def references(c: cj2015.Config) -> References:
    """Closed form, CJ's and the optimal discrete values, and the best GLFT on cj2015's grid."""
    table = cartea_jaimungal_table(c.phi, c.alpha, c.A, c.k, c.T, c.Q, c.num_steps)
    gamma, glft = cj2015.tune(c, "glft")
    return References(
        h00=float(table.value[0, c.Q]),
        cj_exact=exact_value(cj_policy(c), c),
        optimum=discrete_optimum(c),
        glft_tuned=glft,
        glft_gamma=gamma,
    )


def evaluate(policy: Policy, c: cj2015.Config) -> Sample:
    """Mean criterion of ``policy`` on cj2015's seeded paths (the code path that scores CJ)."""
    return simulate(policy, c)


def learned_policy(model: Any) -> SB3Policy:
    """The model's deterministic policy on raw observations (its VecNormalize statistics)."""
    stats = model.get_env()
    if not isinstance(stats, VecNormalize):
        raise TypeError("the model was not trained under VecNormalize")
    rms: Any = stats.obs_rms
    return SB3Policy(model, rms.mean, rms.var, stats.clip_obs, stats.epsilon)


class LearningCurve(BaseCallback):
    """Exact (DP) value of the deterministic policy every ``every`` env steps."""

    def __init__(self, every: int, c: cj2015.Config) -> None:
        super().__init__()
        self.every = every
        self.c = c
        self.next = 0
        self.points: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next:
            self.record()
            self.next = self.num_timesteps + self.every
        return True

    def record(self) -> None:
        """Append ``(env steps, exact value)`` of the current policy."""
        self.points.append(
            (int(self.num_timesteps), exact_value(learned_policy(self.model), self.c))
        )


def train_one(cfg: LearnConfig, seed: int) -> tuple[Any, list[tuple[int, float]], float]:
    """Train PPO with one seed: the model, its learning curve and the training seconds."""
    c = cfg.cj()
    native = NativeVecEnv(
        AvellanedaStoikovVectorEnv(num_envs=cfg.num_envs, copy=False, **c.env_kwargs())
    )
    native.seed(seed * cfg.num_envs)
    venv = VecNormalize(native, norm_obs=True, norm_reward=True, gamma=cfg.ppo.gamma)
    rollout = cfg.ppo.n_steps * cfg.num_envs
    agent = replace(cfg.ppo, batch_size=min(cfg.ppo.batch_size, rollout))
    model = make_model(TrainJob(agent=agent, seed=seed), venv)
    curve = LearningCurve(cfg.curve_every, c)
    start = time.perf_counter()
    model.learn(total_timesteps=cfg.total_steps, callback=curve)
    seconds = time.perf_counter() - start
    curve.record()
    return model, curve.points, seconds


@dataclass
class SeedResult:
    """One trained policy, scored against the references."""

    seed: int
    steps: int
    train_seconds: float
    exact: float
    mean: float
    se: float
    ci: tuple[float, float]
    """95 % confidence interval of the mean criterion (Student's t)."""
    cj_minus_ppo: float
    cj_minus_ppo_se: float
    cj_minus_ppo_ci: tuple[float, float]
    """95 % confidence interval of the paired difference (Student's t)."""
    std_final_q: float
    max_abs_q: float
    curve: list[tuple[int, float]]


def fraction(mean: float, ci: tuple[float, float], reference: float) -> tuple[float, float, float]:
    """``mean / reference`` and its 95 % CI ``ci / reference`` (the reference is exact)."""
    return mean / reference, ci[0] / reference, ci[1] / reference


@dataclass
class Results:
    """Everything the README reports."""

    config: dict[str, Any]
    market: dict[str, Any]
    refs: dict[str, float]
    cj_mean: float
    cj_se: float
    seeds: list[SeedResult]
    seconds: float
    torch_version: str = ""

    def met(self, reference: str) -> list[bool]:
        """Per seed: is the simulated value's 95 % CI lower bound >= target x reference?"""
        ref = self.refs[reference]
        target = float(self.config["target"])
        return [fraction(s.mean, s.ci, ref)[1] >= target for s in self.seeds]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        """The results as :func:`write` stored them in ``results.json``."""
        seeds = [
            SeedResult(
                **{
                    **s,
                    "ci": tuple(s["ci"]),
                    "cj_minus_ppo_ci": tuple(s["cj_minus_ppo_ci"]),
                    "curve": [(int(steps), float(value)) for steps, value in s["curve"]],
                }
            )
            for s in data["seeds"]
        ]
        return cls(**{**data, "seeds": seeds})


def run(cfg: LearnConfig) -> Results:
    """The whole experiment."""
    start = time.perf_counter()
    torch.set_num_threads(cfg.torch_threads)
    c = cfg.cj()
    refs = references(c)
    cj_sample = evaluate(cj_policy(c), c)
    seeds = []
    for seed in cfg.seeds:
        model, curve, seconds = train_one(cfg, seed)
        policy = learned_policy(model)
        sample = evaluate(policy, c)
        diff = cj_sample.criterion - sample.criterion
        diff_mean, diff_low, diff_high = mean_confidence_interval(diff)
        seeds.append(
            SeedResult(
                seed=seed,
                steps=int(model.num_timesteps),
                train_seconds=seconds,
                exact=exact_value(policy, c),
                mean=sample.mean,
                se=sample.se,
                ci=sample.ci,
                cj_minus_ppo=diff_mean,
                cj_minus_ppo_se=float(diff.std(ddof=1) / math.sqrt(diff.size)),
                cj_minus_ppo_ci=(diff_low, diff_high),
                std_final_q=float(sample.final_q.std(ddof=1)),
                max_abs_q=float(sample.max_abs_q.max()),
                curve=curve,
            )
        )
    return Results(
        config=asdict(cfg),
        market=asdict(c),
        refs={**asdict(refs), "bias": refs.bias},
        cj_mean=cj_sample.mean,
        cj_se=cj_sample.se,
        seeds=seeds,
        seconds=time.perf_counter() - start,
        torch_version=torch.__version__,
    )


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f} %"


def _frac_cell(mean: float, ci: tuple[float, float], reference: float) -> str:
    mid, lo, hi = fraction(mean, ci, reference)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{_pct(mid)} n/a"
    return f"{_pct(mid)} [{_pct(lo)}, {_pct(hi)}]"


def markdown(r: Results) -> str:
    """The results section of the README."""
    cfg, m, refs = r.config, r.market, r.refs
    ppo = cfg["ppo"]
    steps = round(m["T"] / m["dt"])
    lines = [
        f"Market: phi={m['phi']}, alpha={m['alpha']}, Q={m['Q']} (CJ only); A={m['A']}, "
        f"k={m['k']}, sigma={m['sigma']}, T={m['T']}, dt={m['dt']} ({steps} steps). "
        f"PPO: {cfg['num_envs']} envs, {cfg['total_steps']:,} env steps per seed, "
        f"lr {ppo['learning_rate']:g}, n_steps {ppo['n_steps']}, batch {ppo['batch_size']}, "
        f"{ppo['n_epochs']} epochs, gamma {ppo['gamma']:g}, GAE lambda {ppo['gae_lambda']:g}, "
        f"net {list(ppo['net_arch'])}, log_std_init {ppo['log_std_init']:g}, VecNormalize "
        f"(obs and reward). Evaluation: {m['num_paths']:,} paths (seed {m['seed']}), "
        f"deterministic actions. Total {r.seconds:.0f} s.",
        "",
        "References (exact, no sampling noise):",
        "",
        table(
            ["reference", "value"],
            [
                [f"closed form h(0, 0) (continuous time, Q = {m['Q']})", f"{refs['h00']:.4f}"],
                ["CJ strategy in the discrete env (DP)", f"{refs['cj_exact']:.4f}"],
                ["discretisation bias (DP - h)", f"{refs['bias']:+.4f}"],
                [
                    "optimum of the discrete env (DP over depths, no limit)",
                    f"{refs['optimum']:.4f}",
                ],
                [
                    f"best GLFT on cj2015's grid (gamma={refs['glft_gamma']:g}), DP",
                    f"{refs['glft_tuned']:.4f}",
                ],
                ["CJ simulated on the evaluation paths ± SE", f"{r.cj_mean:.4f} ± {r.cj_se:.4f}"],
            ],
            align="lr",
        ),
        "",
        "PPO per seed. Simulated: mean criterion ± SE over the evaluation paths; exact: the "
        "same deterministic policy's value by DP. Fractions: simulated mean / reference "
        "[95 % CI, Student's t].",
        "",
    ]
    rows = [
        [
            s.seed, f"{s.steps:,}", f"{s.train_seconds:.0f}", f"{s.mean:.3f} ± {s.se:.3f}",
            f"{s.exact:.3f}", _frac_cell(s.mean, s.ci, refs["h00"]),
            _frac_cell(s.mean, s.ci, refs["cj_exact"]), _frac_cell(s.mean, s.ci, refs["optimum"]),
            f"{s.cj_minus_ppo:.3f} {interval(*s.cj_minus_ppo_ci, spec='.3f')}",
            f"{s.std_final_q:.2f}", f"{s.max_abs_q:.0f}",
        ]
        for s in r.seeds
    ]  # fmt: skip
    header = [
        "seed", "env steps", "train s", "simulated ± SE", "exact (DP)", "of h(0, 0)",
        "of CJ in env", "of env optimum", "CJ - PPO, paired [95 % CI]", "std(q_T)", "max abs(q)",
    ]  # fmt: skip
    lines.append(table(header, rows, align="r"))
    exact = np.array([s.exact for s in r.seeds])
    lines += [
        "",
        f"Across seeds, exact value: mean {exact.mean():.3f}, min {exact.min():.3f}, max "
        f"{exact.max():.3f}; of h(0, 0): mean {_pct(exact.mean() / refs['h00'])}, min "
        f"{_pct(exact.min() / refs['h00'])}; of CJ in the env: mean "
        f"{_pct(exact.mean() / refs['cj_exact'])}, min {_pct(exact.min() / refs['cj_exact'])}.",
        "",
        f"Target {_pct(cfg['target'])} (95 % CI lower bound of the simulated fraction at or "
        f"above it): of h(0, 0) met by {sum(r.met('h00'))}/{len(r.seeds)} seeds; "
        f"of CJ in the env met by {sum(r.met('cj_exact'))}/{len(r.seeds)} seeds.",
    ]
    return "\n".join(lines)


def plot(r: Results, path: Path) -> None:
    """Learning curves: exact value / h(0, 0) against env steps, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = r.refs
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for s in r.seeds:
        steps = np.array([p[0] for p in s.curve], dtype=np.float64)
        value = np.array([p[1] for p in s.curve])
        ax.plot(steps / 1e6, value / refs["h00"], marker=".", label=f"PPO seed {s.seed}")
    ax.axhline(r.config["target"], color="k", ls="--", lw=1, label="target 95 %")
    ax.axhline(refs["cj_exact"] / refs["h00"], color="C3", lw=1, label="CJ strategy in the env")
    ax.axhline(
        refs["glft_tuned"] / refs["h00"],
        color="C7",
        ls=":",
        lw=1,
        label=f"best GLFT (gamma={refs['glft_gamma']:g})",
    )
    ax.set_ylim(0.5, 1.05)
    ax.set_xlabel("env steps (millions)")
    ax.set_ylabel("exact value / h(0, 0)")
    ax.set_title(f"PPO on the Cartea-Jaimungal criterion (dt={r.market['dt']:g})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(r: Results, out: Path) -> None:
    """``results.md``, ``results.json`` and ``learning_curve.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown(r) + "\n")
    (out / "results.json").write_text(json.dumps(asdict(r), indent=2) + "\n")
    plot(r, out / "learning_curve.png")


def render(out: Path) -> str:
    """Rewrite ``out/results.md`` from ``out/results.json`` (nothing is trained or simulated)."""
    text = markdown(Results.from_json(json.loads((out / "results.json").read_text())))
    (out / "results.md").write_text(text + "\n")
    return text


def main(argv: list[str] | None = None) -> Results:
    """Run, print the table, write the outputs."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", default="experiments/learn_cj")
    parser.add_argument("--steps", type=float, default=None, help="env steps per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--envs", type=int, default=None, help="training envs")
    parser.add_argument("--paths", type=int, default=None, help="evaluation paths")
    parser.add_argument("--curve-every", type=float, default=None)
    parser.add_argument("--dt", type=float, default=None)
    parser.add_argument(
        "--render", action="store_true", help="only rewrite --out's results.md from its JSON"
    )
    args = parser.parse_args(argv)
    if args.render:
        print(render(Path(args.out)))
        return Results.from_json(json.loads((Path(args.out) / "results.json").read_text()))
    overrides: dict[str, Any] = {}
    for name, key, cast in (
        ("steps", "total_steps", int),
        ("seeds", "seeds", tuple),
        ("envs", "num_envs", int),
        ("paths", "eval_paths", int),
        ("curve_every", "curve_every", int),
        ("dt", "dt", float),
    ):
        value = getattr(args, name)
        if value is not None:
            overrides[key] = cast(value)
    names = {f.name for f in fields(LearnConfig)}
    assert set(overrides) <= names
    cfg = LearnConfig(**overrides)
    results = run(cfg)
    print(markdown(results))
    write(results, Path(args.out))
    return results


if __name__ == "__main__":
    main()
