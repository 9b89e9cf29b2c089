"""The evaluation harness: config validation, output schema, TensorBoard read back, exact cases."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from markdown_tables import assert_tables_render
from omegaconf.errors import ValidationError
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.config import EvaluateJob, to_job
from agents.evaluation import EvaluationConfig, evaluate, markdown_report, summarise

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "conf")


class NoQuotes:
    """Places no orders and never hedges."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        return -np.ones((obs.shape[0], 5), dtype=np.float32)

    def reset(self, mask: np.ndarray | None = None) -> None:
        return None


def test_default_config_composes_into_the_schema() -> None:
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="evaluate")
    job = to_job(cfg, EvaluateJob)
    assert job.evaluation.num_envs == 64
    assert "calm" in job.evaluation.scenarios


def test_misspelt_key_fails_at_composition_naming_it() -> None:
    with (
        initialize_config_dir(config_dir=CONF, version_base=None),
        pytest.raises(ConfigCompositionException) as err,
    ):
        compose(config_name="evaluate", overrides=["evaluation.num_env=8"])
    assert "Key 'num_env' not in 'EvaluationConfig'" in str(err.value.__cause__)


def test_appended_unknown_key_is_refused_before_compute() -> None:
    # Hydra's "+key=value" appends even to a structured config and to_object drops it silently.
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="evaluate", overrides=["+evaluation.num_env=8"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['num_env'\] in evaluation"):
        to_job(cfg, EvaluateJob)


def test_wrong_type_fails_at_composition_naming_the_key() -> None:
    with (
        initialize_config_dir(config_dir=CONF, version_base=None),
        pytest.raises(ConfigCompositionException) as err,
    ):
        compose(config_name="evaluate", overrides=["evaluation.num_envs=many"])
    assert isinstance(err.value.__cause__, ValidationError)
    assert "num_envs" in str(err.value.__cause__)


@pytest.mark.parametrize("seed", ["-1", "18446744073709551616"])
def test_out_of_range_seeds_are_refused_at_composition_as_typed(seed: str) -> None:
    # The env is reset with seed x num_envs: the error names the seed as typed.
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose(config_name="evaluate", overrides=[f"evaluation.seeds=[0,{seed}]"])
    message = f"evaluation.seeds must be integers in [0, 4294967295], got {seed}"
    with pytest.raises(ValueError, match=re.escape(message)):
        to_job(cfg, EvaluateJob)


def test_unknown_policy_or_scenario_fails_before_compute() -> None:
    with pytest.raises(ValueError, match=r"unknown policy 'best'.*linear_skew"):
        evaluate(EvaluationConfig(policies=["best"], scenarios=["calm"], num_envs=1))
    with pytest.raises(ValueError, match=r"unknown scenario 'moon'"):
        evaluate(EvaluationConfig(policies=["linear_skew"], scenarios=["moon"], num_envs=1))


def test_a_policy_that_never_quotes_makes_exactly_nothing() -> None:
    config = EvaluationConfig(
        policies=["idle"], scenarios=["volatile"], seeds=[0], num_envs=4, episode_seconds=60.0
    )
    episodes, bands = evaluate(config, factories={"idle": lambda params: NoQuotes()})
    assert len(episodes) == 4 and (episodes["steps"] == 60).all()
    for col in ("pnl", "pnl_spread", "pnl_inventory", "pnl_fees", "pnl_funding", "volume"):
        assert (episodes[col] == 0.0).all(), col
    assert (episodes["markout_1s"] == 0.0).all()
    assert (bands[["q05", "q50", "q95"]].to_numpy() == 0.0).all()


def test_pnl_equals_its_decomposition_and_summary_ci_is_the_t_interval() -> None:
    config = EvaluationConfig(
        policies=["linear_skew"], scenarios=["calm"], seeds=[0, 1], num_envs=6,
        episode_seconds=120.0,
    )  # fmt: skip
    episodes, _ = evaluate(config)
    parts = episodes[
        ["pnl_spread", "pnl_inventory", "pnl_fees", "pnl_funding", "pnl_hedge", "pnl_liquidation"]
    ].sum(axis=1)
    np.testing.assert_allclose(episodes["pnl"], parts, rtol=0, atol=1e-9)
    summary = summarise(episodes)
    pnl = episodes["pnl"].to_numpy()
    se = pnl.std(ddof=1) / np.sqrt(pnl.size)
    row = summary.iloc[0]
    assert row["episodes"] == 12
    assert row["pnl_ci_low"] == pytest.approx(pnl.mean() - 2.201 * se, rel=1e-3)  # t_0.975,11
    assert row["cvar_5"] == pytest.approx(np.sort(pnl)[0])  # 5 % of 12 is below one episode


def test_one_episode_per_policy_reports_no_ci_rather_than_a_zero_width_one() -> None:
    config = EvaluationConfig(
        policies=["linear_skew"], scenarios=["calm"], seeds=[0], num_envs=1, episode_seconds=10.0
    )
    episodes, _ = evaluate(config)
    summary = summarise(episodes)
    assert np.isnan(summary.iloc[0]["pnl_ci_low"]) and np.isnan(summary.iloc[0]["pnl_ci_high"])
    report = markdown_report(summary, config)
    assert "[n/a (n=1)]" in report and "nan" not in report


def test_script_writes_tables_report_plots_and_tensorboard(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "evaluate.py"),
        "evaluation.policies=[fixed_spread,linear_skew]",
        "evaluation.scenarios=[calm]",
        "evaluation.seeds=[0]",
        "evaluation.num_envs=4",
        "evaluation.episode_seconds=30",
        f"hydra.run.dir={out}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tensorboard --logdir" in done.stdout
    episodes = pd.read_parquet(out / "episodes.parquet")
    expected = {"scenario", "policy", "seed", "env", "pnl", "sharpe", "sortino", "max_drawdown"}
    assert expected <= set(episodes.columns)
    assert {"markout_1s", "markout_10s", "markout_60s", "time_at_limit", "fill_rate"} <= set(
        episodes.columns
    )
    assert len(episodes) == 8
    for name in ("report.md", "summary.csv", "equity_bands.png", "inventory.png"):
        assert (out / name).stat().st_size > 0, name
    assert_tables_render((out / "report.md").read_text(), "report.md")
    assert (out / "pnl_decomposition.png").read_bytes()[:4] == b"\x89PNG"
    events = EventAccumulator(str(out / "tensorboard" / "calm"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"eval/linear_skew/pnl", "eval/fixed_spread/sharpe", "eval/linear_skew/cvar_5"} <= tags
    summary = pd.read_csv(out / "summary.csv")
    logged = events.Scalars("eval/linear_skew/pnl")[0].value
    assert logged == pytest.approx(summary.set_index("policy").loc["linear_skew", "pnl"], rel=1e-6)
