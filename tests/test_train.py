"""SB3 training: config groups, a smoke run's directory and TensorBoard, clean stops."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from faults import EVALUATION_FAULT, fail_evaluating_the_learned_policy
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.baseline_run import run_baseline
from agents.baselines.registry import BASELINES, load_all, make_baseline, settings_of
from agents.config import (
    RUN_TAG_MAX,
    BaselineAgentConfig,
    PPOConfig,
    SACConfig,
    TrainJob,
    run_tag,
    to_job,
)
from agents.evaluation import evaluate_policies
from agents.learned import load_run
from agents.sb3.train import train
from agents.training_run import FinalEvaluationError, TrainingDivergedError
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.scenarios import SCENARIOS, make_params

load_all()
ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "conf")


def _compose(*overrides: str) -> TrainJob:
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return to_job(compose(config_name="train", overrides=list(overrides)), TrainJob)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_env_config_composes(scenario: str) -> None:
    job = _compose(f"env={scenario}")
    assert job.env.scenario == scenario


@pytest.mark.parametrize(
    "option",
    sorted(
        f"{group}={path.stem}"
        for group in ("env", "agent", "train", "logger")
        for path in (ROOT / "conf" / group).glob("*.yaml")
    ),
)
def test_every_option_of_every_training_group_composes_into_a_job(option: str) -> None:
    group, name = option.split("=")
    job = _compose(option)
    if group == "env":
        assert job.env.scenario == name
    elif group == "agent":  # an agent option is named after its algorithm or baseline
        assert job.agent.algo == {"ppo_residual": "ppo"}.get(name, name)
    elif group == "logger":
        assert job.logger.tensorboard == (name != "none")
    else:
        assert job.train.total_steps > 0 and job.train.num_envs > 0


def test_agent_and_train_groups_compose_into_their_schemas() -> None:
    assert isinstance(_compose("agent=ppo").agent, PPOConfig)
    assert isinstance(_compose("agent=sac").agent, SACConfig)
    job = _compose("train=smoke", "train.total_steps=2e6", "seed=3")
    assert job.train.total_steps == 2e6 and job.train.num_envs == 16 and job.seed == 3


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("agent.learning_rat=0.1", "learning_rat"),
        ("train.num_env=8", "num_env"),
        ("agent.n_steps=lots", "n_steps"),
        ("env=moon", "moon"),
    ],
)
def test_bad_config_fails_at_composition_naming_the_key(override: str, key: str) -> None:
    with (
        initialize_config_dir(config_dir=CONF, version_base=None),
        pytest.raises(ConfigCompositionException) as err,
    ):
        compose(config_name="train", overrides=[override])
    assert key in str(err.value) + str(err.value.__cause__)


def test_smoke_run_writes_its_directory_and_tensorboard(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "train=smoke",
        f"hydra.run.dir={run}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tensorboard --logdir" in done.stdout
    for name in ("config.yaml", "model.zip", "vecnormalize.pkl", "summary.json"):
        assert (run / name).is_file(), name
    assert list((run / "checkpoints").glob("*.zip"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] >= 2048
    # Every 1024 steps, and the final evaluation once (not again by the periodic callback).
    assert [h["steps"] for h in summary["eval_history"]] == [1024, summary["steps"]]
    assert set(summary["final_eval"]) == {"learned", "linear_skew"}
    assert all(math.isfinite(v) for v in summary["final_eval"]["learned"].values())
    assert [p.name for p in (run / "tensorboard").iterdir()] == ["sb3"]
    events = EventAccumulator(str(run / "tensorboard" / "sb3"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {
        "train/value_loss",
        "mm/pnl",
        "mm/inventory_abs",
        "mm/funding_pnl",
        "mm/inventory_pnl",
        "mm/adverse_selection",
        "eval/learned/markout_10s",
        "eval/learned/sharpe",
        "eval/linear_skew/pnl",
    }
    assert expected <= tags, expected - tags
    # The last eval/learned/pnl logged equals the summary's final evaluation.
    last = events.Scalars("eval/learned/pnl")[-1].value
    assert last == pytest.approx(summary["final_eval"]["learned"]["pnl"], rel=1e-5, abs=1e-9)


def test_sac_trains_a_few_steps(tmp_path: Path) -> None:
    job = _compose(
        "agent=sac",
        "train=smoke",
        "train.total_steps=256",
        "agent.learning_starts=64",
        "agent.buffer_size=1000",
        "train.eval_every_steps=0",
        "train.checkpoint_every_steps=0",
    )
    summary = train(job, tmp_path / "sac")
    assert summary["algo"] == "sac" and summary["steps"] >= 256


def test_exploding_learning_rate_stops_cleanly_with_the_losses(tmp_path: Path) -> None:
    job = _compose(
        "train=smoke", "agent.learning_rate=1e12", "train.eval_every_steps=0",
        "train.checkpoint_every_steps=0", "train.total_steps=8192",
    )  # fmt: skip
    with pytest.raises(
        TrainingDivergedError, match=r"training stopped after \d+ steps: .*last losses"
    ):
        train(job, tmp_path / "nan")


def test_multirun_trains_one_run_per_combination(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "-m",
        "seed=0,1",
        "env=calm,volatile",
        "train=smoke",
        "train.total_steps=512",
        "train.eval_every_steps=0",
        "train.checkpoint_every_steps=0",
        f"hydra.sweep.dir={sweep}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if (p / "summary.json").is_file())
    assert len(runs) == 4
    combos = set()
    for name in runs:  # <job number>-<its overrides> (conf/hydra/default.yaml)
        summary = json.loads((sweep / name / "summary.json").read_text())
        assert f"env={summary['scenario']}" in name and f"seed={summary['seed']}" in name
        combos.add((summary["scenario"], summary["seed"]))
    assert combos == {(e, s) for e in ("calm", "volatile") for s in (0, 1)}


def test_runs_land_under_runs_named_by_their_overrides_and_logger_none_logs_nothing(
    tmp_path: Path,
) -> None:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "train=smoke",
        "train.total_steps=256",
        "train.eval_every_steps=0",
        "train.checkpoint_every_steps=0",
        "logger=none",
        "seed=5",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = (tmp_path / "runs" / "train").iterdir()
    overrides = (
        "logger=none,seed=5,train.checkpoint_every_steps=0,train.eval_every_steps=0,"
        "train.total_steps=256,train=smoke"
    )
    assert run.name.endswith("-" + overrides)
    assert (run / "summary.json").is_file() and (run / "model.zip").is_file()
    assert not (run / "tensorboard").exists()
    assert not list(run.glob("progress.*"))


def test_csv_logger_writes_the_market_scalars_to_progress_csv(tmp_path: Path) -> None:
    import pandas as pd

    job = _compose(
        "train=smoke", "logger=csv", "train.eval_every_steps=0", "train.checkpoint_every_steps=0",
        "train.num_envs=8", "train.total_steps=2048", "agent.n_steps=64", "agent.batch_size=256",
    )  # fmt: skip
    train(job, tmp_path / "csv")
    progress = pd.read_csv(tmp_path / "csv" / "progress.csv")
    rollouts = progress.dropna(subset=["mm/pnl"])
    assert len(rollouts) == 2048 // (8 * 64)
    for tag in ("mm/pnl", "mm/adverse_selection", "mm/inventory_abs", "train/value_loss"):
        assert tag in progress.columns, tag
    assert rollouts["mm/adverse_selection"].notna().all()
    assert (tmp_path / "csv" / "tensorboard" / "sb3").is_dir()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("logger.formats=[xml]", "logger.formats: unknown ['xml']"),
        ("logger.markout_seconds=0", "logger.markout_seconds must be > 0"),
        ("train.total_steps=0", "train.total_steps must be at least 1 env step, got 0"),
        ("train.total_steps=-5", "train.total_steps must be at least 1 env step, got -5"),
        ("train.total_steps=0.5", "train.total_steps must be at least 1 env step, got 0.5"),
        ("train.total_steps=nan", "train.total_steps must be at least 1 env step, got nan"),
        ("train.num_envs=0", "train.num_envs must be >= 1, got 0"),
        ("train.eval_num_envs=0", "train.eval_num_envs must be >= 1, got 0"),
        ("train.episode_seconds=0", "train.episode_seconds must be > 0, got 0"),
        ("train.eval_every_steps=-1", "train.eval_every_steps must be >= 0 (0: only at the end)"),
        ("train.checkpoint_every_steps=-1", "train.checkpoint_every_steps must be >= 0 (0: none)"),
        ("train.torch_threads=-1", "train.torch_threads must be >= 0 (0: torch's default)"),
        ("train.eval_baselines=[linear_skw]", "train.eval_baselines: unknown ['linear_skw']"),
    ],
)
def test_bad_settings_are_refused_at_composition_naming_them(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _compose(override)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=18446744073709551616", "seed must be an integer in {}, got 18446744073709551616"),
        ("seed=-1", "seed must be an integer in {}, got -1"),
        ("train.eval_seed=4294967296", "train.eval_seed must be an integer in {}, got 4294967296"),
    ],
)
def test_out_of_range_seeds_are_refused_at_composition_as_typed(
    override: str, message: str
) -> None:
    # Envs are reset with seed x num_envs (16 here): the error shows the seed as typed.
    with pytest.raises(ValueError, match=re.escape(message.format("[0, 4294967295]"))):
        _compose("train=smoke", override)


@pytest.mark.parametrize("group", ["agent", "env", "train", "logger"])
def test_schemas_are_not_options_of_the_config_groups(group: str) -> None:
    option = {"agent": "ppo_schema", "env": "env_schema"}.get(group, f"{group}_schema")
    with (
        initialize_config_dir(config_dir=CONF, version_base=None),
        pytest.raises(ConfigCompositionException) as err,
    ):
        compose(config_name="train", overrides=[f"{group}={option}"])
    message = str(err.value)
    assert f"Could not find '{group}/{option}'" in message
    listed = message.split(f"Available options in '{group}':")[1].split("Config search path")[0]
    assert listed.strip() and "schema" not in listed


def test_run_tags_keep_whole_overrides_and_no_shell_special_characters() -> None:
    assert run_tag([]) == ""
    assert run_tag(["seed=3", "env=volatile"]) == "-env=volatile,seed=3"  # sorted, as Hydra's
    tag = run_tag([
        "evaluation.policies=[a,b]", "x='one two'", 'y="$HOME"', "z={a:1}", "w=(1)", "v=a*b?",
        "u=a;b&c|d<e>f!g`h`",
    ])  # fmt: skip
    assert not set(tag) & set("[]{}()*?$!'\"`&;|<> "), tag
    assert tag.startswith("-evaluation.policies=_a,b_,u=a_b_c_d_e_f_gh,")  # quotes dropped
    overrides = [f"agent.setting_number_{i}={i * 1000}" for i in range(12)]
    tag = run_tag(overrides)
    assert len(tag) <= RUN_TAG_MAX + 1
    kept = tag[1:].split(",")
    assert kept[-1].startswith("and_") and kept[-1].endswith("_more")
    assert all(item in overrides for item in kept[:-1])  # whole overrides, none cut
    assert len(kept) - 1 + int(kept[-1].split("_")[1]) == len(overrides)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_is_an_agent_config_with_its_own_defaults(name: str) -> None:
    agent = _compose(f"agent={name}").agent
    assert isinstance(agent, BaselineAgentConfig) and agent.algo == name
    assert agent.settings() == settings_of(name)
    assert agent.label() == name
    make_baseline(name, make_params("calm"), **agent.settings())


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["agent=glft", "agent.gama=1"], "gama"),
        (["agent=adaptive", "agent.vol_cap=high"], "vol_cap"),
        (["agent=linear_skew", "agent.learning_rate=1e-3"], "learning_rate"),
    ],
)
def test_bad_baseline_settings_fail_at_composition(overrides: list[str], key: str) -> None:
    with (
        initialize_config_dir(config_dir=CONF, version_base=None),
        pytest.raises(ConfigCompositionException) as err,
    ):
        compose(config_name="train", overrides=overrides)
    assert key in str(err.value) + str(err.value.__cause__)


def test_a_baseline_run_is_its_evaluation_in_a_learners_layout(tmp_path: Path) -> None:
    job = _compose("agent=adaptive", "train=smoke", "agent.base_half_spread_ticks=3")
    label = "adaptive[base_half_spread_ticks=3.0]"
    assert job.agent.label() == label
    summary = run_baseline(job, tmp_path / "run")
    assert set(summary["final_eval"]) == {label, "linear_skew"}
    # The settings reach the baseline: the same evaluation of a directly built one, exactly.
    params = make_params("calm", episode_seconds=job.train.episode_seconds)
    direct = make_baseline("adaptive", params, base_half_spread_ticks=3.0)
    default = make_baseline("adaptive", params)
    t = job.train
    ours = evaluate_policies({"a": direct, "b": default}, job, t.eval_num_envs, t.eval_seed)
    assert summary["final_eval"][label] == ours["a"]
    assert ours["a"] != ours["b"]
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "summary.json").is_file()
    events = EventAccumulator(str(run / "tensorboard" / "baseline"))
    events.Reload()
    steps = [e.step for e in events.Scalars(f"eval/{label}/pnl")]
    assert steps == [0, int(t.total_steps)]
    assert events.Scalars(f"eval/{label}/pnl")[-1].value == pytest.approx(ours["a"]["pnl"])


@pytest.mark.parametrize("interval", [3.0, 4.0])
def test_metric_names_follow_the_evaluations_rounded_markout_horizon(
    tmp_path: Path, interval: float
) -> None:
    # 10 s of markout is 3 decisions (9 s) at 3 s and 2 (8 s) at 4 s: the evaluation names the
    # horizon it measured, and training must report under that name instead of failing.
    job = _compose(
        "train=smoke", f"+env.overrides.decision_interval={interval}", "train.total_steps=256",
        "train.eval_every_steps=0", "train.checkpoint_every_steps=0",
    )  # fmt: skip
    summary = train(job, tmp_path / "run")
    horizon = round(10.0 / interval) * interval
    expected = {"pnl", "sharpe", "max_drawdown", "inventory_abs_mean", f"markout_{horizon:g}s"}
    assert set(summary["final_eval"]["learned"]) == expected
    assert set(summary["final_eval"]["linear_skew"]) == expected


def test_a_failed_final_evaluation_keeps_the_trained_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agents.sb3.train as sb3_train

    fail_evaluating_the_learned_policy(monkeypatch, sb3_train)
    job = _compose(
        "train=smoke", "train.total_steps=256", "train.eval_every_steps=0",
        "train.checkpoint_every_steps=0",
    )  # fmt: skip
    run = tmp_path / "run"
    with pytest.raises(FinalEvaluationError) as err:
        train(job, run)
    message = str(err.value)
    assert EVALUATION_FAULT in message
    assert str(run / "model.zip") in message and str(run / "vecnormalize.pkl") in message
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_eval"] is None and summary["steps"] >= 256
    # The saved model is the trained one, usable as any run's.
    policy = load_run(run)
    obs = np.zeros((2, *PerpMMVectorEnv(num_envs=1).single_observation_space.shape), np.float32)
    assert policy.act(obs).shape == (2, 5)


@pytest.mark.parametrize("agent", ["ppo", "sac"])
def test_the_progress_bar_counts_to_the_steps_sb3_really_runs(agent: str) -> None:
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.sb3.callbacks import ProgressBar
    from agents.sb3.train import make_model
    from agents.sb3.vec_env import NativeVecEnv

    extra = ["agent.learning_starts=0", "agent.train_freq=3"] if agent == "sac" else []
    extra += ["agent.batch_size=256"]
    job = _compose(f"agent={agent}", "train=smoke", "train.num_envs=4", *extra)
    venv = VecNormalize(NativeVecEnv(PerpMMVectorEnv(num_envs=4, episode_seconds=30.0)))
    model = make_model(job, venv)
    # PPO runs whole rollouts (128 steps x 4 envs = 512), SAC whole train_freq rounds (3 x 4).
    bar = ProgressBar(100)
    model.learn(total_timesteps=100, callback=bar)
    assert model.num_timesteps == (512 if agent == "ppo" else 108)
    assert bar.bar.total == bar.bar.n == model.num_timesteps
