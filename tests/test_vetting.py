"""Vetting (agents.deploy.vetting, mmgym-vet): the checks, the paired test, the report and its
contract with export, exit codes, and common random numbers. Small budgets: the whole suite at
4 seeds x 64 envs with half-minute episodes."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from markdown_tables import assert_tables_render
from numpy.typing import NDArray

from agents.config import VetJob, to_job
from agents.deploy.export import ExportError, export_bundle
from agents.deploy.risk import RiskLimits
from agents.deploy.vetting import (
    CHECKS,
    Thresholds,
    VetConfig,
    VetResult,
    paired_one_sided,
    vet,
)
from agents.deploy.vetting.checks import evaluate_checks, verdict
from agents.deploy.vetting.policies import VettedPolicy, resolve_policy
from agents.deploy.vetting.runner import run_suite
from agents.evaluation.harness import run_batch
from agents.market import market_of

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "conf")
FAST = ["vet.episode_seconds=30", "progress=false"]
"""The demo suite (every scenario, 4 seeds x 64 envs) with 30-second episodes."""


def _job(*overrides: str) -> VetJob:
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return to_job(compose(config_name="vet", overrides=["vet=demo", *overrides]), VetJob)


@pytest.fixture(scope="module")
def adaptive(tmp_path_factory: pytest.TempPathFactory) -> VetResult:
    """``adaptive`` vetted with the demo thresholds (every scenario, 4 x 64 episodes of 30 s)."""
    job = _job("policy=baseline:adaptive", *FAST)
    out = tmp_path_factory.mktemp("vet") / "adaptive"
    return vet(job.policy, job.vet, job.risk.to_limits(), out=out, progress=False)


def test_a_baseline_passes_the_demo_thresholds(adaptive: VetResult) -> None:
    assert adaptive.verdict == "pass", [(c.name, c.scenario, c.value) for c in adaptive.failed]
    scenarios = adaptive.config.scenarios
    assert len(scenarios) == 7 and len(adaptive.checks) == len(CHECKS) * 7
    for c in adaptive.checks:  # the kill switch is judged in calm and volatile only
        applies = c.name != "kill_switch_trips" or c.scenario in ("calm", "volatile")
        assert (c.passed is not None) == applies, (c.name, c.scenario)
    episodes = adaptive.suite.episodes
    assert set(episodes["policy"]) == {"adaptive", "linear_skew", "cartea_jaimungal"}
    per = episodes.groupby(["scenario", "policy"]).size()
    assert (per == 4 * 64).all()  # seeds x envs for every policy in every scenario


def test_the_default_suite_is_every_scenario_of_conf_env() -> None:
    conf_env = {p.stem for p in (ROOT / "conf" / "env").glob("*.yaml")}
    job = _job("policy=baseline:adaptive", "vet=default")
    assert set(job.vet.scenarios) == conf_env
    assert len(job.vet.seeds) >= 4 and job.vet.num_envs >= 64
    assert job.risk.to_limits() == RiskLimits()  # the production limits of conf/risk/default


def test_vetting_json_follows_the_contract(adaptive: VetResult) -> None:
    record = json.loads(adaptive.record.read_text())
    assert record["schema_version"] == 1 and record["verdict"] == "pass"
    assert record["policy"] == {
        "kind": "baseline", "path": "adaptive", "name": "adaptive", "files_sha256": {}
    }  # fmt: skip
    assert {"commit", "mmgym_version", "thresholds", "suite", "risk_limits"} <= set(record)
    assert set(record["scenarios"]) == set(adaptive.config.scenarios)
    for entry in record["scenarios"].values():
        assert len(entry["params_sha256"]) == 64
    assert len({e["params_sha256"] for e in record["scenarios"].values()}) == 7
    assert len(record["checks"]) == len(adaptive.checks)
    for check in record["checks"]:
        assert {"name", "scenario", "value", "threshold", "unit", "passed"} <= set(check)
        assert check["unit"]
    pnl = record["results"]["calm"]["adaptive"]["summary"]["pnl"]
    assert pnl == pytest.approx(
        adaptive.suite.episodes.query("scenario == 'calm' and policy == 'adaptive'")["pnl"].mean()
    )


def test_the_report_renders_with_the_verdict_table_first(adaptive: VetResult) -> None:
    text = adaptive.report.read_text()
    assert_tables_render(text, "vetting.md")
    first_table = text.split("\n| ", 1)[1].splitlines()[0]
    assert first_table.startswith("check | scenario(s) | value | threshold | unit | result")
    for spec in CHECKS.values():
        assert spec.unit in text
    for name in ("paired_differences.png", "equity_bands.png"):
        assert (adaptive.out_dir / name).read_bytes()[:4] == b"\x89PNG"
        assert f"]({name})" in text


def test_common_random_numbers_give_every_policy_the_same_fair_price_path(
    adaptive: VetResult,
) -> None:
    # In calm, every baseline's fair-price path is the policy's at every step compared.
    steps = adaptive.suite.markets["calm"].params.decisions_per_episode
    for name, entry in adaptive.suite.crn["calm"].items():
        assert entry["mismatched_envs"] == 0, name
        assert entry["envs"] == 4 * 64 and entry["steps"] == 4 * 64 * steps
    # And independently of the recorder: two policies, one seed, the same markets.
    market = market_of("volatile", 20.0, {})
    paths = []
    for name in ("linear_skew", "fixed_spread"):
        from agents.baselines.registry import make_baseline

        seen: list[NDArray[np.float64]] = []

        def observe(t: int, info: dict[str, Any], active: NDArray[np.bool_]) -> None:
            seen.append(np.stack([info["fair_price"], info["mark"]]).copy())  # noqa: B023

        policy = make_baseline(name, market.params)
        run_batch(policy, market.params, 64, 7, [], scenario="volatile",
                  overrides=market.overrides, limits=RiskLimits(), observer=observe)  # fmt: skip
        paths.append(np.array(seen))
    assert np.array_equal(paths[0][:, 0], paths[1][:, 0])  # the fair price, bit for bit
    assert np.array_equal(paths[0][0, 1], paths[1][0, 1])  # the first mark too


# --- the paired test ----------------------------------------------------------------------------


def test_paired_one_sided_t_matches_a_hand_computed_example() -> None:
    # d = (1, -2, -3, -4): mean -2, sd^2 = (9 + 0 + 1 + 4) / 3 = 14/3, se = sqrt(14/3 / 4).
    t95_3 = 2.353363434801823  # Student's t, 95 % one-sided, 3 df (tables: 2.353)
    test = paired_one_sided([1.0, 0.0, -1.0, -2.0], [0.0, 2.0, 2.0, 2.0])
    se = math.sqrt(14.0 / 3.0 / 4.0)
    assert test.mean == pytest.approx(-2.0) and test.se == pytest.approx(se)
    assert test.t == pytest.approx(-2.0 / se) and test.df == 3
    assert test.upper_bound == pytest.approx(-2.0 + t95_3 * se)  # 0.542 > 0: not worse
    assert test.p_value == pytest.approx(0.0805, abs=5e-4) and not test.worse
    # d = (-1, -2, -3, -4): mean -2.5, sd^2 = 5/3, upper bound -2.5 + 2.353 x 0.6455 < 0.
    worse = paired_one_sided([-1.0, -2.0, -3.0, -4.0], [0.0] * 4)
    assert worse.upper_bound == pytest.approx(-2.5 + t95_3 * math.sqrt(5.0 / 3.0 / 4.0))
    assert worse.worse and worse.p_value == pytest.approx(0.01522, abs=5e-5)
    # A margin moves the boundary: worse by 2.5 is within a margin of 3.
    assert not paired_one_sided([-1.0, -2.0, -3.0, -4.0], [0.0] * 4, margin=3.0).worse


def test_the_paired_test_says_when_it_cannot_be_computed() -> None:
    one = paired_one_sided([1.0], [2.0])
    assert not one.computable and not one.worse and math.isnan(one.upper_bound)
    assert "cannot be computed" in one.note and "one seed" in one.note
    same = paired_one_sided([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])  # a policy against itself
    assert same.computable and not same.worse and "zero variance" in same.note
    shifted = paired_one_sided([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    assert shifted.worse and shifted.p_value == 0.0


# --- bad policies fail the check they should ----------------------------------------------------


class _Fixed:
    """A policy with one fixed action (five components per perp)."""

    def __init__(self, action: list[float], num_assets: int) -> None:
        self.action = np.tile(np.asarray(action, dtype=np.float32), num_assets)

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        return np.tile(self.action, (obs.shape[0], 1))

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        pass


def _vet_fixed(action: list[float], seconds: float) -> tuple[str, list[Any]]:
    config = VetConfig(
        scenarios=["calm"], episode_seconds=seconds, baselines=["linear_skew", "adaptive"],
        thresholds=Thresholds(kill_switch_scenarios=["calm"]),
    )  # fmt: skip
    policy = VettedPolicy(
        "baseline", "fixed", "fixed", {}, None, lambda p: _Fixed(action, p.num_assets)
    )
    suite = run_suite(policy, config, RiskLimits(), progress=False)
    checks = evaluate_checks(suite, config)
    return verdict(checks), checks


def _status(checks: list[Any]) -> dict[str, bool | None]:
    return {c.name: c.passed for c in checks}


def test_a_policy_that_always_crosses_the_book_fails_on_limiter_denials() -> None:
    # skew +1 with the smallest half-spread puts the bid through the ask: CROSSES_BOOK.
    result, checks = _vet_fixed([1.0, -1.0, 0.0, 0.0, -1.0], seconds=8.0)
    status = _status(checks)
    assert result == "fail" and status["limiter_denials"] is False
    rate = next(c.value for c in checks if c.name == "limiter_denials")
    assert rate >= 3600.0  # at least one denial per decision: 3600 per account-hour


def test_a_one_sided_policy_fails_on_time_at_the_inventory_limit() -> None:
    # The largest bid, at the smallest half-spread, and no ask: it buys until the limiter's
    # soft position limit and stays there.
    result, checks = _vet_fixed([0.0, -1.0, 1.0, -1.0, -1.0], seconds=40.0)
    status = _status(checks)
    assert result == "fail" and status["time_at_inventory_limit"] is False
    assert status["max_inventory"] is True  # the limiter holds the hard limit
    assert status["no_liquidation"] is True


# --- vetting.json and export ------------------------------------------------------------------


def test_a_passed_run_exports_and_a_failed_one_is_refused(ppo_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(ppo_run, run)
    common = ["vet.scenarios=[calm]", "vet.thresholds.kill_switch_scenarios=[calm]", *FAST]
    loose = [
        "vet.thresholds.pnl_margin=1e9",
        "vet.thresholds.cvar_margin=1e9",
        "vet.thresholds.max_denials_per_hour=1e9",
        "vet.thresholds.max_time_at_limit=1",
    ]
    job = _job(f"policy=run:{run}", *common, *loose)
    passed = vet(job.policy, job.vet, job.risk.to_limits(), progress=False)
    assert passed.verdict == "pass" and passed.out_dir == run / "vetting"
    record = json.loads((run / "vetting" / "vetting.json").read_text())
    assert record["policy"]["kind"] == "run"
    assert set(record["policy"]["files_sha256"]) >= {"model.zip", "vecnormalize.pkl"}
    bundle = export_bundle(run, tmp_path / "bundle")
    assert bundle.manifest.vetting.verdict == "pass" and not bundle.manifest.vetting.forced
    assert (tmp_path / "bundle" / "vetting.md").read_text() == passed.report.read_text()

    job = _job(f"policy=run:{run}", *common, *loose, "vet.thresholds.max_inventory=-1")
    failed = vet(job.policy, job.vet, job.risk.to_limits(), progress=False)
    assert failed.verdict == "fail" and {c.name for c in failed.failed} == {"max_inventory"}
    with pytest.raises(ExportError, match="failed vetting"):
        export_bundle(run, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    forced = export_bundle(run, tmp_path / "forced", force=True)
    assert forced.manifest.vetting.verdict == "fail" and forced.manifest.vetting.forced


def test_a_bundle_is_vetted_and_identified_by_its_files(ppo_bundle: Path, tmp_path: Path) -> None:
    vetted = resolve_policy(f"bundle:{ppo_bundle}")
    assert vetted.kind == "bundle" and vetted.name == "ppo"
    assert set(vetted.files_sha256) == {p.name for p in ppo_bundle.iterdir()}
    job = _job(f"policy=bundle:{ppo_bundle}", "vet.scenarios=[calm]",
               "vet.thresholds.kill_switch_scenarios=[calm]", *FAST)  # fmt: skip
    result = vet(job.policy, job.vet, job.risk.to_limits(), out=tmp_path / "v", progress=False)
    record = json.loads(result.record.read_text())
    assert record["policy"]["kind"] == "bundle" and record["policy"]["path"] == str(ppo_bundle)
    assert record["policy"]["files_sha256"] == vetted.files_sha256
    assert sorted(p.name for p in ppo_bundle.iterdir()) == sorted(vetted.files_sha256)  # as it was
    tampered = tmp_path / "tampered"
    shutil.copytree(ppo_bundle, tampered)
    data = bytearray((tampered / "policy.onnx").read_bytes())
    data[-1] ^= 0xFF
    (tampered / "policy.onnx").write_bytes(bytes(data))
    vet_script = _load_script()
    assert vet_script.main([f"policy=bundle:{tampered}", *FAST]) == 2


# --- the console entry ----------------------------------------------------------------------


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location("vet_script", ROOT / "scripts" / "vet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _console(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "mmgym-vet"
    command = [str(exe)] if exe.exists() else [sys.executable, str(ROOT / "scripts" / "vet.py")]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def test_exit_codes_of_the_console_entry(tmp_path: Path) -> None:
    small = ["vet.scenarios=[calm]", "vet.thresholds.kill_switch_scenarios=[calm]",
             "vet.baselines=[adaptive]", *FAST]  # fmt: skip
    ok = _console("policy=baseline:adaptive", *small, f"out={tmp_path / 'ok'}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "verdict: pass" in ok.stdout and (tmp_path / "ok" / "vetting.json").is_file()
    assert_tables_render(ok.stdout, "mmgym-vet output")
    bad = _console("policy=baseline:fixed_spread", *small, "vet.thresholds.max_inventory=0.5",
                   f"out={tmp_path / 'bad'}")  # fmt: skip
    assert bad.returncode == 1, bad.stderr[-2000:]
    assert "failed checks: max |inventory|" in bad.stdout
    assert json.loads((tmp_path / "bad" / "vetting.json").read_text())["verdict"] == "fail"
    unknown = _console("policy=baseline:nope", *small)
    assert unknown.returncode == 2 and "unknown baseline 'nope'" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["policy=run:/no/such/run"], "/no/such/run is not a directory"),
        (["policy=adaptive"], "give run:<training run dir>, baseline:<name> or bundle:"),
        (["policy=baseline:adaptive", "vet.seeds=[1,2,3]"], "at least 4 distinct seeds"),
        (["policy=baseline:adaptive", "vet.num_envs=8"], "vet.num_envs must be at least 64"),
        (["policy=baseline:adaptive", "risk=none"], "risk=none is not allowed"),
        (["policy=baseline:adaptive", "vet.scenarios=[calm,moon]"], "unknown scenario 'moon'"),
        (["policy=baseline:adaptive", "+vet.colour=1"], "unknown key(s) ['colour']"),
    ],
)
def test_bad_input_exits_2_naming_what_is_wrong(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _load_script().main([*args, "progress=false"]) == 2
    assert message in capsys.readouterr().err


def test_a_scenario_can_change_a_threshold_and_a_wrong_one_is_named() -> None:
    config = VetConfig(scenario_thresholds={"flash_crash": {"max_drawdown": 1500.0}})
    assert config.thresholds_for("flash_crash").max_drawdown == 1500.0
    assert config.thresholds_for("calm").max_drawdown == Thresholds().max_drawdown
    with pytest.raises(ValueError, match=r"scenario_thresholds.calm: unknown \['max_drawdwn'\]"):
        VetConfig(scenario_thresholds={"calm": {"max_drawdwn": 1.0}})


def test_every_scenario_runs_at_the_policys_interface() -> None:
    from agents.deploy.vetting.policies import params_sha256, scenario_market
    from mmgym.scenarios import make_params

    trained = make_params("calm", max_quote_size=1.0)  # a one-perp policy, smaller quotes
    market = scenario_market("cross_margin_event", 30.0, {"maker_fee": 0.0}, trained)
    assert market.params.num_assets == 1 and market.params.max_quote_size == 1.0
    assert market.params.maker_fee == 0.0 and market.params.episode_seconds == 30.0
    assert market.params.crowd_leverage == make_params("cross_margin_event").crowd_leverage
    assert market.overrides == {"maker_fee": 0.0, "num_assets": 1, "max_quote_size": 1.0,
                                "episode_seconds": 30.0}  # fmt: skip
    baseline = scenario_market("cross_margin_event", 30.0, {}, None)  # a baseline acts anywhere
    assert baseline.params.num_assets == 3
    assert params_sha256(market.params) != params_sha256(baseline.params)
    assert params_sha256(baseline.params) == params_sha256(
        scenario_market("cross_margin_event", 30.0, {}, None).params
    )
