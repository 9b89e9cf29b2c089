"""Policy bundles: the manifest's typed schema and :func:`load_bundle` (numpy + onnxruntime).

A bundle is a directory written by :func:`agents.deploy.export.export_bundle`:

- ``manifest.json``: a :class:`Manifest` (what the policy is, what it observes and emits, the
  market it decodes its actions for, where it came from, its vetting and parity);
- ``policy.onnx``: the network, with the training normalisation and the deterministic action
  in the graph (absent from a baseline-only bundle);
- ``vetting.json`` and ``vetting.md``: the vetting report, copied in when there is one.

Nothing in a bundle is a pickle: the manifest is JSON, the network ONNX. :func:`load_bundle`
checks the manifest's schema version, its digest and the size and sha256 of every file before
it reads anything else, then compares the bundle's observation and action specs with the
installed observation builder and action decoder, and only then builds the policy. Any problem
is a :class:`BundleError` naming the file and what is wrong.

This module imports no torch, stable-baselines3, Ray, Hydra or pandas: the live side loads
bundles with numpy and onnxruntime only (a test checks it in a fresh interpreter).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from agents.baselines.registry import make_baseline
from agents.deploy.onnx_policy import OnnxPolicy
from agents.policy import Policy
from agents.residual_policy import ResidualPolicy
from mmgym.core.params import MarketParams, field_names
from mmgym.envs.perp_mm import action_names
from mmgym.features.observation import (
    ObservationBuilder,
    ObservationConfig,
    observation_dim,
    observation_names,
)

SCHEMA_VERSION = 1
"""Version of the manifest schema this mmgym writes and reads (no other is read)."""
MANIFEST = "manifest.json"
POLICY_FILE = "policy.onnx"
VETTING_JSON = "vetting.json"
VETTING_MD = "vetting.md"
ACTION_LOW, ACTION_HIGH = -1.0, 1.0
"""Bounds of every action component (:mod:`mmgym.core.orders` clips to them)."""
DECODING_FIELDS: tuple[str, ...] = (
    "num_assets",
    "tick_size",
    "max_skew_ticks",
    "max_half_spread_ticks",
    "max_quote_size",
    "min_quote_size",
    "max_inventory",
)
"""The market parameters :func:`mmgym.core.orders.decode_quotes` and the order placement read
to turn an action into quotes (prices on the tick grid, sizes, the inventory limit)."""
KINDS = ("learned", "residual", "baseline")

_SHA256 = re.compile(r"[0-9a-f]{64}")


class BundleError(ValueError):
    """A bundle cannot be written or loaded: the message names the file and what is wrong."""


# --- the manifest ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One file of the bundle (besides ``manifest.json``)."""

    sha256: str
    """Hex sha256 of the file's bytes."""
    size: int
    """Its length in bytes (a truncated file is named as such)."""


@dataclass(frozen=True)
class ObservationSpec:
    """What the policy observes: the installed builder must produce exactly this."""

    names: tuple[str, ...]
    """Feature names in order (:func:`mmgym.features.observation.observation_names`)."""
    dim: int
    """Length of one observation vector."""
    dtype: str
    """numpy dtype of the observation vector (``float32``)."""
    num_assets: int
    """Perps per account (K); names are ``name[k]`` when K > 1."""
    builder: dict[str, Any]
    """The builder's settings (:class:`~mmgym.features.observation.ObservationConfig`)."""


@dataclass(frozen=True)
class ActionSpec:
    """What the policy emits and how it becomes orders."""

    names: tuple[str, ...]
    """Action components in order (:func:`mmgym.envs.perp_mm.action_names`)."""
    low: tuple[float, ...]
    """Lower bound of each component."""
    high: tuple[float, ...]
    """Upper bound of each component."""
    dtype: str
    """numpy dtype of the action vector (``float32``)."""
    decoding: dict[str, Any]
    """The market parameters the action decoder reads (:data:`DECODING_FIELDS`)."""


@dataclass(frozen=True)
class Normalisation:
    """VecNormalize's observation transform, ``clip((obs - mean) / sqrt(var + epsilon),
    -clip_obs, clip_obs)`` in float64; the graph holds the same numbers as constants."""

    mean: tuple[float, ...]
    var: tuple[float, ...]
    epsilon: float
    clip_obs: float


@dataclass(frozen=True)
class Parity:
    """How far the exported graph, run by ONNX Runtime, is from the training library."""

    max_abs_error: float
    """Largest absolute difference of any action component."""
    tolerance: float
    """The export refuses a larger error."""
    observations: int
    """Observations compared (zeros, +-clip, +-1e6 and random ones)."""
    reference: str
    """What the graph was compared with."""


@dataclass(frozen=True)
class NetworkSpec:
    """The ONNX network of a learned or residual bundle."""

    file: str
    """Its file in the bundle (``policy.onnx``)."""
    algo: Literal["ppo", "sac"]
    """The stable-baselines3 algorithm that trained it."""
    output: Literal["action", "correction"]
    """``action``: the env action; ``correction``: the residual correction to the baseline."""
    input_name: str
    output_name: str
    opset: int
    """ONNX opset of the graph (default domain)."""
    exporter: str
    """Which exporter wrote it (``torchscript``: ``torch.onnx.export(dynamo=False)``)."""
    exporter_version: str
    """The torch version that exported it."""
    normalisation: Normalisation
    parity: Parity


@dataclass(frozen=True)
class BaselineSpec:
    """A registered baseline: the policy of a baseline bundle, the base of a residual one."""

    name: str
    settings: dict[str, Any]
    """Its keyword settings, all of them (defaults included), so a later change of a default
    does not change the bundle's policy."""


@dataclass(frozen=True)
class VettingRecord:
    """The vetting report the export found, and whether it was overridden."""

    verdict: Literal["pass", "fail"] | None
    """The report's verdict; None when no report for this policy was found."""
    report_sha256: str | None
    """sha256 of the bundle's ``vetting.json`` (the report as copied in)."""
    forced: bool
    """True when the policy was exported with ``force=true`` (no report, or not a pass)."""
    problem: str | None
    """Why the export needed ``force`` (None for a pass)."""


@dataclass(frozen=True)
class Provenance:
    """Where the bundle came from."""

    mmgym_version: str
    commit: str
    """Short hash of mmgym's checkout at export (``unknown`` outside a git checkout)."""
    exported_at: str
    """UTC time of the export, ISO 8601."""
    source: str
    """``run:<directory>`` or ``baseline:<name>``."""
    source_sha256: dict[str, str]
    """sha256 of the run's files the bundle was made from (``model.zip``, ...)."""


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: everything needed to check and run a bundle's policy."""

    schema_version: int
    """:data:`SCHEMA_VERSION`; a bundle of another version is refused."""
    kind: Literal["learned", "residual", "baseline"]
    """``learned``: the network's output is the action; ``residual``: baseline + bounded
    correction (:func:`agents.residual_policy.residual_action`); ``baseline``: a registered
    baseline alone (no network)."""
    files: dict[str, FileEntry]
    """Every file of the bundle except the manifest."""
    observation: ObservationSpec
    action: ActionSpec
    market: dict[str, Any]
    """The full :class:`~mmgym.core.params.MarketParams` the policy was trained for (the
    decoder's settings, the observation builder's, the baseline's market)."""
    network: NetworkSpec | None
    """The ONNX network (None for a baseline bundle)."""
    baseline: BaselineSpec | None
    """The baseline (None for a learned bundle)."""
    residual_scale: float | None
    """Largest correction per action component (residual bundles only)."""
    training_config: dict[str, Any] | None
    """The run's resolved ``config.yaml`` (None for a baseline exported by name)."""
    vetting: VettingRecord
    provenance: Provenance
    digest: str
    """sha256 of the manifest's canonical JSON without this field: an edit shows."""

    def to_json(self) -> str:
        """The manifest as JSON text (finite numbers only)."""
        return json.dumps(dataclasses.asdict(self), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate a manifest; BundleError names the first bad field."""
        return cls.from_dict(_parse_json(text, MANIFEST))

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        """Validate a parsed manifest: schema version first, then every field's type, then
        the fields' consistency."""
        check_schema_version(data)
        manifest: Manifest = _decode(cls, data, "")
        manifest.validate()
        return manifest

    def sealed(self) -> Manifest:
        """This manifest with its digest set."""
        return dataclasses.replace(self, digest=manifest_digest(dataclasses.asdict(self)))

    def validate(self) -> None:
        """Raise BundleError naming the first inconsistency between the fields."""
        errors = _inconsistencies(self)
        if errors:
            raise BundleError(f"{MANIFEST}: {errors[0]}")


def check_schema_version(data: Any) -> None:
    """Refuse a manifest of another schema version (before reading anything else)."""
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise BundleError(
            f"{MANIFEST}: schema_version is {version!r}; this mmgym reads version "
            f"{SCHEMA_VERSION} only (re-export the policy with this mmgym)"
        )


def manifest_digest(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of ``data`` without ``digest``."""
    body = {key: value for key, value in data.items() if key != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _inconsistencies(m: Manifest) -> list[str]:
    errors: list[str] = []
    if m.kind == "baseline":
        if m.network is not None or m.baseline is None or m.residual_scale is not None:
            errors.append("kind 'baseline' needs a baseline, and no network or residual_scale")
    elif m.network is None:
        errors.append(f"kind {m.kind!r} needs a network")
    else:
        want = "correction" if m.kind == "residual" else "action"
        if m.network.output != want:
            errors.append(f"network.output is {m.network.output!r}, kind {m.kind!r} needs {want!r}")
        if m.network.file not in m.files:
            errors.append(f"network.file {m.network.file!r} is not in files")
        n = m.observation.dim
        norm = m.network.normalisation
        if len(norm.mean) != n or len(norm.var) != n:
            errors.append(
                f"network.normalisation has {len(norm.mean)} means and {len(norm.var)} "
                f"variances for {n} observation features"
            )
    if m.kind == "residual":
        scale = m.residual_scale
        if m.baseline is None or scale is None or not (math.isfinite(scale) and scale >= 0):
            errors.append("kind 'residual' needs a baseline and a finite residual_scale >= 0")
    if m.kind == "learned" and (m.baseline is not None or m.residual_scale is not None):
        errors.append("kind 'learned' has no baseline or residual_scale")
    for name, entry in m.files.items():
        if name == MANIFEST or "/" in name or "\\" in name or name in ("", ".", ".."):
            errors.append(f"files: {name!r} is not a file name of a bundle")
        if not _SHA256.fullmatch(entry.sha256) or entry.size < 0:
            errors.append(f"files: {name!r} has no valid sha256 and size")
    if len(m.observation.names) != m.observation.dim:
        errors.append(f"observation: {len(m.observation.names)} names for dim {m.observation.dim}")
    if not len(m.action.names) == len(m.action.low) == len(m.action.high):
        errors.append("action: names, low and high differ in length")
    v = m.vetting
    if not v.forced and v.verdict != "pass":
        errors.append(f"vetting: verdict {v.verdict!r} without forced")
    if (v.verdict is None) != (v.report_sha256 is None):
        errors.append("vetting: a verdict needs the report's sha256 and the other way round")
    if v.report_sha256 is not None:
        report = m.files.get(VETTING_JSON)
        if report is None or report.sha256 != v.report_sha256:
            errors.append(f"vetting: report_sha256 is not the sha256 of {VETTING_JSON} in files")
    return errors


# --- the installed specs and the market ------------------------------------------------------


def observation_spec(params: MarketParams) -> ObservationSpec:
    """The installed observation builder's spec for a market with ``params``."""
    k = params.num_assets
    config = ObservationConfig.from_market(params)
    builder = ObservationBuilder(config, 1, k)
    return ObservationSpec(
        names=observation_names(k),
        dim=observation_dim(k),
        dtype=str(builder.obs.dtype),
        num_assets=k,
        builder=_jsonable(dataclasses.asdict(config)),
    )


def action_spec(params: MarketParams) -> ActionSpec:
    """The installed action decoder's spec for a market with ``params``."""
    names = action_names(params.num_assets)
    return ActionSpec(
        names=names,
        low=(ACTION_LOW,) * len(names),
        high=(ACTION_HIGH,) * len(names),
        dtype="float32",
        decoding={name: getattr(params, name) for name in DECODING_FIELDS},
    )


def market_to_json(params: MarketParams) -> dict[str, Any]:
    """Every market parameter as JSON values (tuples become lists)."""
    out: dict[str, Any] = _jsonable(dataclasses.asdict(params))
    return out


def market_from_json(data: dict[str, Any]) -> MarketParams:
    """The market parameters of :func:`market_to_json`, validated; ValueError names a field
    unknown to the installed mmgym, a missing one, or an invalid value."""
    valid = field_names()
    unknown = sorted(set(data) - set(valid))
    missing = [name for name in valid if name not in data]
    if unknown:
        raise ValueError(f"market parameter(s) {unknown} unknown to the installed mmgym")
    if missing:
        raise ValueError(f"market parameter(s) {missing} missing")
    return MarketParams(**{name: _tuples(value) for name, value in data.items()}).validate()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def first_difference(bundle: Any, installed: Any, where: str) -> str | None:
    """The first place where two specs (dataclasses or JSON values) differ, described, or
    None when they are equal."""
    if dataclasses.is_dataclass(bundle) and dataclasses.is_dataclass(installed):
        for f in dataclasses.fields(bundle):
            found = first_difference(
                getattr(bundle, f.name), getattr(installed, f.name), f"{where}.{f.name}"
            )
            if found:
                return found
        return None
    if isinstance(bundle, dict) and isinstance(installed, dict):
        for key in sorted(set(bundle) | set(installed)):
            if key not in installed:
                return f"{where}.{key} is in the bundle but unknown to the installed mmgym"
            if key not in bundle:
                return f"{where}.{key} of the installed mmgym is missing from the bundle"
            found = first_difference(bundle[key], installed[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(bundle, list | tuple) and isinstance(installed, list | tuple):
        for i, (a, b) in enumerate(zip(bundle, installed, strict=False)):
            found = first_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        if len(bundle) != len(installed):
            return f"{where} has {len(bundle)} entries in the bundle, {len(installed)} installed"
        return None
    if _numbers(bundle, installed):
        same = float(bundle) == float(installed)
    else:
        same = type(bundle) is type(installed) and bundle == installed
    if not same:
        return f"{where} is {bundle!r} in the bundle but {installed!r} in the installed mmgym"
    return None


def _numbers(a: Any, b: Any) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b))


# --- loading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """A verified, loaded bundle."""

    path: Path
    manifest: Manifest
    market: MarketParams
    """The market the policy was trained for (its decoder and builder settings)."""
    observation_config: ObservationConfig
    """The observation builder's settings for this market (same as in training)."""
    policy: Policy
    """The bundle's policy: raw observations ``(n, obs_dim)`` to actions ``(n, action_dim)``."""


def load_bundle(path: str | Path) -> Bundle:
    """Verify and load the bundle in directory ``path``.

    In order: the manifest's schema version, its digest and fields; the size and sha256 of
    every file, and no file beyond those listed; the market parameters; the observation and
    action specs against the installed builder and decoder (the first difference is named);
    the vetting report's verdict against the manifest's. Only then is the network loaded
    (from the bytes that were hashed) and the policy built. Raises :class:`BundleError`.
    """
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle (no such directory)")
    data = _parse_json(_read(root, MANIFEST), MANIFEST)
    check_schema_version(data)
    if manifest_digest(data) != data.get("digest"):
        raise BundleError(
            f"{root / MANIFEST}: its content does not match its digest (edited after export)"
        )
    manifest = Manifest.from_dict(data)
    contents = _verified_files(root, manifest)
    try:
        market = market_from_json(manifest.market)
    except (ValueError, TypeError) as err:
        raise BundleError(f"{root / MANIFEST}: market: {err}") from None
    for name, bundled, installed in (
        ("observation", manifest.observation, observation_spec(market)),
        ("action", manifest.action, action_spec(market)),
    ):
        difference = first_difference(bundled, installed, name)
        if difference:
            raise BundleError(
                f"{root / MANIFEST}: the bundle's {name} spec differs from the installed "
                f"mmgym's: {difference}"
            )
    if VETTING_JSON in contents:
        report = _parse_json(contents[VETTING_JSON], VETTING_JSON)
        verdict = report.get("verdict") if isinstance(report, dict) else None
        if verdict != manifest.vetting.verdict:
            raise BundleError(
                f"{root / VETTING_JSON}: verdict {verdict!r}, the manifest says "
                f"{manifest.vetting.verdict!r}"
            )
    policy = _build_policy(root, manifest, market, contents)
    return Bundle(root, manifest, market, ObservationConfig.from_market(market), policy)


def _build_policy(
    root: Path, manifest: Manifest, market: MarketParams, contents: dict[str, bytes]
) -> Policy:
    base = None
    if manifest.baseline is not None:
        spec = manifest.baseline
        try:
            settings = {key: _tuples(value) for key, value in spec.settings.items()}
            base = make_baseline(spec.name, market, **settings)
        except (ValueError, TypeError) as err:
            raise BundleError(f"{root / MANIFEST}: baseline: {err}") from None
    if manifest.network is None:
        assert base is not None  # Manifest.validate
        return base
    try:
        network = OnnxPolicy(
            contents[manifest.network.file], manifest.observation.dim, len(manifest.action.names)
        )
    except Exception as err:  # onnxruntime raises its own types for a bad graph
        raise BundleError(f"{root / manifest.network.file}: not a usable network: {err}") from None
    if base is None:
        return network
    assert manifest.residual_scale is not None  # Manifest.validate
    return ResidualPolicy(base, network, manifest.residual_scale)


def _read(root: Path, name: str) -> bytes:
    path = root / name
    if not path.is_file():
        raise BundleError(f"{path}: missing")
    return path.read_bytes()


def _verified_files(root: Path, manifest: Manifest) -> dict[str, bytes]:
    """The bytes of every listed file, each checked against its size and sha256."""
    present = {p.name for p in root.iterdir()}
    unexpected = sorted(present - set(manifest.files) - {MANIFEST})
    if unexpected:
        raise BundleError(f"{root / unexpected[0]}: not listed in the manifest")
    contents = {}
    for name, entry in manifest.files.items():
        data = _read(root, name)
        if len(data) != entry.size:
            shorter = " (truncated?)" if len(data) < entry.size else ""
            raise BundleError(
                f"{root / name}: {len(data)} bytes, the manifest says {entry.size}{shorter}"
            )
        digest = sha256_of(data)
        if digest != entry.sha256:
            raise BundleError(
                f"{root / name}: sha256 {digest} differs from the manifest's {entry.sha256} "
                "(the file was changed)"
            )
        contents[name] = data
    return contents


def _parse_json(text: str | bytes, name: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise BundleError(f"{name}: not valid JSON ({err})") from None


# --- typed decoding of JSON into the dataclasses ---------------------------------------------


def _decode(kind: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as type ``kind``; BundleError names the field ``where``."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        return _decode_dataclass(kind, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, value, where)
    if origin is Literal:
        if value not in args:
            _wrong(where, f"one of {list(args)}", value)
        return value
    if origin is tuple:
        if not isinstance(value, list):
            _wrong(where, "a list", value)
        return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            _wrong(where, "an object", value)
        return {k: _decode(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if kind is Any:
        return value
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value):
            _wrong(where, "a finite number", value)
        return float(value)
    if kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            _wrong(where, "an integer", value)
        return value
    if kind in (str, bool):
        if not isinstance(value, kind):
            _wrong(where, f"a {kind.__name__}", value)
        return value
    raise TypeError(f"no decoder for {kind!r}")  # a schema field of an unhandled type


def _decode_dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        _wrong(where or "the manifest", "an object", value)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(value) - set(names))
    missing = [n for n in names if n not in value]
    prefix = f"{where}." if where else ""
    if unknown:
        raise BundleError(f"{MANIFEST}: unknown field {prefix}{unknown[0]}")
    if missing:
        raise BundleError(f"{MANIFEST}: missing field {prefix}{missing[0]}")
    return cls(**{n: _decode(hints[n], value[n], f"{prefix}{n}") for n in names})


def _wrong(where: str, expected: str, value: Any) -> typing.NoReturn:
    shown = repr(value) if len(repr(value)) < 80 else f"{type(value).__name__}"
    raise BundleError(f"{MANIFEST}: {where} must be {expected}, got {shown}")


def sha256_of(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def numbers(values: Any) -> tuple[float, ...]:
    """A float64 array as a tuple of Python floats (exact in JSON)."""
    return tuple(float(v) for v in np.asarray(values, dtype=np.float64).ravel())
