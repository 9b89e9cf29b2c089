"""The Cartea-Jaimungal-Penalva (2015, ch. 10) optimum on the Avellaneda-Stoikov market.

Criterion: ``E[X_T + q_T (S_T - alpha q_T) - phi int q_t^2 dt]``, the return of
``mmgym/AvellanedaStoikov-v0`` with ``reward="inventory_penalty"``. The exact CJ strategy
(inventory limit ``Q``) is run on many paths. Its mean criterion, with standard error, is
compared with three other numbers:

- its closed-form value ``h(0, 0)`` (continuous time);
- its exact value in the discrete-time env, by dynamic programming over inventory
  (:func:`exact_value`). The env draws at most one fill per side per step with probability
  ``A exp(-k delta) dt``, so its value differs from ``h(0, 0)`` by a bias of order ``dt``. The
  experiment's ``dt`` is chosen to keep that bias below the simulation's standard error.
- every other baseline on the same criterion: the AS (2008) inventory and symmetric strategies,
  the GLFT (2013) asymptotic quotes and a fixed spread. Each runs once with the parameter that
  the criterion implies (``gamma = 2 phi / sigma^2``: AS and GLFT's running variance penalty
  ``gamma sigma^2 q^2 / 2`` then equals ``phi q^2``; depth ``1/k`` is the risk-neutral optimum)
  and once tuned: the grid point with the best exact value.

All strategies run on the same seeds. The env consumes the same three uniforms per step
whatever the quotes, so the paths share their random numbers. Differences are therefore
paired, and their confidence intervals are much narrower than those of each mean.

    python -m experiments.cj2015.run [--config experiments/cj2015/config.json] [--out DIR]
    python -m experiments.cj2015.run --out experiments/cj2015 --render   # page from its JSON
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from numpy.typing import NDArray

import mmgym
from agents.baselines.as_env_policies import (
    AvellanedaStoikovPolicy,
    CarteaJaimungalPolicy,
    FixedDepthPolicy,
    GLFTPolicy,
    SymmetricPolicy,
)
from agents.baselines.closed_form import cartea_jaimungal_table
from agents.metrics import mean_confidence_interval
from agents.policy import Policy
from experiments.pages import interval
from mmgym.markdown import table

CONFIG_PATH = Path(__file__).resolve().with_name("config.json")


@dataclass(frozen=True)
class Config:
    """The experiment (defaults: ``experiments/cj2015/config.json``)."""

    s0: float = 100.0
    T: float = 1.0
    sigma: float = 2.0
    A: float = 140.0
    k: float = 1.5
    dt: float = 0.0001
    max_depth: float = 100.0
    phi: float = 0.2
    alpha: float = 0.5
    Q: int = 10
    num_paths: int = 50_000
    seed: int = 2015
    dp_inventory: int = 60
    gamma_grid: tuple[float, ...] = (
        0.01,
        0.02,
        0.03,
        0.05,
        0.07,
        0.1,
        0.15,
        0.2,
        0.3,
        0.5,
        0.7,
        1.0,
        1.5,
        2.0,
        3.0,
        5.0,
    )
    depth_grid: tuple[float, ...] = (
        0.5,
        0.667,
        0.8,
        1.0,
        1.2,
        1.4,
        1.6,
        1.8,
        2.0,
        2.3,
        2.6,
        3.0,
        3.5,
        4.0,
    )

    @classmethod
    def load(cls, path: Path | str = CONFIG_PATH, **overrides: Any) -> Config:
        """Read a JSON config (any subset of the fields) and apply ``overrides``."""
        data = {**json.loads(Path(path).read_text()), **overrides}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys are {sorted(names)}")
        for key in ("gamma_grid", "depth_grid"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        return cls(**data)

    @property
    def num_steps(self) -> int:
        """Steps per episode."""
        return round(self.T / self.dt)

    @property
    def gamma(self) -> float:
        """``2 phi / sigma^2``: the risk aversion whose variance penalty equals ``phi q^2``."""
        return 2.0 * self.phi / self.sigma**2

    def env_kwargs(self) -> dict[str, Any]:
        """Parameters of ``mmgym/AvellanedaStoikov-v0`` for this experiment."""
        return {
            "s0": self.s0,
            "T": self.T,
            "sigma": self.sigma,
            "dt": self.dt,
            "A": self.A,
            "k": self.k,
            "max_depth": self.max_depth,
            "reward": "inventory_penalty",
            "phi": self.phi,
            "alpha": self.alpha,
        }


def cj_policy(c: Config) -> CarteaJaimungalPolicy:
    """The exact CJ strategy, its table on the env's own time grid."""
    return CarteaJaimungalPolicy(c.phi, c.alpha, c.A, c.k, c.T, c.Q, num_steps=c.num_steps)


FAMILIES: dict[str, Callable[[Config, float], Policy]] = {
    "glft": lambda c, g: GLFTPolicy(g, c.sigma, c.A, c.k),
    "as_inventory": lambda c, g: AvellanedaStoikovPolicy(g, c.sigma, c.k, c.T),
    "as_symmetric": lambda c, g: SymmetricPolicy(g, c.sigma, c.k, c.T),
    "fixed_spread": lambda c, d: FixedDepthPolicy(d),
}
"""Competitors by family: a policy from the config and the family's one parameter."""


def default_parameter(c: Config, family: str) -> float:
    """The parameter the criterion implies: ``gamma = 2 phi / sigma^2``, or depth ``1/k``."""
    return 1.0 / c.k if family == "fixed_spread" else c.gamma


def grid(c: Config, family: str) -> tuple[float, ...]:
    """The tuning grid of a family."""
    return c.depth_grid if family == "fixed_spread" else c.gamma_grid


def exact_value(policy: Policy, c: Config, q0: int = 0) -> float:
    """Expected criterion of ``policy`` in the discrete-time env, by backward induction.

    The mid is a martingale independent of the fills, so the expected reward of a step with
    depths ``d_b, d_a`` (the env's float32 actions, clipped to ``max_depth``) and fill
    probabilities ``p = min(1, A exp(-k d) dt)`` is ``p_b d_b + p_a d_a - phi dt E[q'^2]``
    (and ``- alpha E[q'^2]`` at the last step), with ``q'`` the inventory after the fills. The
    inventory is truncated to ``|q| <= dp_inventory`` (it stays put at the edge).
    """
    n_steps = c.num_steps
    q = np.arange(-c.dp_inventory, c.dp_inventory + 1, dtype=np.float64)
    up = np.append(q[1:], q[-1])
    down = np.insert(q[:-1], 0, q[0])
    value = np.zeros_like(q)
    obs = np.empty((q.size, 2), dtype=np.float32)
    obs[:, 0] = q
    for n in range(n_steps - 1, -1, -1):
        obs[:, 1] = c.T * (n / n_steps)  # as the env computes the time it shows
        depth = np.clip(policy.act(obs).astype(np.float64), -c.max_depth, c.max_depth)
        p = np.minimum(1.0, c.A * np.exp(-c.k * depth) * c.dt)
        p_up = p[:, 0] * (1.0 - p[:, 1])
        p_down = (1.0 - p[:, 0]) * p[:, 1]
        p_stay = 1.0 - p_up - p_down
        penalty = c.phi * c.dt + (c.alpha if n == n_steps - 1 else 0.0)
        v_up = np.append(value[1:], value[-1])
        v_down = np.insert(value[:-1], 0, value[0])
        value = (
            p[:, 0] * depth[:, 0]
            + p[:, 1] * depth[:, 1]
            - penalty * (p_up * up**2 + p_down * down**2 + p_stay * q**2)
            + p_up * v_up
            + p_down * v_down
            + p_stay * value
        )
    return float(value[c.dp_inventory + q0])


class Sample:
    """Per-path results of one strategy: criterion, wealth, final and peak inventory."""

    def __init__(
        self,
        criterion: NDArray[np.float64],
        wealth: NDArray[np.float64],
        final_q: NDArray[np.float64],
        max_abs_q: NDArray[np.float64],
    ) -> None:
        self.criterion = criterion
        self.wealth = wealth
        self.final_q = final_q
        self.max_abs_q = max_abs_q

    @property
    def mean(self) -> float:
        """Mean criterion."""
        return float(self.criterion.mean())

    @property
    def se(self) -> float:
        """Standard error of the mean criterion."""
        return float(self.criterion.std(ddof=1) / math.sqrt(self.criterion.size))

    @property
    def ci(self) -> tuple[float, float]:
        """95 % confidence interval of the mean criterion (Student's t)."""
        _, low, high = mean_confidence_interval(self.criterion)
        return low, high


def simulate(policy: Policy, c: Config, num_paths: int | None = None) -> Sample:
    """Run ``policy`` on ``num_paths`` env paths (seed ``c.seed``) and sum the rewards."""
    n = c.num_paths if num_paths is None else num_paths
    env = gym.make_vec(
        mmgym.AVELLANEDA_STOIKOV_ID,
        num_envs=n,
        vectorization_mode="vector_entry_point",
        copy=False,
        **c.env_kwargs(),
    )
    obs, _ = env.reset(seed=c.seed)
    total = np.zeros(n)
    max_abs_q = np.zeros(n)
    info: dict[str, Any] = {}
    truncated = np.zeros(n, dtype=np.bool_)
    for _ in range(c.num_steps):
        obs, reward, _, truncated, info = env.step(policy.act(obs))
        total += reward
        np.maximum(max_abs_q, np.abs(info["inventory"]), out=max_abs_q)
    env.close()
    if not truncated.all():
        raise RuntimeError("the episode did not end after T / dt steps")
    return Sample(total, info["wealth"].copy(), info["inventory"].copy(), max_abs_q)


@dataclass
class Entry:
    """One strategy of the league."""

    name: str
    parameter: str
    exact: float
    mean: float
    se: float
    diff: float
    diff_se: float
    diff_ci: tuple[float, float]
    """95 % confidence interval of the paired difference CJ - strategy (Student's t)."""
    std_final_q: float
    max_abs_q: float


@dataclass
class Results:
    """Everything the README reports."""

    config: dict[str, Any]
    h00: float
    cj_exact: float
    bias: float
    convergence: list[tuple[float, float]]
    league: list[Entry]
    seconds: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Results:
        """The results as :func:`write` stored them in ``results.json``."""
        league = [Entry(**{**e, "diff_ci": tuple(e["diff_ci"])}) for e in data["league"]]
        convergence = [(float(dt), float(bias)) for dt, bias in data["convergence"]]
        return cls(**{**data, "league": league, "convergence": convergence})


def tune(c: Config, family: str) -> tuple[float, float]:
    """The grid parameter with the best exact value, and that value."""
    scored = [(exact_value(FAMILIES[family](c, x), c), x) for x in grid(c, family)]
    value, best = max(scored)
    return best, value


def run(c: Config, convergence_dts: tuple[float, ...] = (0.005, 0.001, 0.0005)) -> Results:
    """The whole experiment: closed form, exact discrete values, simulations, league."""
    start = time.perf_counter()
    table = cartea_jaimungal_table(c.phi, c.alpha, c.A, c.k, c.T, c.Q, c.num_steps)
    h00 = float(table.value[0, c.Q])
    cj = cj_policy(c)
    cj_exact = exact_value(cj, c)
    convergence = []
    for dt in (*convergence_dts, c.dt):
        coarse = Config(**{**asdict(c), "dt": dt})
        convergence.append((dt, exact_value(cj_policy(coarse), coarse) - h00))
    cj_sample = simulate(cj, c)
    league = [_entry("cartea_jaimungal", f"Q={c.Q}", cj_exact, cj_sample, cj_sample)]
    for family in FAMILIES:
        label = "depth" if family == "fixed_spread" else "gamma"
        default = default_parameter(c, family)
        best, best_value = tune(c, family)
        candidates = [(family, default, exact_value(FAMILIES[family](c, default), c))]
        candidates.append((f"{family} (tuned)", best, best_value))
        samples: dict[float, Sample] = {}
        for name, x, exact in candidates:
            if x not in samples:  # the tuned parameter may be the default one
                samples[x] = simulate(FAMILIES[family](c, x), c)
            league.append(_entry(name, f"{label}={x:.4g}", exact, samples[x], cj_sample))
    return Results(
        config=asdict(c),
        h00=h00,
        cj_exact=cj_exact,
        bias=cj_exact - h00,
        convergence=convergence,
        league=league,
        seconds=time.perf_counter() - start,
    )


def _entry(name: str, parameter: str, exact: float, sample: Sample, cj: Sample) -> Entry:
    diff = cj.criterion - sample.criterion
    n = diff.size
    mean, low, high = mean_confidence_interval(diff)
    return Entry(
        name=name,
        parameter=parameter,
        exact=exact,
        mean=sample.mean,
        se=sample.se,
        diff=mean,
        diff_se=float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0,
        diff_ci=(low, high),
        std_final_q=float(sample.final_q.std(ddof=1)),
        max_abs_q=float(sample.max_abs_q.max()),
    )


def markdown(r: Results) -> str:
    """The README's results section."""
    c = r.config
    cj = r.league[0]
    quantities = [
        ["closed form h(0, 0)", f"{r.h00:.4f}"],
        ["exact value in the discrete env (DP)", f"{r.cj_exact:.4f}"],
        ["discretisation bias (DP - h)", f"{r.bias:+.4f}"],
        ["simulated mean criterion ± SE", f"{cj.mean:.4f} ± {cj.se:.4f}"],
        ["simulated - h(0, 0), in SE", f"{(cj.mean - r.h00) / cj.se:+.2f}"],
        ["simulated - DP, in SE", f"{(cj.mean - r.cj_exact) / cj.se:+.2f}"],
    ]
    league = []
    for e in r.league:
        if e.name == "cartea_jaimungal":
            diff = "—"
        else:
            diff = f"{e.diff:.3f} {interval(*e.diff_ci, spec='.3f')}"
        league.append([
            e.name, e.parameter, f"{e.exact:.3f}", f"{e.mean:.3f} ± {e.se:.3f}", diff,
            f"{e.std_final_q:.2f}", f"{e.max_abs_q:.0f}",
        ])  # fmt: skip
    league_header = [
        "strategy", "parameter", "exact (DP)", "simulated ± SE", "CJ - strategy [95 % CI]",
        "std(q_T)", "max abs(q)",
    ]  # fmt: skip
    convergence = [[f"{dt:g}", f"{bias:+.4f}"] for dt, bias in r.convergence]
    lines = [
        f"Config: phi={c['phi']}, alpha={c['alpha']}, Q={c['Q']}; A={c['A']}, k={c['k']}, "
        f"sigma={c['sigma']}, T={c['T']}, dt={c['dt']} ({round(c['T'] / c['dt'])} steps), "
        f"{c['num_paths']} paths, seed {c['seed']}; {r.seconds:.0f} s.",
        "",
        table(["quantity", "value"], quantities, align="lr"),
        "",
        "Discretisation bias of the exact discrete value against h(0, 0), by dt:",
        "",
        table(["dt", "DP - h(0, 0)"], convergence, align="rr"),
        "",
        "League on the CJ criterion (the same paths for every strategy; the difference "
        "CJ - strategy is paired, 95 % CI of its mean by Student's t):",
        "",
        table(league_header, league, align="llrrrrr"),
    ]
    return "\n".join(lines)


def write(r: Results, out: Path) -> None:
    """``results.md`` and ``results.json`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(markdown(r) + "\n")
    (out / "results.json").write_text(json.dumps(asdict(r), indent=2) + "\n")


def render(out: Path) -> str:
    """Rewrite ``out/results.md`` from ``out/results.json`` (nothing is simulated)."""
    table = markdown(Results.from_json(json.loads((out / "results.json").read_text())))
    (out / "results.md").write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> None:
    """Run the experiment, print the table, and write it (with JSON) to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG_PATH))
    parser.add_argument("--paths", type=int, default=None, help="override num_paths")
    parser.add_argument("--out", default=None, help="directory for results.md and results.json")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite --out's results.md from its JSON"
    )
    args = parser.parse_args(argv)
    if args.render:
        if args.out is None:
            parser.error("--render needs --out")
        print(render(Path(args.out)))
        return
    overrides = {} if args.paths is None else {"num_paths": args.paths}
    results = run(Config.load(args.config, **overrides))
    print(markdown(results))
    if args.out is not None:
        write(results, Path(args.out))


if __name__ == "__main__":
    main()
