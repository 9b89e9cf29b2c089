"""Export to bundles: ONNX parity with SB3, the run's own policy on the env, the exporter,
vetting refusals, baselines, atomic writes and the ``mmgym-export`` entry point."""

from __future__ import annotations

import hashlib
import json
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from omegaconf import OmegaConf

from agents.baselines.adaptive import AdaptivePolicy
from agents.baselines.registry import make_baseline, settings_of
from agents.deploy.bundle import Bundle, load_bundle
from agents.deploy.export import (
    PARITY_OBSERVATIONS,
    PARITY_TOLERANCE,
    ExportError,
    export_baseline,
    export_bundle,
    parity_observations,
    read_normalisation,
)
from agents.deploy.onnx_policy import OnnxPolicy
from agents.learned import SB3Policy, load_run
from agents.residual import ResidualPolicy
from mmgym.envs.perp_mm import PerpMMVectorEnv
from mmgym.scenarios import make_params

ROOT = Path(__file__).resolve().parent.parent
RUN_FIXTURES = ["ppo_run", "residual_run", "sac_run"]
BUNDLE_FIXTURES = {
    "ppo_run": "ppo_bundle",
    "residual_run": "residual_bundle",
    "sac_run": "sac_bundle",
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_and_bundle(run_fixture: str, request: pytest.FixtureRequest) -> tuple[Path, Bundle]:
    """A session's training run and its bundle, loaded."""
    run: Path = request.getfixturevalue(run_fixture)
    return run, load_bundle(request.getfixturevalue(BUNDLE_FIXTURES[run_fixture]))


def _network(policy: Any) -> Any:
    """The learned part of a policy (the policy itself unless it is residual)."""
    return policy.learned if isinstance(policy, ResidualPolicy) else policy


def _write_vetting(
    path: Path, run: Path, verdict: str = "pass", files: dict[str, str] | None = None
) -> Path:
    """A vetting report in the contract's layout (docs/deploy.md) for ``run``'s files."""
    if files is None:
        files = {name: _sha(run / name) for name in ("model.zip", "vecnormalize.pkl")}
    report = {
        "schema_version": 1,
        "verdict": verdict,
        "policy": {"kind": "run", "path": str(run), "files_sha256": files},
        "checks": [],
        "thresholds": {},
        "scenarios": {},
        "commit": "test",
        "mmgym_version": "0.1.0",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report))
    (path.parent / "vetting.md").write_text(f"# Vetting: {verdict}\n")
    return path


# --- parity ---------------------------------------------------------------------------------


def test_parity_observations_hold_the_extremes() -> None:
    obs = parity_observations(25, 10.0)
    assert obs.shape == (PARITY_OBSERVATIONS, 25) and obs.dtype == np.float32
    rows = {tuple(row) for row in obs[:5]}
    for value in (0.0, 10.0, -10.0, 1e6, -1e6):
        assert (value,) * 25 in rows
    assert np.isin([1e6, -1e6, 10.0, -10.0], obs).all()
    assert np.isfinite(obs).all() and np.abs(obs).max() == 1e6


@pytest.mark.parametrize("run_fixture", RUN_FIXTURES)
def test_onnx_runtime_matches_sb3_with_its_normalisation_on_1e4_observations(
    run_fixture: str, request: pytest.FixtureRequest
) -> None:
    run, bundle = _run_and_bundle(run_fixture, request)
    reference = _network(load_run(run))  # SB3 predict after VecNormalize's transform
    onnx_policy = _network(bundle.policy)
    assert isinstance(reference, SB3Policy) and isinstance(onnx_policy, OnnxPolicy)
    obs = parity_observations(bundle.manifest.observation.dim, bundle.market.obs_clip)
    expected, actual = reference.act(obs), onnx_policy.act(obs)
    error = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    assert error <= PARITY_TOLERANCE
    assert bundle.manifest.network is not None
    assert bundle.manifest.network.parity.max_abs_error == error  # the number is the measured one
    assert bundle.manifest.network.parity.observations == len(obs) == 10_000
    # The extremes reach the graph's clipping: +-1e6 normalises to exactly +-clip_obs.
    huge = np.full((2, obs.shape[1]), 1e6, dtype=np.float32)
    huge[1] = -1e6
    clip = np.full_like(huge, reference.clip_obs)
    clip[1] = -reference.clip_obs
    np.testing.assert_array_equal(reference.normalise(huge), clip)
    np.testing.assert_allclose(onnx_policy.act(huge), reference.act(huge), atol=PARITY_TOLERANCE)


@pytest.mark.parametrize("run_fixture", ["ppo_run", "sac_run"])
def test_the_graph_bounds_actions_as_sb3_predict_does(
    run_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """An action mean far outside [-1, 1]: PPO's is clipped to the bounds, SAC's squashed."""
    from stable_baselines3 import PPO, SAC

    run = tmp_path / "run"
    shutil.copytree(request.getfixturevalue(run_fixture), run)
    algo: Any = PPO if run_fixture == "ppo_run" else SAC
    model = algo.load(run / "model.zip", device="cpu")
    layer = model.policy.action_net if algo is PPO else model.policy.actor.mu
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([30.0, -30.0, 0.0, 2.0, -2.0]))
    model.save(run / "model.zip")
    bundle = export_bundle(run, tmp_path / "b", force=True)
    obs = parity_observations(bundle.manifest.observation.dim, bundle.market.obs_clip)
    actual, expected = bundle.policy.act(obs), load_run(run).act(obs)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=PARITY_TOLERANCE)
    assert actual.min() >= -1.0 and actual.max() <= 1.0
    if algo is PPO:  # the mean is beyond the bounds: exactly the bounds come out
        assert (actual[:, 0] == 1.0).all() and (actual[:, 1] == -1.0).all()
        assert (actual[:, 3] == 1.0).mean() > 0.5


@pytest.mark.parametrize("run_fixture", RUN_FIXTURES)
def test_bundle_acts_as_the_training_run_on_the_env_action_for_action(
    run_fixture: str, request: pytest.FixtureRequest
) -> None:
    run, bundle = _run_and_bundle(run_fixture, request)
    reference = load_run(run)
    assert type(bundle.policy) is type(reference) or isinstance(bundle.policy, OnnxPolicy)
    config = OmegaConf.load(run / "config.yaml")
    env = PerpMMVectorEnv(
        num_envs=4, scenario=config.env.scenario, episode_seconds=config.train.episode_seconds
    )
    assert env.params == bundle.market  # the bundle carries the training market
    obs, _ = env.reset(seed=7)
    steps, worst = 0, 0.0
    done = np.zeros(4, dtype=bool)
    while not done.all():
        expected, actual = reference.act(obs), bundle.policy.act(obs)
        assert actual.shape == expected.shape == (4, 5) and actual.dtype == np.float32
        worst = max(worst, float(np.max(np.abs(actual.astype(np.float64) - expected))))
        obs, _, terminated, truncated, _ = env.step(expected)
        done |= terminated | truncated
        steps += 1
    assert steps == bundle.market.decisions_per_episode
    assert worst <= PARITY_TOLERANCE


def test_residual_bundle_names_its_baseline_and_composes_as_training(
    residual_run: Path, residual_bundle: Path
) -> None:
    bundle = load_bundle(residual_bundle)
    m = bundle.manifest
    assert m.kind == "residual" and m.network is not None and m.network.output == "correction"
    assert m.baseline is not None and m.baseline.name == "adaptive"
    assert m.baseline.settings == json.loads(json.dumps(settings_of("adaptive")))
    assert m.residual_scale == 0.5
    assert isinstance(bundle.policy, ResidualPolicy)
    assert isinstance(bundle.policy.base, AdaptivePolicy)
    assert bundle.policy.scale == load_run(residual_run).scale  # type: ignore[attr-defined]
    obs = parity_observations(m.observation.dim, bundle.market.obs_clip)[:500]
    correction = bundle.policy.learned.act(obs)
    assert np.abs(correction).max() > 1e-3  # the trained correction is not the zero start


# --- the graph and the manifest -------------------------------------------------------------


def test_exporter_is_the_torchscript_one_at_opset_17_and_recorded(
    ppo_run: Path, ppo_bundle: Path
) -> None:
    model = onnx.load(str(ppo_bundle / "policy.onnx"))
    onnx.checker.check_model(model)
    assert model.producer_name == "pytorch"
    assert {(o.domain, o.version) for o in model.opset_import} == {("", 17)}
    assert all(node.domain == "" for node in model.graph.node)
    m = load_bundle(ppo_bundle).manifest
    assert m.network is not None
    assert (m.network.exporter, m.network.opset) == ("torchscript", 17)
    assert m.network.exporter_version.startswith("torch 2.")
    # The graph holds VecNormalize's statistics, the same numbers as the manifest and the run.
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    stats = read_normalisation(ppo_run / "vecnormalize.pkl")
    np.testing.assert_array_equal(weights["obs_mean"], stats.mean)
    np.testing.assert_array_equal(weights["obs_var"], stats.var)
    np.testing.assert_array_equal(m.network.normalisation.mean, stats.mean)
    np.testing.assert_array_equal(m.network.normalisation.var, stats.var)
    assert (m.network.normalisation.epsilon, m.network.normalisation.clip_obs) == (
        stats.epsilon,
        stats.clip_obs,
    )
    [batch, dim] = model.graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param == "batch" and dim.dim_value == m.observation.dim


def test_manifest_records_provenance_config_market_and_every_file(
    ppo_run: Path, ppo_bundle: Path
) -> None:
    import mmgym
    from mmgym.provenance import commit

    m = load_bundle(ppo_bundle).manifest
    assert set(m.files) == {"policy.onnx"}
    assert m.files["policy.onnx"].sha256 == _sha(ppo_bundle / "policy.onnx")
    assert m.files["policy.onnx"].size == (ppo_bundle / "policy.onnx").stat().st_size
    assert m.provenance.mmgym_version == mmgym.__version__
    assert m.provenance.commit == commit() != "unknown"
    assert m.provenance.source == f"run:{ppo_run}"
    assert m.provenance.source_sha256["model.zip"] == _sha(ppo_run / "model.zip")
    assert m.training_config == OmegaConf.to_container(OmegaConf.load(ppo_run / "config.yaml"))
    assert m.market == json.loads(json.dumps(m.market))
    assert m.market["episode_seconds"] == 60.0  # the smoke run's training market
    assert m.action.names == ("skew", "half_spread", "bid_size", "ask_size", "hedge")
    assert m.action.decoding["max_quote_size"] == make_params("calm").max_quote_size
    assert (m.vetting.verdict, m.vetting.forced) == (None, True)
    assert "no vetting report" in str(m.vetting.problem)


def test_no_pickle_goes_into_a_bundle(ppo_bundle: Path, residual_bundle: Path) -> None:
    for bundle in (ppo_bundle, residual_bundle):
        names = sorted(p.name for p in bundle.iterdir())
        assert names == ["manifest.json", "policy.onnx"]
        for path in bundle.iterdir():
            head = path.read_bytes()[:2]
            assert head[:1] != b"\x80" and head != b"PK", path  # pickle protocol 2+, zip
        json.loads((bundle / "manifest.json").read_text())


# --- vetting --------------------------------------------------------------------------------


def test_an_unvetted_policy_is_refused_and_nothing_is_written(
    ppo_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bundles" / "b"
    with pytest.raises(ExportError, match=r"no vetting report .*force=true"):
        export_bundle(ppo_run, out)
    assert not out.exists() and not (tmp_path / "bundles").exists()


def test_a_passing_report_in_the_run_is_copied_in(ppo_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(ppo_run, run)
    report = _write_vetting(run / "vetting" / "vetting.json", run)
    bundle = export_bundle(run, tmp_path / "b")
    v = bundle.manifest.vetting
    assert (v.verdict, v.forced, v.problem) == ("pass", False, None)
    assert v.report_sha256 == _sha(report) == _sha(tmp_path / "b" / "vetting.json")
    assert (tmp_path / "b" / "vetting.md").read_text() == "# Vetting: pass\n"
    assert bundle.path == tmp_path / "b"


def test_a_failed_report_is_refused_unless_forced(ppo_run: Path, tmp_path: Path) -> None:
    report = _write_vetting(tmp_path / "v" / "vetting.json", ppo_run, verdict="fail")
    with pytest.raises(ExportError, match="failed vetting"):
        export_bundle(ppo_run, tmp_path / "b", vetting=report)
    bundle = export_bundle(ppo_run, tmp_path / "b", vetting=report, force=True)
    v = bundle.manifest.vetting
    assert (v.verdict, v.forced) == ("fail", True) and v.report_sha256 == _sha(report)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"model.zip": "0" * 64, "vecnormalize.pkl": None}, "model.zip has sha256"),
        ({"vecnormalize.pkl": None}, r"lacks \['model.zip'\]"),
        ({"model.zip": None, "vecnormalize.pkl": None, "../x": "0" * 64}, "outside the run"),
    ],
)
def test_a_report_on_other_files_is_refused_and_not_copied(
    ppo_run: Path, tmp_path: Path, files: dict[str, str | None], message: str
) -> None:
    hashes = {k: v if v is not None else _sha(ppo_run / k) for k, v in files.items()}
    report = _write_vetting(tmp_path / "v" / "vetting.json", ppo_run, files=hashes)
    with pytest.raises(ExportError, match=message):
        export_bundle(ppo_run, tmp_path / "b", vetting=report)
    bundle = export_bundle(ppo_run, tmp_path / "b", vetting=report, force=True)
    v = bundle.manifest.vetting
    assert (v.verdict, v.forced, v.report_sha256) == (None, True, None)
    assert "vets another policy" in str(v.problem)
    assert not (tmp_path / "b" / "vetting.json").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 2, "verdict": "pass"}', "schema_version 2"),
        ('{"schema_version": 1, "verdict": "maybe", "policy": {}}', "verdict must be"),
    ],
)
def test_a_malformed_report_is_an_error_even_with_force(
    ppo_run: Path, tmp_path: Path, text: str, message: str
) -> None:
    report = tmp_path / "vetting.json"
    report.write_text(text)
    with pytest.raises(ExportError, match=message):
        export_bundle(ppo_run, tmp_path / "b", vetting=report, force=True)
    assert not (tmp_path / "b").exists()


# --- baselines, bad runs, atomic writes -------------------------------------------------------


def test_a_baseline_is_bundled_alone_and_acts_as_the_baseline(tmp_path: Path) -> None:
    params = make_params("volatile")
    report = tmp_path / "vetting.json"
    report.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "verdict": "pass",
                "policy": {"kind": "baseline", "path": "adaptive", "files_sha256": {}},
            }
        )
    )
    bundle = export_baseline("adaptive", tmp_path / "b", params, vetting=report)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["manifest.json", "vetting.json"]
    m = bundle.manifest
    assert m.kind == "baseline" and m.network is None and m.vetting.verdict == "pass"
    assert bundle.market == params and m.training_config is None
    with pytest.raises(ExportError, match="not baseline:linear_skew"):
        export_baseline("linear_skew", tmp_path / "c", params, vetting=report)
    _assert_same_episodes(bundle.policy, make_baseline("adaptive", params), "volatile")


def test_a_baseline_run_is_bundled_with_its_settings(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from agents.baseline_run import run_baseline
    from agents.config import TrainJob, to_job

    overrides = ["agent=adaptive", "agent.base_half_spread_ticks=3.0", "train=smoke", "logger=none"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        job = to_job(compose(config_name="train", overrides=overrides), TrainJob)
    run_baseline(job, tmp_path / "run")
    bundle = export_bundle(tmp_path / "run", tmp_path / "b", force=True)
    m = bundle.manifest
    assert m.kind == "baseline" and m.baseline is not None
    assert m.baseline.settings["base_half_spread_ticks"] == 3.0
    params = make_params("calm", episode_seconds=60.0)
    expected = make_baseline("adaptive", params, base_half_spread_ticks=3.0)
    _assert_same_episodes(bundle.policy, expected, "calm", episode_seconds=60.0)


def _assert_same_episodes(policy: Any, expected: Any, scenario: str, **overrides: Any) -> None:
    """Both policies act bit for bit alike over 60 decisions of 4 envs."""
    env = PerpMMVectorEnv(num_envs=4, scenario=scenario, **overrides)
    obs, _ = env.reset(seed=3)
    for _ in range(60):
        action = expected.act(obs)
        np.testing.assert_array_equal(policy.act(obs), action)
        obs, *_ = env.step(action)


def test_runs_that_cannot_be_exported_are_named(ppo_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not a training run directory"):
        export_bundle(tmp_path, tmp_path / "b", force=True)
    run = tmp_path / "run"
    shutil.copytree(ppo_run, run)
    config = OmegaConf.load(run / "config.yaml")
    config.agent.algo = "rllib_ppo"
    OmegaConf.save(config, run / "config.yaml")
    with pytest.raises(ExportError, match=r"agent\.algo is 'rllib_ppo'"):
        export_bundle(run, tmp_path / "b", force=True)
    config.agent.algo = "ppo"
    OmegaConf.save(config, run / "config.yaml")
    (run / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(ExportError, match=r"model\.zip: not a stable-baselines3 ppo model"):
        export_bundle(run, tmp_path / "b", force=True)
    (run / "vecnormalize.pkl").unlink()
    with pytest.raises(ExportError, match=r"vecnormalize\.pkl: missing"):
        export_bundle(run, tmp_path / "b", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing half-written


def test_an_existing_bundle_is_replaced_only_when_asked(ppo_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    first = export_bundle(ppo_run, out, force=True)
    with pytest.raises(ExportError, match="exists"):
        export_bundle(ppo_run, out, force=True)
    assert load_bundle(out).manifest == first.manifest  # untouched
    second = export_bundle(ppo_run, out, force=True, overwrite=True)
    assert load_bundle(out).manifest == second.manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary directories left


def test_overwrite_never_replaces_a_directory_that_is_not_a_bundle(
    ppo_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(ppo_run, run)
    for out in (run, tmp_path):  # the run itself, a folder of runs
        with pytest.raises(ExportError, match=r"is not a bundle \(no manifest.json\)"):
            export_bundle(run, out, force=True, overwrite=True)
    assert (run / "model.zip").read_bytes() == (ppo_run / "model.zip").read_bytes()
    empty = tmp_path / "empty"
    empty.mkdir()
    export_bundle(run, empty, force=True, overwrite=True)
    assert (empty / "manifest.json").is_file()


# --- the entry point --------------------------------------------------------------------------


def _main() -> Any:
    return runpy.run_path(str(ROOT / "scripts" / "export.py"))["main"]


def test_mmgym_export_prints_path_verdict_and_parity(
    ppo_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exe = Path(sys.executable).parent / "mmgym-export"
    args = [str(exe)] if exe.exists() else [sys.executable, str(ROOT / "scripts" / "export.py")]
    out = tmp_path / "b"
    cmd = [*args, f"run={ppo_run}", f"out={out}", "force=true"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert f"bundle: {out}" in lines and "kind: learned" in lines
    assert any(line.startswith("verdict: none (exported with force=true") for line in lines)
    parity = load_bundle(out).manifest.network.parity.max_abs_error  # type: ignore[union-attr]
    assert f"parity: {parity:.3g} max |ONNX Runtime - SB3| over 10000 obs" in lines
    # Again: the bundle exists (in-process, the same main() as the console script).
    assert _main()([f"run={ppo_run}", f"out={out}", "force=true"]) == 2
    err = capsys.readouterr().err
    assert err == f"mmgym-export: error: {out} exists: choose another out= or pass overwrite=true\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["out=OUT"], "exactly one of run="),
        (["run=RUN", "baseline=adaptive", "out=OUT"], "exactly one of run="),
        (["run=RUN", "out=OUT"], "refusing to export an unvetted policy"),
        (["run=RUN", "out=OUT", "forc=true"], "Key 'forc' not in 'ExportJob'"),
        (["run=RUN", "out=OUT", "+forc=true"], "unknown key(s) ['forc']"),
        (["run=RUN"], "missing mandatory value: out"),
        (["run=NOWHERE", "out=OUT", "force=true"], "not a training run directory"),
        (["baseline=moon", "out=OUT", "force=true"], "unknown baseline 'moon'"),
        (["baseline=adaptive", "env.scenario=moon", "out=OUT", "force=true"], "unknown scenario"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    ppo_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    subs = {"RUN": str(ppo_run), "OUT": str(tmp_path / "b"), "NOWHERE": str(tmp_path / "none")}
    argv = [
        arg.split("=")[0] + "=" + subs.get(arg.split("=")[1], arg.split("=")[1]) for arg in args
    ]
    assert _main()(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mmgym-export: error: ")
    assert message in err
    assert not (tmp_path / "b").exists()


def test_baseline_export_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b"
    argv = ["baseline=linear_skew", "env=volatile", f"out={out}", "force=true"]
    assert _main()(argv) == 0
    assert f"bundle: {out}" in capsys.readouterr().out
    assert load_bundle(out).market == make_params("volatile")


def test_bench_times_the_demo_bundle_at_batch_1() -> None:
    table = runpy.run_path(str(ROOT / "scripts" / "bench.py"))["_onnx_policy_table"](50)
    rows = [line for line in table.splitlines() if line.startswith("| ") and " us |" in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| ONNX Runtime session.run (the graph alone)",
        "| OnnxPolicy.act (the bundle's network)",
        "| adaptive baseline alone (the residual's base)",
        "| residual bundle policy (adaptive + network)",
    ]
    for row in rows:
        p50, p99 = (float(cell.removesuffix(" us")) for cell in row.strip("| ").split(" | ")[1:])
        assert 0 < p50 <= p99
