"""Structured-config schemas registered with Hydra's ConfigStore.

Each YAML under ``conf/`` names its schema in its defaults list, so a misspelt key or a wrong
type fails at composition, before any compute, with the key's name.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from agents.baselines.registry import BASELINES, load_all, setting_types, settings_of
from agents.deploy.risk.limits import RiskLimits
from agents.deploy.vetting.config import VetConfig
from agents.evaluation import EvaluationConfig
from agents.seeds import check_seed


@dataclass
class EnvConfig:
    """The market to train or evaluate on: a scenario and parameter overrides."""

    scenario: str = "calm"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class ResidualSettings:
    """Settings every stable-baselines3 agent shares: an optional baseline to learn on top of
    (:mod:`agents.residual`). They are not arguments of the SB3 algorithm."""

    residual_on: str | None = None
    """A baseline's name: the network learns a bounded correction added to that baseline's
    action (residual policy learning); None: the network's output is the action."""
    residual_scale: float = 0.5
    """Largest correction per action component (actions lie in [-1, 1])."""


@dataclass
class PPOConfig(ResidualSettings):
    """stable-baselines3 PPO (one machine). Field meanings as in SB3's PPO."""

    algo: str = "ppo"
    learning_rate: float = 3e-4
    n_steps: int = 128
    batch_size: int = 1024
    n_epochs: int = 5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    log_std_init: float = -0.5


@dataclass
class SACConfig(ResidualSettings):
    """stable-baselines3 SAC (one machine). Field meanings as in SB3's SAC."""

    algo: str = "sac"
    learning_rate: float = 3e-4
    buffer_size: int = 200_000
    learning_starts: int = 5_000
    batch_size: int = 256
    tau: float = 0.005
    gamma: float = 0.99
    train_freq: int = 1
    gradient_steps: int = 1
    net_arch: list[int] = field(default_factory=lambda: [64, 64])


@dataclass
class BaselineAgentConfig:
    """A registered baseline as the agent (``agent=adaptive``, ...): ``algo`` is its name and
    every other field one of its settings, with the baseline's own default. A training run of a
    baseline evaluates it on the held-out markets and logs it as a learner's run is logged."""

    algo: str = MISSING

    def settings(self) -> dict[str, Any]:
        """The baseline's keyword settings (lists back to the tuples its signature takes)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name != "algo":
                value = getattr(self, f.name)
                out[f.name] = tuple(value) if isinstance(value, list) else value
        return out


def baseline_schema(name: str) -> type[BaselineAgentConfig]:
    """The structured-config schema of baseline ``name``, built from its settings."""
    kinds = setting_types(name)
    fields: list[tuple[str, Any, Any]] = [("algo", str, field(default=name))]
    for setting, default in settings_of(name).items():
        kind = kinds[setting]
        if typing.get_origin(kind) is tuple:  # OmegaConf has lists, not tuples
            item = next((a for a in typing.get_args(kind) if a is not Ellipsis), Any)
            kind = list[item]  # type: ignore[valid-type]
            fields.append((setting, kind, field(default_factory=_list_of(default))))
        else:
            fields.append((setting, kind, field(default=default)))
    schema_name = "".join(part.title() for part in name.split("_")) + "Config"
    return dataclasses.make_dataclass(schema_name, fields, bases=(BaselineAgentConfig,))


def _list_of(values: Any) -> Any:
    return lambda: list(values)


@dataclass
class TrainConfig:
    """Budget, batch and evaluation cadence of a training run."""

    total_steps: float = 200_000
    """Env steps (summed over envs); a float so ``2e6`` works on the command line."""
    num_envs: int = 64
    episode_seconds: float = 600.0
    """Training episode length (market seconds)."""
    normalize_reward: bool = True
    eval_every_steps: float = 50_000
    """Evaluate against the baselines every this many env steps (0: only at the end)."""
    eval_num_envs: int = 32
    eval_seed: int = 10_000
    """Held-out seed of the evaluation markets (training seeds are small integers)."""
    eval_baselines: list[str] = field(default_factory=lambda: ["linear_skew", "adaptive"])
    checkpoint_every_steps: float = 100_000
    """Save a checkpoint every this many env steps (0: none)."""
    torch_threads: int = 1
    """Torch threads for SB3 (0: torch's default). One is much faster for these small networks
    on small machines: with two, a forward pass can cost 100x more when a core is busy."""
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.total_steps) and int(self.total_steps) >= 1):
            raise ValueError(
                f"train.total_steps must be at least 1 env step, got {self.total_steps:g}"
            )
        for name in ("num_envs", "eval_num_envs"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.episode_seconds > 0:
            raise ValueError(f"train.episode_seconds must be > 0, got {self.episode_seconds:g}")
        for name, zero in (
            ("eval_every_steps", "only at the end"),
            ("checkpoint_every_steps", "none"),
            ("torch_threads", "torch's default"),
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"train.{name} must be >= 0 (0: {zero}), got {value:g}")
        check_seed("train.eval_seed", self.eval_seed)
        load_all()
        unknown = sorted(set(self.eval_baselines) - set(BASELINES))
        if unknown:
            raise ValueError(
                f"train.eval_baselines: unknown {unknown}; registered baselines: "
                f"{sorted(BASELINES)}"
            )


LOG_FORMATS = ("csv", "json", "stdout", "log")
"""Outputs a run's scalars can go to besides TensorBoard (stable-baselines3's formats)."""


@dataclass
class LoggerConfig:
    """What a training run records (the ``logger`` group), besides its config and summary."""

    tensorboard: bool = True
    """Event files under ``<run>/tensorboard/``."""
    formats: list[str] = field(default_factory=list)
    """Other outputs of the same scalars: ``csv`` (``progress.csv``), ``json``
    (``progress.json``), ``stdout`` (a table per rollout), ``log`` (``log.txt``)."""
    market_scalars: bool = True
    """The ``mm/*`` scalars (PnL and its parts, |inventory|, adverse selection)."""
    markout_seconds: float = 10.0
    """Horizon of ``mm/adverse_selection`` (rounded to whole decisions, at least one)."""
    hparams: bool = True
    """An hparams entry (settings against the final evaluation) for TensorBoard's HPARAMS."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.formats) - set(LOG_FORMATS))
        if unknown:
            raise ValueError(f"logger.formats: unknown {unknown}; valid are {list(LOG_FORMATS)}")
        if not self.markout_seconds > 0:
            raise ValueError(f"logger.markout_seconds must be > 0, got {self.markout_seconds}")


@dataclass
class RiskConfig:
    """The RiskLimiter around the training env (the ``risk`` group): ``risk=default`` trains
    under the production limits, ``risk=none`` (the default) without a limiter."""

    enabled: bool = False
    limits: dict[str, Any] = field(default_factory=dict)
    """Changes to the :class:`~agents.deploy.risk.RiskLimits` defaults, by field name
    (docs/deploy.md lists every limit), e.g. ``risk.limits.max_position=5``."""

    def __post_init__(self) -> None:
        self.to_limits()  # a misspelt or invalid limit fails at composition, naming it

    def to_limits(self) -> RiskLimits | None:
        """The limits, or None when the limiter is off."""
        limits = RiskLimits().replace(**self.limits)
        return limits if self.enabled else None


@dataclass
class TrainJob:
    """``scripts/train.py``: one SB3 training run."""

    env: EnvConfig = field(default_factory=EnvConfig)
    agent: Any = MISSING
    """One of the agent group's schemas (PPOConfig, SACConfig, RLlibPPOConfig or a baseline's
    :class:`BaselineAgentConfig`); chosen by ``agent=...``."""
    train: TrainConfig = field(default_factory=TrainConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    risk: RiskConfig = field(default_factory=RiskConfig)
    """The RiskLimiter around the training env (off by default)."""
    seed: int = 0

    def __post_init__(self) -> None:
        check_seed("seed", self.seed)


@dataclass
class RLlibPPOConfig:
    """RLlib PPO on the new API stack (RLModule, Learner, EnvRunners), on a local Ray instance or
    a cluster. Defaults mirror :class:`PPOConfig` (same batch, minibatch, epochs, network)."""

    algo: str = "rllib_ppo"
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_param: float = 0.2
    entropy_coeff: float = 0.0
    vf_loss_coeff: float = 0.5
    vf_clip_param: float = 10.0
    grad_clip: float | None = 0.5
    train_batch_size: int = 8192
    """Env steps sampled per training iteration (RLlib's ``train_batch_size_per_learner``)."""
    minibatch_size: int = 1024
    num_epochs: int = 5
    fcnet_hiddens: list[int] = field(default_factory=lambda: [64, 64])
    fcnet_activation: str = "tanh"
    vf_share_layers: bool = False
    normalize_obs: bool = True
    """RLlib's MeanStdFilter on observations (statistics merged over EnvRunners)."""
    num_env_runners: int = 1
    """Sampling actors (0: sample in the training process itself)."""
    num_envs_per_env_runner: int | None = None
    """Envs in each runner's native vector env (None: ``train.num_envs / max(1, runners)``)."""
    num_cpus_per_env_runner: float = 1.0
    torch_threads: int = 1
    """Torch threads of the training process (the learner; the sampler too without EnvRunners);
    0: torch's default (one per core). EnvRunners get one thread each from Ray."""
    ray_address: str | None = None
    """None: start a local Ray instance; ``"auto"`` or ``"ray://host:10001"``: join a cluster."""
    ray_num_cpus: int | None = None
    """CPUs of the local Ray instance (None: every core); ignored when joining a cluster."""


@dataclass
class SweepConfig:
    """A Ray Tune grid over settings of the training job (``scripts/tune.py``)."""

    name: str = "sweep"
    grid: dict[str, list[Any]] = field(default_factory=dict)
    """Dotted keys of the training job (``agent.lr``, ``env.scenario``, ``seed``, ...) to the
    values to try; the trials are their Cartesian product."""
    fixed: dict[str, Any] = field(default_factory=dict)
    """Dotted keys set in every trial (e.g. ``train.total_steps``)."""
    metric: str = "eval/rllib_ppo/pnl"
    """The reported metric that ranks the trials: ``eval/<policy>/<metric>``, the trials'
    policy named ``rllib_ppo`` (:mod:`agents.policy_names`)."""
    mode: str = "max"
    max_concurrent_trials: int = 0
    """0: as many as the cluster's CPUs allow."""
    cpus_per_trial: float | None = None
    """None: one for the trial (its learner) plus one per EnvRunner."""
    ray_address: str | None = None
    """None: a local Ray instance; ``"auto"`` or ``"ray://host:10001"``: an existing cluster."""
    ray_num_cpus: int | None = None
    """CPUs of the local Ray instance (None: every core); ignored when joining a cluster."""
    storage_path: str | None = None
    """Where Tune keeps trials (None: the run directory; a shared path on a cluster)."""


@dataclass
class TuneJob:
    """``scripts/tune.py``: a base training job (RLlib) and the sweep over it."""

    env: EnvConfig = field(default_factory=EnvConfig)
    agent: Any = MISSING
    """The RLlib agent schema (RLlibPPOConfig), chosen by ``agent=...``."""
    train: TrainConfig = field(default_factory=TrainConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    seed: int = 0
    sweep: SweepConfig = field(default_factory=SweepConfig)

    def __post_init__(self) -> None:
        check_seed("seed", self.seed)


@dataclass
class EvaluateJob:
    """``scripts/evaluate.py``: what to evaluate and where the results go."""

    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    tensorboard: bool = True
    """Write TensorBoard scalars next to the report."""


@dataclass
class ExportJob:
    """``scripts/export.py`` (``mmgym-export``): a policy to a bundle (docs/deploy.md)."""

    run: str | None = None
    """A training run directory: SB3 PPO or SAC (plain or residual), or a baseline's run."""
    baseline: str | None = None
    """Instead of ``run``: a registered baseline, bundled alone with its default settings for
    the market ``env``."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """The market of a ``baseline=`` bundle (a run's bundle has the run's market)."""
    out: str = MISSING
    """The bundle directory to write."""
    vetting: str | None = None
    """The vetting report (default: ``<run>/vetting/vetting.json``)."""
    force: bool = False
    """Export without a passing vetting report for these files (the manifest records it)."""
    overwrite: bool = False
    """Replace an existing bundle directory ``out``."""


@dataclass
class VetJob:
    """``scripts/vet.py`` (``mmgym-vet``): vet a policy over the stress suite (docs/deploy.md)."""

    policy: str = MISSING
    """``run:<training run dir>``, ``baseline:<name>`` or ``bundle:<bundle dir>``."""
    vet: VetConfig = field(default_factory=VetConfig)
    """The stress suite and thresholds (``vet=default`` or ``vet=demo``)."""
    risk: RiskConfig = field(default_factory=lambda: RiskConfig(enabled=True))
    """The RiskLimiter's limits (``risk=default``: the production limits); never off."""
    out: str | None = None
    """Where the report goes (default: ``<run>/vetting/`` for a run, else
    ``runs/vet/<time>/``)."""
    progress: bool = True
    """A progress bar over scenarios x policies."""

    def __post_init__(self) -> None:
        if not self.risk.enabled:
            raise ValueError(
                "vetting runs the policy through the RiskLimiter: risk=none is not allowed "
                "(use risk=default and change limits with risk.limits.<name>=<value>)"
            )


PAPER_COINS: tuple[str, ...] = ("BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX", "LINK", "LTC")
"""Default names of the paper exchange's perps, the first ``num_assets`` of them."""


@dataclass
class PaperExchangeJob:
    """``scripts/paper_exchange.py`` (``mmgym-paper-exchange``): the market of ``env`` served
    over Hyperliquid's API on 127.0.0.1 (docs/live.md)."""

    env: EnvConfig = field(default_factory=EnvConfig)
    user: str = MISSING
    """The account's address (0x and 40 hex digits): the one account the exchange keeps."""
    api_wallet: str | None = None
    """The address allowed to sign actions (an API wallet, Hyperliquid's "agent"); None:
    ``user`` itself. (Not ``agent``: that name is the training configs' agent group.)"""
    port: int = 8765
    """TCP port on 127.0.0.1; 0 picks a free one (printed)."""
    time_mode: str = "lockstep"
    """``wall``, ``accelerated`` (x ``speed``) or ``lockstep`` (``POST /paper/advance``)."""
    speed: float = 10.0
    """Decision intervals per ``decision_interval`` of wall time in ``accelerated`` mode."""
    seed: int = 0
    episode_seconds: float = 7 * 24 * 3600.0
    """Market time (s) before the market closes (the env's episode)."""
    coins: list[str] = field(default_factory=lambda: list(PAPER_COINS))
    """Names of the perps, the first ``num_assets`` used."""
    epoch_ms: int | None = None
    """Time stamp (ms) of the market's start; None: the wall clock at start, in whole seconds."""
    start_on_subscribe: bool = False
    """``wall`` and ``accelerated``: start the market's clock at the first WebSocket
    subscription instead of at the server's start."""
    market_log: str | None = None
    """A JSON-lines file the exchange appends each interval's crowd liquidations and forced
    volume to (``PaperVenue.crowd_event``); None: none."""

    def __post_init__(self) -> None:
        check_seed("seed", self.seed)
        for name in ("user", "api_wallet"):
            value = getattr(self, name)
            if value is not None and not _is_address(value):
                raise ValueError(f"{name} must be an address, 0x and 40 hex digits, got {value!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535] (0: a free port), got {self.port}")
        from mmgym.exchange.clock import Clock

        Clock(self.time_mode, self.speed)  # a bad mode or speed fails at composition


@dataclass
class PaperJob:
    """``scripts/paper.py`` (``make paper``): a paper session of the demo's bundle (else a
    vetted ``baseline``'s) on a liquidation cascade (docs/operations.md)."""

    env: EnvConfig = field(default_factory=EnvConfig)
    """The paper exchange's market (``env=liquidation_cascade``)."""
    seed: int = 0
    """The market's seed (the paper exchange's ``seed``)."""
    market_seconds: float = 480.0
    """Market time (s) of the session: the runner stops after this many decision intervals."""
    time_mode: str = "lockstep"
    """``lockstep``: the runner advances the exchange one interval per decision, as fast as it
    decides (deterministic); ``accelerated``: the exchange runs ``speed`` intervals per interval
    of wall time and the runner decides on the host's clock at that pace."""
    speed: float = 10.0
    """Decision intervals per ``decision_interval`` of wall time (``accelerated``)."""
    risk: RiskConfig = field(default_factory=lambda: RiskConfig(enabled=True))
    """The runner's limits (``risk=paper``); never off."""
    vet: VetConfig = field(default_factory=VetConfig)
    """The stress suite that vets the baseline when no demo bundle is used (``vet=demo``)."""
    baseline: str = "adaptive"
    """The baseline traded when no demo run passed vetting."""
    runs: str = "runs"
    """Where the demo's runs are read (``<runs>/demo/<time>/``) and the session is written
    (``<runs>/paper/<time>/``; the baseline's vetted bundle is kept in ``<runs>/paper/``)."""
    progress_every: int = 60
    """Decisions between two progress lines."""
    cascade_gap_s: float = 30.0
    """Crowd liquidations less than this far apart (s of market time) are one cascade."""
    cascade_after_s: float = 120.0
    """The cascade's window runs this long after its last forced order (the limiter's
    ``rolling_window_seconds`` in ``risk=paper``: the market move it reacts to)."""
    timeout_s: float = 900.0
    """Wall-time bound of the session; past it both servers are stopped."""

    def __post_init__(self) -> None:
        check_seed("seed", self.seed)
        if not self.risk.enabled:
            raise ValueError(
                "the paper session trades through the RiskLimiter: risk=none is refused"
            )
        if self.time_mode not in ("lockstep", "accelerated"):
            raise ValueError(f"time_mode must be lockstep or accelerated, got {self.time_mode!r}")
        for name in ("market_seconds", "speed", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.progress_every < 1:
            raise ValueError(f"progress_every must be >= 1, got {self.progress_every}")
        for name in ("cascade_gap_s", "cascade_after_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


LIVE_PACING = ("wall", "lockstep")


@dataclass
class WebhookConfig:
    """Where alerts are posted (``alerts.webhook``; docs/operations.md, "Alerts")."""

    url: str | None = None
    """http(s) URL the alerts are POSTed to as JSON (None: no webhook)."""
    timeout_s: float = 5.0
    """Per post."""
    queue_size: int = 100
    """Posts waiting at most; more are dropped (logged)."""
    max_per_minute: float = 30.0
    """Posts a minute at most, over all rules (more are dropped, logged)."""

    def __post_init__(self) -> None:
        if self.url is not None:
            from agents.ops.alert_rules import check_webhook_url

            check_webhook_url(self.url)
        if not self.timeout_s > 0 or self.queue_size < 1 or not self.max_per_minute > 0:
            raise ValueError(
                "alerts.webhook: timeout_s and max_per_minute must be > 0, queue_size >= 1"
            )


@dataclass
class AlertsConfig:
    """The live runner's alert rules (the ``live/alerts`` group, conf/live/alerts/*.yaml)."""

    rules: list[Any] = field(default_factory=list)
    """Each a mapping: name, condition, threshold, severity, action, [window], [resolve_after_s],
    [cooldown_s] (:class:`agents.ops.alert_rules.Rule`)."""
    webhook: WebhookConfig = field(default_factory=WebhookConfig)

    def __post_init__(self) -> None:
        self.to_rules()  # a bad rule fails at composition, naming it

    def to_rules(self) -> tuple[Any, ...]:
        """The checked rules (:class:`agents.ops.alert_rules.Rule`)."""
        from agents.ops.alert_rules import parse_rules

        plain = OmegaConf.to_container(self.rules) if isinstance(self.rules, ListConfig) else None
        return parse_rules(plain if plain is not None else self.rules)


@dataclass
class LiveJob:
    """``scripts/live.py`` (``mmgym-live``): trade a bundle on a Hyperliquid-protocol venue (the
    paper exchange or Hyperliquid) through the guarded live runner (docs/live.md). The key
    comes from ``$MMGYM_HL_PRIVATE_KEY`` or a 0600 file named by ``$MMGYM_HL_KEY_FILE``, never from
    config."""

    bundle: str = MISSING
    """The bundle directory (``mmgym-export``)."""
    account: str = MISSING
    """The account's address (0x and 40 hex digits); the key may be an API wallet's."""
    journal: str = MISSING
    """The journal file (SQLite); an existing one is recovered from before trading."""
    url: str = "http://127.0.0.1:8765"
    """The venue: the paper exchange's URL, or Hyperliquid's (testnet or mainnet)."""
    coins: list[str] = field(default_factory=lambda: list(PAPER_COINS))
    """The venue's coin of each of the bundle's perps (the first ``num_assets``)."""
    hedge: bool = False
    """Trade the policy's hedge fraction on ``<COIN>-HEDGE`` (the paper exchange's hedge venue)."""
    pacing: str = "wall"
    """``wall``: decide every ``decision_seconds`` of the host's clock; ``lockstep``: advance the
    paper exchange (``time_mode=lockstep``) one interval per decision."""
    decision_seconds: float | None = None
    """Host seconds between decisions (``wall``); None: the bundle's decision interval."""
    max_decisions: int | None = None
    """Stop after this many decisions (None: until SIGINT/SIGTERM or the market's end)."""
    epoch_ms: int | None = None
    """Venue time (ms) of the episode's start; None: the first decision's."""
    collateral: float | None = None
    """The account's collateral (quote currency); None: the venue's account value at start."""
    synchronous: str = "FULL"
    """The journal's SQLite ``synchronous``: ``FULL`` (survives power loss) or ``NORMAL``."""
    checkpoint_seconds: float | None = 1.0
    """The journal's WAL is checkpointed by a thread this often, off the quote path (None:
    SQLite's automatic checkpoints, on whichever append crosses 1,000 WAL pages)."""
    reconcile_every: int = 30
    """Reconcile with the venue every this many decisions."""
    on_disconnect: str = "reduce"
    """``reduce`` or ``halt`` when the venue's stream drops (docs/live.md)."""
    dead_mans_switch_s: float | None = 60.0
    """The venue's scheduleCancel is kept this far ahead (None: off)."""
    order_ttl_ms: int | None = 30_000
    """Orders carry ``expiresAfter`` this far ahead (None: none)."""
    nonce_file: str | None = None
    """Keeps nonces increasing across restarts (default: next to the journal)."""
    seed: int | None = 0
    """Seeds cloids and jitter (None: the OS's random stream)."""
    risk: RiskConfig = field(default_factory=lambda: RiskConfig(enabled=True))
    """The RiskLimiter's limits (``risk.limits.<name>=<value>``); never off."""
    ops_port: int | None = None
    """The operator's controls on 127.0.0.1:<port> (0: a free port, logged and journaled; None:
    off); the token from ``$MMGYM_OPS_TOKEN`` or ``$MMGYM_OPS_TOKEN_FILE`` (docs/operations.md)."""
    metrics_port: int | None = None
    """Prometheus metrics on 127.0.0.1:<port>/metrics (0: a free port; None: off)."""
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    """The alert rules and webhook (``live/alerts@alerts=default|none``; docs/operations.md)."""

    def __post_init__(self) -> None:
        for name in ("ops_port", "metrics_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port <= 65535:
                raise ValueError(f"{name} must be a port 0..65535 (0: a free one), got {port}")
        if self.ops_port is not None and self.ops_port == self.metrics_port and self.ops_port != 0:
            raise ValueError(f"ops_port and metrics_port are both {self.ops_port}")
        if not _is_address(self.account):
            raise ValueError(
                f"account must be an address, 0x and 40 hex digits, got {self.account!r}"
            )
        if self.pacing not in LIVE_PACING:
            raise ValueError(f"pacing must be one of {LIVE_PACING}, got {self.pacing!r}")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http:// or https://, got {self.url!r}")
        if self.decision_seconds is not None and not self.decision_seconds > 0:
            raise ValueError(f"decision_seconds must be > 0, got {self.decision_seconds}")
        if self.max_decisions is not None and self.max_decisions < 1:
            raise ValueError(f"max_decisions must be >= 1, got {self.max_decisions}")
        if self.checkpoint_seconds is not None and not self.checkpoint_seconds > 0.0:
            raise ValueError(
                f"checkpoint_seconds must be > 0 or null, got {self.checkpoint_seconds!r}"
            )
        if self.synchronous.upper() not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, got {self.synchronous!r}")
        if not self.risk.enabled:
            raise ValueError("the live runner trades through the RiskLimiter: risk=none is refused")


def _is_address(text: object) -> bool:
    if not isinstance(text, str) or len(text) != 42 or not text.startswith("0x"):
        return False
    return all(c in "0123456789abcdefABCDEF" for c in text[2:])


J = TypeVar("J")


def to_job(cfg: DictConfig, schema: type[J]) -> J:
    """The typed job of a composed config, refusing keys its schema does not declare.

    Hydra lets ``+key=value`` append keys even to a structured config, and ``to_object`` then
    drops them silently; a misspelt setting must fail instead, naming the key.
    """
    _check_known_keys(cfg, "")
    job = OmegaConf.to_object(cfg)
    if not isinstance(job, schema):
        raise TypeError(f"config does not compose into {schema.__name__}")
    return job


def _check_known_keys(node: Any, path: str) -> None:
    if not isinstance(node, DictConfig):
        return
    kind = OmegaConf.get_type(node)
    if kind is not None and dataclasses.is_dataclass(kind):
        known = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(str(k) for k in node if k not in known)
        if unknown:
            where = path or "the config"
            raise ValueError(f"unknown key(s) {unknown} in {where}; valid keys are {sorted(known)}")
    for key in node:
        name = str(key)
        if name == "hydra":
            continue
        _check_known_keys(node._get_node(name), f"{path}.{name}" if path else name)


@dataclass
class ReproduceJob:
    """``scripts/reproduce.py``: one published experiment (``experiment=as2008`` or ``cj2015``)."""

    name: str = "as2008"
    gammas: list[float] = field(default_factory=lambda: [0.1, 0.01, 1.0])
    """as2008: the risk aversions of the table."""
    seed: int = 2008
    config_file: str | None = None
    """cj2015: the experiment's JSON config (``experiments/cj2015/config.json``)."""
    num_paths: int | None = None
    """cj2015: override the number of simulated paths."""

    def __post_init__(self) -> None:
        check_seed("experiment.seed", self.seed)


RUN_TAG_MAX = 120
"""Longest run-directory suffix built from command-line overrides."""

SHELL_SAFE = str.maketrans(
    {**dict.fromkeys("[]{}()*?$!&;|<> \t/\\", "_"), **dict.fromkeys("'\"`", "")}
)
"""Characters a shell would interpret, and path separators, as they appear in run names:
brackets, globs, ``$``, ``!``, ``&``, ``;``, ``|``, redirections, blanks and slashes become
``_``; quotes are dropped."""


def run_tag(overrides: Sequence[str]) -> str:
    """``-<overrides>`` for a run directory's name (``""`` without overrides): conf/hydra's
    ``${run_tag:${hydra.overrides.task}}``. The overrides are sorted and joined with ``,`` (as
    Hydra's ``override_dirname``), shell-special characters mapped by :data:`SHELL_SAFE`;
    past :data:`RUN_TAG_MAX` characters whole overrides are left out and counted
    (``...,and_3_more``), never cut in the middle."""
    items = sorted(str(o).translate(SHELL_SAFE) for o in overrides)
    if not items:
        return ""
    kept: list[str] = []
    for i, item in enumerate(items):
        rest = len(items) - i - 1
        more = f",and_{rest}_more" if rest else ""
        if len(",".join([*kept, item])) + len(more) > RUN_TAG_MAX:
            break
        kept.append(item)
    omitted = len(items) - len(kept)
    if omitted:
        kept.append(f"and_{omitted}_more")
    return "-" + ",".join(kept)


SCHEMA_GROUP = "schema"
"""The ConfigStore group of the schemas: ``schema/<group>/<name>``, outside the groups a user
picks options from, so ``agent=ppo_schema`` is no option. The YAML under ``conf/`` extends them
(``- /schema/agent/ppo@_here_``)."""


def register_configs() -> None:
    """Register every schema and the ``run_tag`` resolver (idempotent)."""
    if not OmegaConf.has_resolver("run_tag"):
        OmegaConf.register_new_resolver("run_tag", run_tag)
    store = ConfigStore.instance()
    schemas: dict[str, dict[str, Any]] = {
        "job": {
            "train": TrainJob,
            "evaluate": EvaluateJob,
            "tune": TuneJob,
            "export": ExportJob,
            "vet": VetJob,
            "paper_exchange": PaperExchangeJob,
            "live": LiveJob,
            "paper": PaperJob,
        },
        "experiment": {"reproduce": ReproduceJob},
        "env": {"env": EnvConfig},
        "agent": {"ppo": PPOConfig, "sac": SACConfig, "rllib_ppo": RLlibPPOConfig},
        "train": {"train": TrainConfig},
        "logger": {"logger": LoggerConfig},
        "sweep": {"sweep": SweepConfig},
        "risk": {"risk": RiskConfig},
        "vet": {"vet": VetConfig},
        "alerts": {"alerts": AlertsConfig},
    }
    load_all()
    for name in BASELINES:
        schemas["agent"][name] = baseline_schema(name)
    for group, nodes in schemas.items():
        for name, node in nodes.items():
            store.store(group=f"{SCHEMA_GROUP}/{group}", name=name, node=node)


register_configs()
