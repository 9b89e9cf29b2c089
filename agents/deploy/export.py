"""Export a training run (SB3 PPO or SAC, plain or residual) or a baseline as a policy bundle.

:func:`export_bundle` reads a run directory (``config.yaml``, ``model.zip``,
``vecnormalize.pkl``) and writes a bundle (:mod:`agents.deploy.bundle`):

- the network as ``policy.onnx``: VecNormalize's observation transform (mean, var, epsilon and
  clip as float64 constants, computed in float64 as VecNormalize does), the actor, and the
  deterministic action as stable-baselines3's ``predict`` returns it (PPO: the Gaussian mean
  clipped to the action space; SAC: the tanh-squashed mean, rescaled to the action space).
  A residual run's network outputs the correction; the manifest names the baseline, its
  settings and ``residual_scale``, and the bundle's policy composes them with
  :class:`agents.residual_policy.ResidualPolicy`, as training and evaluation do.
- The exporter is chosen, not defaulted: ``torch.onnx.export(dynamo=False)`` (TorchScript
  tracing), opset 17. torch >= 2.9 defaults to the dynamo exporter, which needs onnxscript
  (not a dependency of mmgym); the traced MLP needs nothing it lacks. Both are recorded.
- Parity: ONNX Runtime, with the session options of the live side, against the run's own
  :class:`agents.learned.SB3Policy` on :func:`parity_observations` (zeros, +-clip, +-1e6 and
  random observations); a larger error than :data:`PARITY_TOLERANCE` refuses the export.

The policy must have passed vetting (``<run>/vetting/vetting.json``, or ``vetting=<file>``, as
written by ``mmgym-vet``, for these very files: its ``files_sha256`` are checked against the
run's); a missing, failed or mismatched report refuses the export unless ``force=True``, which
the manifest records. The bundle is written to a temporary directory next to ``out_dir``,
loaded back with :func:`agents.deploy.bundle.load_bundle`, then renamed into place: a failed
export leaves nothing behind, and an existing bundle is only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray

import mmgym
from agents.baselines.registry import BASELINES, load_all, make_baseline, settings_of
from agents.deploy.bundle import (
    MANIFEST,
    POLICY_FILE,
    SCHEMA_VERSION,
    VETTING_JSON,
    VETTING_MD,
    ActionSpec,
    BaselineSpec,
    Bundle,
    FileEntry,
    Manifest,
    NetworkSpec,
    Normalisation,
    ObservationSpec,
    Parity,
    Provenance,
    VettingRecord,
    action_spec,
    load_bundle,
    market_from_json,
    market_to_json,
    numbers,
    observation_spec,
    sha256_of,
)
from agents.deploy.onnx_policy import OnnxPolicy
from agents.learned import SB3Policy
from agents.market import market_of
from mmgym.core.params import MarketParams
from mmgym.provenance import commit

OPSET = 17
EXPORTER = "torchscript"
"""``torch.onnx.export(..., dynamo=False)``: see the module docstring."""
INPUT_NAME, OUTPUT_NAME = "obs", "action"
PARITY_TOLERANCE = 1e-5
"""Largest absolute action difference between ONNX Runtime and SB3 that an export accepts."""
PARITY_OBSERVATIONS = 10_000
MODEL_FILE, STATS_FILE, CONFIG_FILE = "model.zip", "vecnormalize.pkl", "config.yaml"
VETTING_SUBDIR = "vetting"
VETTING_SCHEMA_VERSION = 1
SB3_ALGOS = ("ppo", "sac")


class ExportError(ValueError):
    """The export was refused (bad input or an unvetted policy); the message says why."""


@dataclass(frozen=True)
class NormalisationStats:
    """VecNormalize's observation statistics, read from a run's ``vecnormalize.pkl``."""

    mean: NDArray[np.float64]
    var: NDArray[np.float64]
    epsilon: float
    clip_obs: float


# --- public entry points ----------------------------------------------------------------------


def export_bundle(
    run_dir: str | Path,
    out_dir: str | Path,
    force: bool = False,
    vetting: str | Path | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Export the policy of training run ``run_dir`` as a bundle in ``out_dir``.

    ``run_dir`` is an SB3 PPO or SAC run (plain or residual) or a baseline's run
    (``scripts/train.py agent=<baseline>``: a manifest-only bundle with its settings).
    ``vetting`` is the vetting report (default ``<run_dir>/vetting/vetting.json``); without a
    passing report for the run's current files the export is refused unless ``force``.
    Returns the bundle as :func:`~agents.deploy.bundle.load_bundle` loads it.
    Raises :class:`ExportError` for bad input or a refused export.
    """
    run = Path(run_dir)
    config = _read_config(run)
    agent = config.get("agent")
    algo = agent.get("algo") if isinstance(agent, dict) else None
    load_all()
    if algo not in BASELINES and algo not in SB3_ALGOS:
        raise ExportError(
            f"{run / CONFIG_FILE}: agent.algo is {algo!r}; export takes SB3 "
            f"{' and '.join(SB3_ALGOS)} runs and baselines"
        )
    report = Path(vetting) if vetting is not None else run / VETTING_SUBDIR / VETTING_JSON
    params = _training_market(run, config)
    if algo in BASELINES:
        assert isinstance(agent, dict)
        files = _read_files(run, (CONFIG_FILE,))
        decision = _vetting(report, _run_matcher(run, files, (CONFIG_FILE,)), force)
        settings = {k: v for k, v in agent.items() if k != "algo"}
        sources = {name: sha256_of(data) for name, data in files.items()}
        return _export_baseline(
            str(algo),
            settings,
            params,
            out_dir,
            decision,
            config,
            f"run:{run.resolve()}",
            sources,
            overwrite,
        )
    assert isinstance(agent, dict)
    # Read once: the bytes checked against the vetting report are the bytes exported.
    files = _read_files(run, (CONFIG_FILE, MODEL_FILE, STATS_FILE))
    decision = _vetting(report, _run_matcher(run, files, (MODEL_FILE, STATS_FILE)), force)
    residual_on = agent.get("residual_on")
    graph, network = _export_network(run, files, str(algo), params, residual_on is not None)
    baseline = None
    scale = None
    if residual_on is not None:
        baseline = BaselineSpec(str(residual_on), _default_settings(str(residual_on)))
        scale = float(agent["residual_scale"])

    def manifest(entries: dict[str, FileEntry]) -> Manifest:
        return _manifest(
            "learned" if residual_on is None else "residual",
            entries,
            observation_spec(params),
            action_spec(params),
            params,
            network,
            baseline,
            scale,
            config,
            decision,
            f"run:{run.resolve()}",
            {name: sha256_of(data) for name, data in files.items()},
        )

    return _publish(Path(out_dir), {POLICY_FILE: graph, **decision.copies}, manifest, overwrite)


def export_baseline(
    name: str,
    out_dir: str | Path,
    params: MarketParams,
    force: bool = False,
    vetting: str | Path | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Bundle registered baseline ``name`` alone (default settings, market ``params``): a
    manifest without a network. ``vetting`` is the report of ``mmgym-vet
    policy=baseline:<name>`` (its ``policy.path`` must be ``name``); without a passing report
    the export is refused unless ``force``."""
    load_all()
    if name not in BASELINES:
        raise ExportError(f"unknown baseline {name!r}; valid baselines are {sorted(BASELINES)}")
    if vetting is None:
        decision = _no_vetting("no vetting report given (vetting=<file>)", force)
    else:
        decision = _vetting(Path(vetting), _baseline_matcher(name), force)
    settings = _default_settings(name)
    return _export_baseline(
        name, settings, params, out_dir, decision, None, f"baseline:{name}", {}, overwrite
    )


# --- the network --------------------------------------------------------------------------------


def _export_network(
    run: Path, files: dict[str, bytes], algo: str, params: MarketParams, residual: bool
) -> tuple[bytes, NetworkSpec]:
    """The run's network as ONNX bytes, and its spec with the measured parity."""
    model = _load_model(run / MODEL_FILE, files[MODEL_FILE], algo)
    stats = read_normalisation(run / STATS_FILE, files[STATS_FILE])
    obs_spec, act_spec = observation_spec(params), action_spec(params)
    _check_spaces(run, model, obs_spec, act_spec)
    with tempfile.TemporaryDirectory() as scratch:
        onnx_file = Path(scratch) / POLICY_FILE
        export_onnx(model, stats, onnx_file)
        graph = onnx_file.read_bytes()
    reference = SB3Policy(model, stats.mean, stats.var, stats.clip_obs, stats.epsilon)
    error = parity_error(graph, reference, obs_spec.dim, params.obs_clip, act_spec)
    if not error <= PARITY_TOLERANCE:
        raise ExportError(
            f"{run}: ONNX Runtime differs from SB3 by {error:.3g} (more than "
            f"{PARITY_TOLERANCE:g}) on {PARITY_OBSERVATIONS} observations; nothing exported"
        )
    network = NetworkSpec(
        file=POLICY_FILE,
        algo="ppo" if algo == "ppo" else "sac",
        output="correction" if residual else "action",
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        opset=OPSET,
        exporter=EXPORTER,
        exporter_version=f"torch {torch.__version__}",
        normalisation=Normalisation(
            numbers(stats.mean), numbers(stats.var), stats.epsilon, stats.clip_obs
        ),
        parity=Parity(
            max_abs_error=error,
            tolerance=PARITY_TOLERANCE,
            observations=PARITY_OBSERVATIONS,
            reference="stable-baselines3 predict(deterministic=True) after VecNormalize's "
            "transform (agents.learned.SB3Policy)",
        ),
    )
    return graph, network


def read_normalisation(path: Path, data: bytes | None = None) -> NormalisationStats:
    """VecNormalize's observation statistics from a run's ``vecnormalize.pkl`` (its bytes
    ``data``, default: read ``path``). The pickle is read here, on the training side, and never
    goes into a bundle."""
    try:
        stats = pickle.loads(path.read_bytes() if data is None else data)
        norm_obs = bool(stats.norm_obs)
        mean = np.asarray(stats.obs_rms.mean, dtype=np.float64)
        var = np.asarray(stats.obs_rms.var, dtype=np.float64)
        epsilon, clip_obs = float(stats.epsilon), float(stats.clip_obs)
    except Exception as err:  # a pickle can fail in any way
        raise ExportError(f"{path}: not VecNormalize statistics ({err})") from None
    if not norm_obs:
        raise ExportError(f"{path}: the run did not normalise observations (norm_obs=False)")
    values = np.concatenate([mean, var, [epsilon, clip_obs]])
    if not np.isfinite(values).all() or (var < 0).any() or epsilon <= 0 or clip_obs <= 0:
        raise ExportError(f"{path}: non-finite or negative observation statistics")
    return NormalisationStats(mean, var, epsilon, clip_obs)


class DeterministicPolicy(torch.nn.Module):
    """Raw float32 observations to the deterministic action that SB3's ``predict`` returns
    for the VecNormalize-normalised observation: the graph that goes into a bundle."""

    obs_mean: torch.Tensor
    obs_var: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, model: Any, stats: NormalisationStats) -> None:
        super().__init__()
        policy = model.policy
        space = policy.action_space
        self.actor = _actor_mean(model)
        self.squashed = bool(policy.squash_output)
        self.register_buffer("obs_mean", torch.tensor(stats.mean, dtype=torch.float64))
        self.register_buffer("obs_var", torch.tensor(stats.var, dtype=torch.float64))
        self.epsilon = stats.epsilon
        self.clip_obs = stats.clip_obs
        self.register_buffer("low", torch.tensor(space.low, dtype=torch.float32))
        self.register_buffer("high", torch.tensor(space.high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """VecNormalize in float64, the actor's mean in float32, then SB3's Box handling."""
        std = torch.sqrt(self.obs_var + self.epsilon)
        z = torch.clamp((obs.double() - self.obs_mean) / std, -self.clip_obs, self.clip_obs)
        action = self.actor(z.float())
        if self.squashed:  # SB3 unscale_action: [-1, 1] to [low, high]
            return self.low + (0.5 * (action + 1.0) * (self.high - self.low))
        return torch.clamp(action, self.low, self.high)  # SB3 predict clips unsquashed actions


class _PPOMean(torch.nn.Module):
    """PPO's deterministic action before clipping: the Gaussian mean."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        p = self.policy
        features = p.extract_features(obs, p.pi_features_extractor)
        out: torch.Tensor = p.action_net(p.mlp_extractor.forward_actor(features))
        return out


class _SACMean(torch.nn.Module):
    """SAC's deterministic action: the squashed Gaussian mean, tanh(mu)."""

    def __init__(self, actor: Any) -> None:
        super().__init__()
        self.actor = actor

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.actor
        return torch.tanh(a.mu(a.latent_pi(a.extract_features(obs, a.features_extractor))))


def _actor_mean(model: Any) -> torch.nn.Module:
    from stable_baselines3.common.distributions import DiagGaussianDistribution

    policy = model.policy
    if hasattr(policy, "actor"):  # SAC
        if policy.actor.use_sde:
            raise ExportError("SAC with gSDE exploration is not exportable")
        return _SACMean(policy.actor)
    if type(policy.action_dist) is not DiagGaussianDistribution or policy.squash_output:
        raise ExportError(
            f"PPO with a {type(policy.action_dist).__name__} is not exportable "
            "(a diagonal Gaussian without squashing is)"
        )
    return _PPOMean(policy)


def export_onnx(model: Any, stats: NormalisationStats, path: Path) -> None:
    """Write the :class:`DeterministicPolicy` of ``model`` to ``path`` as ONNX (opset 17,
    the TorchScript exporter, a dynamic batch axis)."""
    module = DeterministicPolicy(model, stats)
    module.eval()
    model.policy.set_training_mode(False)
    dim = int(model.observation_space.shape[0])
    example = torch.zeros((1, dim), dtype=torch.float32)
    with warnings.catch_warnings(), torch.no_grad():
        # dynamo=False is the deliberate choice (module docstring); torch warns it is legacy.
        warnings.filterwarnings("ignore", "You are using the legacy", DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=False,  # keep var and epsilon as in the manifest
        )


def parity_observations(
    dim: int, clip: float, n: int = PARITY_OBSERVATIONS, seed: int = 0
) -> NDArray[np.float32]:
    """``n`` observations that exercise the whole graph: zeros, every component at +-clip and
    +-1e6 (far beyond VecNormalize's clip) alone and all together, then random ones (uniform
    within +-clip, standard normal, and mixtures of 0, +-clip and +-1e6)."""
    rng = np.random.default_rng(seed)
    extremes = [0.0, clip, -clip, 1e6, -1e6]
    rows = [np.full((1, dim), v) for v in extremes]
    for v in extremes[1:]:
        rows.append(np.eye(dim) * v)
    fixed = np.concatenate(rows)
    rest = n - fixed.shape[0]
    if rest < 3:
        raise ValueError(f"n must be at least {fixed.shape[0] + 3} for dim {dim}")
    k = rest // 3
    uniform = rng.uniform(-clip, clip, (k, dim))
    normal = rng.standard_normal((k, dim))
    mixed = rng.choice(np.array(extremes), (rest - 2 * k, dim))
    return np.concatenate([fixed, uniform, normal, mixed]).astype(np.float32)


def parity_error(graph: bytes, reference: Any, dim: int, clip: float, spec: ActionSpec) -> float:
    """Largest absolute action difference between ONNX Runtime running ``graph`` and
    ``reference`` (a Policy) on :func:`parity_observations`."""
    obs = parity_observations(dim, clip)
    onnx = OnnxPolicy(graph, dim, len(spec.names)).act(obs)
    expected = np.asarray(reference.act(obs), dtype=np.float32)
    if onnx.shape != expected.shape:
        raise ExportError(f"ONNX actions {onnx.shape} and SB3 actions {expected.shape} differ")
    return float(np.max(np.abs(onnx.astype(np.float64) - expected)))


def _load_model(path: Path, data: bytes, algo: str) -> Any:
    from stable_baselines3 import PPO, SAC

    algorithms: dict[str, Any] = {"ppo": PPO, "sac": SAC}
    try:
        return algorithms[algo].load(io.BytesIO(data), device="cpu")
    except Exception as err:  # a corrupt zip fails in zipfile, torch or SB3
        raise ExportError(f"{path}: not a stable-baselines3 {algo} model ({err})") from None


def _check_spaces(run: Path, model: Any, obs: ObservationSpec, act: ActionSpec) -> None:
    obs_shape = tuple(model.observation_space.shape)
    space = model.action_space
    if obs_shape != (obs.dim,):
        raise ExportError(
            f"{run / MODEL_FILE}: observations of shape {obs_shape}, the market's builder "
            f"makes ({obs.dim},)"
        )
    bounds = (tuple(space.low.tolist()), tuple(space.high.tolist()))
    if tuple(space.shape) != (len(act.names),) or bounds != (act.low, act.high):
        raise ExportError(
            f"{run / MODEL_FILE}: action space {space}, the decoder takes "
            f"{len(act.names)} components in [{act.low[0]}, {act.high[0]}]"
        )


# --- the run ------------------------------------------------------------------------------------


def _read_config(run: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    path = run / CONFIG_FILE
    if not path.is_file():
        raise ExportError(f"{run}: not a training run directory (no {CONFIG_FILE})")
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as err:  # YAML and interpolation errors
        raise ExportError(f"{path}: unreadable ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("agent"), dict):
        raise ExportError(f"{path}: no agent section")
    return {str(k): v for k, v in config.items()}


def _training_market(run: Path, config: dict[str, Any]) -> MarketParams:
    """The market the run trained on (as :func:`agents.learned.load_run` rebuilds it)."""
    try:
        env, train = config["env"], config["train"]
        market = market_of(str(env["scenario"]), train["episode_seconds"], env["overrides"])
        params = market.params
    except (KeyError, TypeError, ValueError) as err:
        raise ExportError(f"{run / CONFIG_FILE}: no valid market ({err})") from None
    return market_from_json(market_to_json(params))  # tuples, as a bundle loads it


def _default_settings(name: str) -> dict[str, Any]:
    """The settings a baseline gets from :func:`agents.residual_policy.compose_policy`."""
    import inspect

    settings = settings_of(name)
    required = [key for key, value in settings.items() if value is inspect.Parameter.empty]
    if required:
        raise ExportError(f"baseline {name!r} needs settings {required}; it has no defaults")
    return settings


def _read_files(run: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of the run's files ``names``; ExportError names a missing one."""
    for name in names:
        if not (run / name).is_file():
            raise ExportError(f"{run / name}: missing (not a finished training run?)")
    return {name: (run / name).read_bytes() for name in names}


# --- vetting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VettingDecision:
    """What the export found about vetting, and the report files to copy into the bundle."""

    verdict: Literal["pass", "fail"] | None
    forced: bool
    problem: str | None
    copies: dict[str, bytes]

    def record(self, files: dict[str, FileEntry]) -> VettingRecord:
        """The manifest's vetting entry."""
        report = files.get(VETTING_JSON)
        return VettingRecord(
            verdict=self.verdict,
            report_sha256=None if self.verdict is None or report is None else report.sha256,
            forced=self.forced,
            problem=self.problem,
        )


def _no_vetting(problem: str, force: bool) -> VettingDecision:
    if not force:
        raise ExportError(
            f"{problem}: refusing to export an unvetted policy; vet it with mmgym-vet, or pass "
            "force=true (the manifest records it)"
        )
    return VettingDecision(None, True, problem, {})


def _vetting(
    report: Path, matches: Callable[[dict[str, Any]], str | None], force: bool
) -> VettingDecision:
    """Read the vetting report at ``report`` and decide (see the module docstring)."""
    if not report.is_file():
        return _no_vetting(f"no vetting report at {report}", force)
    raw = report.read_bytes()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise ExportError(f"{report}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("schema_version") != VETTING_SCHEMA_VERSION:
        version = data.get("schema_version") if isinstance(data, dict) else None
        raise ExportError(
            f"{report}: vetting schema_version {version!r}, this mmgym reads "
            f"{VETTING_SCHEMA_VERSION}"
        )
    verdict = data.get("verdict")
    policy = data.get("policy")
    if verdict not in ("pass", "fail"):
        raise ExportError(f"{report}: verdict must be 'pass' or 'fail', got {verdict!r}")
    if not isinstance(policy, dict) or not isinstance(policy.get("files_sha256", {}), dict):
        raise ExportError(f"{report}: policy must be an object with files_sha256")
    mismatch = matches(policy)
    if mismatch is not None:
        return _no_vetting(f"{report} vets another policy: {mismatch}", force)
    copies = {VETTING_JSON: raw}
    if (report.parent / VETTING_MD).is_file():
        copies[VETTING_MD] = (report.parent / VETTING_MD).read_bytes()
    if verdict == "fail":
        if not force:
            raise ExportError(
                f"{report}: the policy failed vetting; refusing to export it (force=true "
                "exports it anyway and the manifest records it)"
            )
        return VettingDecision("fail", True, f"{report}: verdict fail", copies)
    return VettingDecision("pass", False, None, copies)


def _run_matcher(
    run: Path, policy_files: dict[str, bytes], required: tuple[str, ...]
) -> Callable[[dict[str, Any]], str | None]:
    """A report on ``run`` lists the ``required`` files, and every file it lists has its
    sha256 in the run (``policy_files``: the bytes read for the export)."""

    def matches(policy: dict[str, Any]) -> str | None:
        if policy.get("kind") != "run":
            return f"its policy is a {policy.get('kind')!r}, not a run"
        files = policy.get("files_sha256") or {}
        missing = [name for name in required if name not in files]
        if missing:
            return f"its files_sha256 lacks {missing}"
        for name, digest in sorted(files.items()):
            path = run / str(name)
            if Path(str(name)).is_absolute() or ".." in Path(str(name)).parts:
                return f"files_sha256 names {name!r} outside the run"
            if name not in policy_files and not path.is_file():
                return f"{name} is not in the run"
            data = policy_files[name] if name in policy_files else path.read_bytes()
            actual = sha256_of(data)
            if actual != digest:
                return f"{name} has sha256 {actual} in the run, {digest} in the report"
        return None

    return matches


def _baseline_matcher(name: str) -> Callable[[dict[str, Any]], str | None]:
    def matches(policy: dict[str, Any]) -> str | None:
        if policy.get("kind") != "baseline" or policy.get("path") != name:
            return f"its policy is {policy.get('kind')}:{policy.get('path')}, not baseline:{name}"
        return None

    return matches


# --- writing ------------------------------------------------------------------------------------


def _export_baseline(
    name: str,
    settings: dict[str, Any],
    params: MarketParams,
    out_dir: str | Path,
    decision: VettingDecision,
    config: dict[str, Any] | None,
    source: str,
    sources: dict[str, str],
    overwrite: bool,
) -> Bundle:
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    try:
        make_baseline(name, params, **settings)
    except (ValueError, TypeError) as err:
        raise ExportError(f"baseline {name!r}: {err}") from None
    spec = BaselineSpec(name, settings)

    def manifest(files: dict[str, FileEntry]) -> Manifest:
        return _manifest(
            "baseline",
            files,
            observation_spec(params),
            action_spec(params),
            params,
            None,
            spec,
            None,
            config,
            decision,
            source,
            sources,
        )

    return _publish(Path(out_dir), dict(decision.copies), manifest, overwrite)


def _manifest(
    kind: Literal["learned", "residual", "baseline"],
    files: dict[str, FileEntry],
    obs: ObservationSpec,
    act: ActionSpec,
    params: MarketParams,
    network: NetworkSpec | None,
    baseline: BaselineSpec | None,
    scale: float | None,
    config: dict[str, Any] | None,
    decision: VettingDecision,
    source: str,
    sources: dict[str, str],
) -> Manifest:
    if baseline is not None:  # JSON values, as the manifest is read back
        baseline = BaselineSpec(baseline.name, json.loads(json.dumps(baseline.settings)))
    return Manifest(
        schema_version=SCHEMA_VERSION,
        kind=kind,
        files=files,
        observation=obs,
        action=act,
        market=market_to_json(params),
        network=network,
        baseline=baseline,
        residual_scale=scale,
        training_config=config,
        vetting=decision.record(files),
        provenance=Provenance(
            mmgym_version=mmgym.__version__,
            commit=commit(),
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            source=source,
            source_sha256=sources,
        ),
        digest="",
    ).sealed()


def _publish(
    out: Path,
    files: dict[str, bytes],
    manifest: Callable[[dict[str, FileEntry]], Manifest],
    overwrite: bool,
) -> Bundle:
    """Write the bundle to a temporary directory next to ``out``, load it back, and rename it
    to ``out``. With ``overwrite`` an existing bundle (or empty directory) is replaced, never
    another directory (a run, or a folder of runs)."""
    if out.exists() and not overwrite:
        raise ExportError(f"{out} exists: choose another out= or pass overwrite=true")
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise ExportError(f"{out} is not a bundle (no {MANIFEST}): refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old: Path | None = None
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        entries = {name: FileEntry(sha256_of(data), len(data)) for name, data in files.items()}
        (tmp / MANIFEST).write_text(manifest(entries).to_json())
        bundle = load_bundle(tmp)  # what was written verifies and loads
        tmp.chmod(0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.replace(old / out.name, out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return dataclasses.replace(bundle, path=out)
