"""Loading bundles: the manifest schema, every tampering refused with the file named, the
observation spec checked against the installed builder, the ONNX Runtime session, and a live
side that imports no training library."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from agents.deploy.bundle import (
    Bundle,
    BundleError,
    Manifest,
    first_difference,
    load_bundle,
    manifest_digest,
    market_from_json,
    market_to_json,
    observation_spec,
)
from agents.deploy.onnx_policy import OnnxPolicy
from mmgym.core.params import MarketParams
from mmgym.scenarios import SCENARIOS, make_params

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("torch", "stable_baselines3", "ray", "hydra", "pandas", "matplotlib", "omegaconf")


def _copy(bundle: Path, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(bundle, out)
    return out


def _edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None], seal: bool) -> None:
    """Change the manifest; with ``seal`` recompute its digest, so that the check under test
    (not the digest) is what must refuse the bundle."""
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    if seal:
        data["digest"] = manifest_digest(data)
    path.write_text(json.dumps(data, indent=2))


def _refused(bundle: Path, *fragments: str) -> str:
    with pytest.raises(BundleError) as err:
        load_bundle(bundle)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- a good bundle -----------------------------------------------------------------------------


def test_a_bundle_loads_with_its_manifest_market_and_policy(ppo_bundle: Path) -> None:
    bundle = load_bundle(ppo_bundle)
    assert isinstance(bundle, Bundle) and isinstance(bundle.policy, OnnxPolicy)
    assert bundle.market == make_params("calm", episode_seconds=60.0)
    assert bundle.observation_config.clip == bundle.market.obs_clip
    obs = np.random.default_rng(0).uniform(-3, 3, (64, 25)).astype(np.float32)
    batch = bundle.policy.act(obs)
    assert batch.shape == (64, 5) and batch.dtype == np.float32
    # Batch 1 (the live loop) gives the same rows as a batch.
    np.testing.assert_array_equal(np.vstack([bundle.policy.act(o[None]) for o in obs]), batch)
    with pytest.raises(ValueError, match=r"shape \(batch, 25\)"):
        bundle.policy.act(obs[:, :24])


def test_the_manifest_round_trips_through_json(residual_bundle: Path) -> None:
    manifest = load_bundle(residual_bundle).manifest
    text = manifest.to_json()
    assert Manifest.from_json(text) == manifest
    assert (residual_bundle / "manifest.json").read_text() == text
    assert manifest.sealed() == manifest  # the digest is of the content


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_market_parameters_round_trip_through_json(scenario: str) -> None:
    params = make_params(scenario)
    data = json.loads(json.dumps(market_to_json(params)))
    assert market_from_json(data) == params


def test_the_session_runs_single_threaded_without_spinning(ppo_bundle: Path) -> None:
    policy = load_bundle(ppo_bundle).policy
    assert isinstance(policy, OnnxPolicy)
    options = policy.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert options.get_session_config_entry(key) == "0"
    assert policy.session.get_providers() == ["CPUExecutionProvider"]


def test_the_live_side_loads_a_residual_bundle_without_training_libraries(
    residual_bundle: Path,
) -> None:
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "from agents.deploy.bundle import load_bundle\n"
        "import agents.deploy.onnx_policy, agents.residual_policy\n"
        f"bundle = load_bundle({str(residual_bundle)!r})\n"
        "action = bundle.policy.act(np.zeros((1, bundle.manifest.observation.dim), np.float32))\n"
        "assert action.shape == (1, 5), action.shape\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps([type(bundle.policy).__name__, loaded]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    kind, loaded = json.loads(done.stdout.splitlines()[-1])
    assert kind == "ResidualPolicy" and loaded == []


def test_old_residual_import_paths_are_the_numpy_module() -> None:
    import agents.residual as old
    import agents.residual_policy as new

    for name in ("residual_action", "ResidualPolicy", "compose_policy", "check_scale"):
        assert getattr(old, name) is getattr(new, name)


# --- tampering ---------------------------------------------------------------------------------


def test_a_flipped_byte_in_the_network_is_refused(ppo_bundle: Path, tmp_path: Path) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    data = bytearray((bundle / "policy.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / "policy.onnx").write_bytes(bytes(data))
    _refused(bundle, "policy.onnx", "sha256", "differs from the manifest's")


def test_a_truncated_network_is_refused(ppo_bundle: Path, tmp_path: Path) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    data = (bundle / "policy.onnx").read_bytes()
    (bundle / "policy.onnx").write_bytes(data[: len(data) - 100])
    _refused(bundle, "policy.onnx", f"{len(data) - 100} bytes", f"says {len(data)}", "truncated")


def test_a_truncated_manifest_is_refused(ppo_bundle: Path, tmp_path: Path) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    text = (bundle / "manifest.json").read_text()
    (bundle / "manifest.json").write_text(text[: len(text) // 2])
    _refused(bundle, "manifest.json", "not valid JSON")


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["network"]["parity"].update(max_abs_error=0.0),
        lambda m: m["market"].update(max_quote_size=20.0),
        lambda m: m["vetting"].update(verdict="pass", forced=False, problem=None),
    ],
)
def test_an_edited_manifest_is_refused(
    ppo_bundle: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    _edit_manifest(bundle, edit, seal=False)
    _refused(bundle, "manifest.json", "does not match its digest")


@pytest.mark.parametrize("name", ["policy.onnx", "manifest.json"])
def test_a_missing_file_is_refused(ppo_bundle: Path, tmp_path: Path, name: str) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    (bundle / name).unlink()
    _refused(bundle, f"{name}: missing")


def test_an_unlisted_file_is_refused(ppo_bundle: Path, tmp_path: Path) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    (bundle / "vecnormalize.pkl").write_bytes(b"\x80\x04.")
    _refused(bundle, "vecnormalize.pkl", "not listed in the manifest")


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_another_schema_version_is_refused_first(
    ppo_bundle: Path, tmp_path: Path, version: Any
) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    (bundle / "policy.onnx").write_bytes(b"garbage")  # not even looked at
    _edit_manifest(bundle, lambda m: m.update(schema_version=version), seal=False)
    _refused(bundle, "manifest.json", f"schema_version is {version!r}", "reads version 1")


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (
            lambda m: m["observation"]["names"].__setitem__(3, "return_glacial"),
            ["observation.names[3] is 'return_glacial' in the bundle", "'return_slow'"],
        ),
        (
            lambda m: m["observation"]["names"].insert(1, m["observation"]["names"].pop(2)),
            ["observation.names[1] is 'return_medium' in the bundle", "'return_fast'"],
        ),
        (
            lambda m: m["observation"]["builder"].update(clip=5.0),
            ["observation.builder.clip is 5.0 in the bundle but 10.0"],
        ),
        (
            lambda m: m["observation"]["builder"].update(smoothing=0.5),
            ["observation.builder.smoothing is in the bundle but unknown"],
        ),
        (
            lambda m: m["action"]["names"].__setitem__(0, "lean"),
            ["action spec differs", "action.names[0] is 'lean'"],
        ),
    ],
)
def test_a_bundle_trained_on_other_features_is_refused_naming_the_first_difference(
    ppo_bundle: Path,
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    fragments: list[str],
) -> None:
    _refused_after_sealed_edit(
        ppo_bundle, tmp_path, edit, ["differs from the installed mmgym's", *fragments]
    )


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (lambda m: m.update(extra=1), ["unknown field extra"]),
        (lambda m: m["network"].pop("opset"), ["missing field network.opset"]),
        (lambda m: m["network"].update(opset="17"), ["network.opset must be an integer"]),
        (lambda m: m.update(kind="oracle"), ["kind must be one of"]),
        (lambda m: m["files"]["policy.onnx"].update(size=-1), ["no valid sha256 and size"]),
        (lambda m: m["vetting"].update(forced=False), ["verdict None without forced"]),
        (lambda m: m["market"].update(tick_size=-1.0), ["market: tick_size must be"]),
        (lambda m: m["market"].update(moon_phase=0.5), ["['moon_phase'] unknown"]),
        (lambda m: m["market"].pop("maker_fee"), ["['maker_fee'] missing"]),
    ],
)
def test_an_invalid_manifest_names_the_field(
    ppo_bundle: Path,
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    fragments: list[str],
) -> None:
    _refused_after_sealed_edit(ppo_bundle, tmp_path, edit, fragments)


def _refused_after_sealed_edit(
    bundle: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None], fragments: list[str]
) -> None:
    copy = _copy(bundle, tmp_path)
    _edit_manifest(copy, edit, seal=True)
    _refused(copy, "manifest.json", *fragments)


def test_a_replaced_network_with_a_valid_hash_is_checked_against_the_spec(
    ppo_bundle: Path, sac_bundle: Path, tmp_path: Path
) -> None:
    """Another valid graph whose hash the manifest lists (re-sealed) still has to fit."""
    import hashlib

    import onnx

    bundle = _copy(ppo_bundle, tmp_path)
    model = onnx.load(str(sac_bundle / "policy.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 24
    data = model.SerializeToString()
    (bundle / "policy.onnx").write_bytes(data)

    def edit(m: dict[str, Any]) -> None:
        m["files"]["policy.onnx"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}

    _edit_manifest(bundle, edit, seal=True)
    _refused(bundle, "policy.onnx", "not a usable network")


def test_a_vetting_report_that_contradicts_the_manifest_is_refused(
    ppo_run: Path, tmp_path: Path
) -> None:
    from agents.deploy.export import export_bundle

    report = tmp_path / "v" / "vetting.json"
    report.parent.mkdir()
    files = {
        name: __import__("hashlib").sha256((ppo_run / name).read_bytes()).hexdigest()
        for name in ("model.zip", "vecnormalize.pkl")
    }
    policy = {"kind": "run", "path": str(ppo_run), "files_sha256": files}
    report.write_text(json.dumps({"schema_version": 1, "verdict": "fail", "policy": policy}))
    bundle = tmp_path / "b"
    export_bundle(ppo_run, bundle, vetting=report, force=True)
    text = json.dumps({"schema_version": 1, "verdict": "pass", "policy": policy})
    (bundle / "vetting.json").write_text(text)

    def edit(m: dict[str, Any]) -> None:
        digest = __import__("hashlib").sha256(text.encode()).hexdigest()
        m["files"]["vetting.json"] = {"sha256": digest, "size": len(text)}
        m["vetting"]["report_sha256"] = digest

    _edit_manifest(bundle, edit, seal=True)
    _refused(bundle, "vetting.json", "verdict 'pass', the manifest says 'fail'")


# --- the comparison ------------------------------------------------------------------------------


def test_first_difference_walks_specs_in_order() -> None:
    spec = observation_spec(MarketParams())
    assert first_difference(spec, spec, "observation") is None
    other = dataclasses.replace(spec, names=spec.names[:-1], dim=spec.dim - 1)
    found = first_difference(other, spec, "observation")
    assert found == "observation.names has 24 entries in the bundle, 25 installed"
    assert first_difference({"a": 1}, {"a": 1.0}, "x") is None  # JSON numbers compare by value
    assert first_difference({"a": True}, {"a": 1}, "x") == (
        "x.a is True in the bundle but 1 in the installed mmgym"
    )
    two = observation_spec(MarketParams(num_assets=2))
    assert first_difference(spec, two, "o") == (
        "o.names[0] is 'inventory' in the bundle but 'inventory[0]' in the installed mmgym"
    )
