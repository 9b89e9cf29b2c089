"""``GuardedPolicy``: a policy behind checks of its observations and outputs, the shared action
decoder and the RiskLimiter. This is what the live side runs (numpy, numba and ONNX Runtime).

Per decision, for a batch of accounts (one live account is a batch of one), without a Python
loop over accounts:

1. **Observations.** The batch must be a numpy array of the observation builder's dtype and
   shape ``(num_accounts, obs_dim)``, else every account is untrusted
   (``INVALID_OBSERVATION``). Per account: every feature finite (``NON_FINITE_OBSERVATION``)
   and within ``±obs_clip``, which the builder clips to (``INVALID_OBSERVATION``), and the
   market data it was built from no older than ``stale_data_seconds``
   (``STALE_OBSERVATION``; an unknown age is stale).
2. **Model.** The policy acts on the batch; rows with a bad observation are fed zeros and their
   action is not used. An exception or an output that is not a float array of shape
   ``(num_accounts, action_dim)`` untrusts every account not yet untrusted (``MODEL_ERROR``);
   a NaN or infinite component untrusts its account (``NON_FINITE_ACTION``). Nothing is
   raised.
3. **Decoding.** :func:`mmgym.core.orders.decode_actions` turns the actions into quotes at the
   decision-time book of the inputs, exactly as the simulator does.
4. **Limiting.** :meth:`RiskLimiter.limit` checks them; an untrusted account gets the limiter's
   safe action instead of its quotes (no order, and the flatten sequence's reducing order at
   the touch where a position is held), its reason is counted, and it goes REDUCING (HALTED
   once untrusted for ``halt_stale_data_seconds``). The limiter's own rules bring it back from
   REDUCING; only an operator :meth:`GuardedPolicy.reset` leaves HALTED.

See docs/deploy.md (GuardedPolicy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.deploy.bundle import Bundle, load_bundle
from agents.deploy.risk import (
    Reason,
    RiskInputs,
    RiskLimiter,
    RiskLimits,
    TradingState,
    Transition,
    VenueSpec,
    new_quotes,
)
from agents.deploy.risk.limiter import Accounts
from agents.policy import Policy
from mmgym.core.layout import pack_params
from mmgym.core.orders import ACTION_PER_ASSET, decode_actions, decoder_params
from mmgym.core.params import MarketParams
from mmgym.features.observation import ObservationConfig, observation_dim

_INVALID_OBSERVATION = int(Reason.INVALID_OBSERVATION)
_NON_FINITE_OBSERVATION = int(Reason.NON_FINITE_OBSERVATION)
_STALE_OBSERVATION = int(Reason.STALE_OBSERVATION)
_NON_FINITE_ACTION = int(Reason.NON_FINITE_ACTION)


@nb.njit(cache=True, error_model="numpy")
def screen_observations(
    obs: NDArray[np.floating],
    ages: NDArray[np.float64],
    max_age: float,
    clip: float,
    untrusted: NDArray[np.int64],
) -> int:
    """Write each account's observation reason into ``untrusted`` (0 when fine): a non-finite
    feature first, then one beyond ``clip``, then data older than ``max_age`` (or of unknown
    age). Returns the number of bad observations."""
    bad = 0
    for i in range(obs.shape[0]):
        finite = True
        within = True
        for j in range(obs.shape[1]):
            x = obs[i, j]
            if not math.isfinite(x):
                finite = False
                break
            within = within and abs(x) <= clip
        if not finite:
            untrusted[i] = _NON_FINITE_OBSERVATION
        elif not within:
            untrusted[i] = _INVALID_OBSERVATION
        elif not ages[i] <= max_age:
            untrusted[i] = _STALE_OBSERVATION
        else:
            untrusted[i] = 0
            continue
        bad += 1
    return bad


@nb.njit(cache=True, error_model="numpy")
def screen_actions(actions: NDArray[np.float64], untrusted: NDArray[np.int64]) -> int:
    """Untrust each trusted account whose action has a non-finite component
    (``NON_FINITE_ACTION``), then set the action of every untrusted account to NaN (it is not
    used). Returns the number of untrusted accounts."""
    bad = 0
    for i in range(actions.shape[0]):
        if untrusted[i] == 0:
            for j in range(actions.shape[1]):
                if not math.isfinite(actions[i, j]):
                    untrusted[i] = _NON_FINITE_ACTION
                    break
        if untrusted[i] != 0:
            actions[i, :] = np.nan
            bad += 1
    return bad


@nb.njit(cache=True, error_model="numpy")
def decode_screened(
    actions: NDArray[np.float64],
    untrusted: NDArray[np.int64],
    best_bid: NDArray[np.float64],
    best_ask: NDArray[np.float64],
    Pa: NDArray[np.void],
    quotes: NDArray[np.void],
    requested: NDArray[np.void],
) -> int:
    """:func:`screen_actions`, then :func:`~mmgym.core.orders.decode_actions` into ``quotes``
    and a copy of them into ``requested``, in one compiled call. Returns the number of
    untrusted accounts."""
    bad = screen_actions(actions, untrusted)
    decode_actions(actions, best_bid, best_ask, Pa, quotes)
    for i in range(quotes.shape[0]):
        for k in range(quotes.shape[1]):
            q, r = quotes[i, k], requested[i, k]
            r.bid_px, r.bid_size, r.ask_px, r.ask_size = q.bid_px, q.bid_size, q.ask_px, q.ask_size
            r.hedge_fraction = q.hedge_fraction
    return bad


@dataclass(frozen=True)
class GuardedDecision:
    """One decision of every account. The arrays are the guard's buffers: the next decision
    overwrites them (copy what you keep)."""

    quotes: NDArray[np.void]
    """``(num_accounts, num_assets)`` :data:`~mmgym.core.orders.QUOTE_DTYPE`: the orders to
    send, as the limiter left them (size 0: no order on that side)."""
    requested: NDArray[np.void]
    """The model's decoded quotes before the limiter (NaN sizes where it was not used)."""
    actions: NDArray[np.float64]
    """``(num_accounts, action_dim)``: the model's actions (NaN where not used)."""
    untrusted: NDArray[np.int64]
    """``(num_accounts,)``: the guard's :class:`Reason` value per account (0 when the
    observation and the model's output were fine)."""
    counts: NDArray[np.int64]
    """``(num_accounts, len(Reason))``: this decision's counts per reason (denials, clips,
    the guard's reasons and transitions)."""

    def reasons(self, account: int = 0) -> dict[Reason, int]:
        """The non-zero counts of one account in this decision, by reason."""
        row = self.counts[account]
        return {Reason(int(r)): int(row[r]) for r in np.flatnonzero(row)}


class GuardedPolicy:
    """A :class:`~agents.policy.Policy` for the market ``market`` behind the guard's checks,
    the shared decoder and a :class:`~agents.deploy.risk.RiskLimiter` (module docstring).

    Args:
        policy: the policy (a bundle's, a baseline, any :class:`~agents.policy.Policy`); it acts
            on batches of ``num_accounts`` observations.
        market: the market the policy's actions are decoded for (tick grid, sizes).
        limits: the risk limits (default :class:`RiskLimits` ``()``); ``stale_data_seconds``
            is also the oldest market data an observation may come from.
        venue: the venue's rules (default: the simulated venue of ``market``).
        num_accounts: accounts decided together.
        seed: seeds the limiter's throttle jitter (account ``i``: ``seed + i``).
        observation_config: the observation builder's settings (default: those of
            ``market``); its ``clip`` bounds every feature.
        observation_dtype: the builder's dtype (float32).
    """

    def __init__(
        self,
        policy: Policy,
        market: MarketParams,
        limits: RiskLimits | None = None,
        *,
        venue: VenueSpec | None = None,
        num_accounts: int = 1,
        seed: int | None = 0,
        observation_config: ObservationConfig | None = None,
        observation_dtype: Any = np.float32,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must implement agents.policy.Policy, got {type(policy)}")
        self.policy = policy
        self.market = market
        self.limits = limits if limits is not None else RiskLimits()
        self.venue = venue if venue is not None else VenueSpec.from_market(market)
        self.limiter = RiskLimiter(
            self.limits, self.venue, num_accounts, market.num_assets, seed=seed
        )
        n, k = self.limiter.num_accounts, self.limiter.num_assets
        self.num_accounts = n
        self.num_assets = k
        self.obs_dim = observation_dim(k)
        self.action_dim = ACTION_PER_ASSET * k
        self.obs_dtype = np.dtype(observation_dtype)
        config = observation_config or ObservationConfig.from_market(market)
        self.obs_clip = float(config.clip)
        self.max_data_age_s = float(self.limits.stale_data_seconds)
        self.last_model_error: str | None = None
        """What went wrong with the model in the last decision (None when nothing did)."""
        self._packed = decoder_params(pack_params(market))  # cheap to pass per decision
        self._ages = np.zeros(n, dtype=np.float64)
        self._feed = np.zeros((n, self.obs_dim), dtype=self.obs_dtype)
        self._decision = GuardedDecision(
            quotes=new_quotes(n, k),
            requested=new_quotes(n, k),
            actions=np.zeros((n, self.action_dim), dtype=np.float64),
            untrusted=np.zeros(n, dtype=np.int64),
            counts=self.limiter.state.last_denials,
        )

    @classmethod
    def from_bundle(
        cls,
        bundle: Bundle | str | Path,
        limits: RiskLimits | None = None,
        *,
        venue: VenueSpec | None = None,
        num_accounts: int = 1,
        seed: int | None = 0,
    ) -> GuardedPolicy:
        """The guarded policy of a bundle (a loaded :class:`Bundle` or its directory, loaded
        and verified with :func:`~agents.deploy.bundle.load_bundle`): its policy, market,
        observation settings and dtype."""
        if not isinstance(bundle, Bundle):
            bundle = load_bundle(bundle)
        return cls(
            bundle.policy,
            bundle.market,
            limits,
            venue=venue,
            num_accounts=num_accounts,
            seed=seed,
            observation_config=bundle.observation_config,
            observation_dtype=bundle.manifest.observation.dtype,
        )

    # --- the decision -------------------------------------------------------------------------

    def decide(
        self,
        obs: Any,
        inputs: RiskInputs,
        observation_age_s: Any = None,
    ) -> GuardedDecision:
        """One decision of every account: check, act, decode, limit (module docstring).

        ``obs``: the observations ``(num_accounts, obs_dim)``; anything else is an invalid
        observation, never an error. ``inputs``: the decision-time state
        (:class:`RiskInputs`; the book in it prices the quotes). ``observation_age_s``: the age
        (s) of the market data each observation was built from, one number or one per account
        (default: the inputs' ``data_age_s``); not a number means unknown, which is stale.

        Raises ValueError only when ``inputs`` has the wrong shape or dtype (a programming
        error of the caller, not a market state)."""
        inputs.check(self.num_accounts, self.num_assets)
        d = self._decision
        untrusted = d.untrusted
        ages = self._ages_of(inputs, observation_age_s)
        if self._well_formed(obs):
            bad = screen_observations(obs, ages, self.max_data_age_s, self.obs_clip, untrusted)
        else:
            untrusted.fill(_INVALID_OBSERVATION)
            bad = self.num_accounts
        self.last_model_error = None
        if bad < self.num_accounts:
            feed = obs if bad == 0 else self._without_bad_rows(obs, untrusted)
            if not self._act(feed):
                untrusted[untrusted == 0] = Reason.MODEL_ERROR
        assets = inputs.assets
        decode_screened(
            d.actions,
            untrusted,
            assets["best_bid"],
            assets["best_ask"],
            self._packed,
            d.quotes,
            d.requested,
        )
        self.limiter.limit(d.quotes, inputs, untrusted=untrusted)
        return d

    def _ages_of(self, inputs: RiskInputs, observation_age_s: Any) -> NDArray[np.float64]:
        if observation_age_s is None:
            ages: NDArray[np.float64] = inputs.accounts["data_age_s"]
            return ages
        try:
            np.copyto(self._ages, observation_age_s)
        except (TypeError, ValueError):
            self._ages.fill(np.nan)  # not a number: unknown, so stale
        return self._ages

    def _well_formed(self, obs: Any) -> bool:
        return (
            isinstance(obs, np.ndarray)
            and obs.dtype == self.obs_dtype
            and obs.shape == (self.num_accounts, self.obs_dim)
        )

    def _without_bad_rows(
        self, obs: NDArray[np.floating], untrusted: NDArray[np.int64]
    ) -> NDArray[np.floating]:
        feed = self._feed
        np.copyto(feed, obs)
        feed[untrusted != 0] = 0.0
        return feed

    def _act(self, feed: NDArray[np.floating]) -> bool:
        """Run the policy into the actions buffer; False (and why, in ``last_model_error``)
        when it raised or returned something unusable."""
        actions = self._decision.actions
        try:
            out = self.policy.act(feed)
        except Exception as err:  # any failure of the model fails closed
            self.last_model_error = f"{type(err).__name__}: {err}"
            return False
        if not isinstance(out, np.ndarray) or out.shape != actions.shape or out.dtype.kind != "f":
            shown = (
                f"{out.shape} {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
            )
            self.last_model_error = (
                f"the policy returned {shown}, expected float actions of shape {actions.shape}"
            )
            return False
        np.copyto(actions, out)
        return True

    # --- state, log and operator ------------------------------------------------------------

    @property
    def state(self) -> TradingState:
        """The limiter's trading state: ``mode`` per account, counts, measures."""
        return self.limiter.state

    @property
    def transitions(self) -> list[Transition]:
        """Transitions not yet drained, oldest first (:meth:`drain_transitions`)."""
        return self.limiter.state.transitions

    def drain_transitions(self) -> list[Transition]:
        """The transitions since the last call, oldest first (for a journal)."""
        return self.limiter.drain_transitions()

    def counts(self, account: int | None = None) -> dict[Reason, int]:
        """Non-zero counts per reason since the start, of one account or summed over all."""
        return self.limiter.state.counts(account)

    def reset(self, operator: str, accounts: Accounts = 0, time_s: float | None = None) -> None:
        """The operator's reset of HALTED ``accounts`` to ACTIVE, naming the operator: the only
        way out of HALTED (:meth:`RiskLimiter.operator_reset`; ValueError for an account that
        is not HALTED). Nothing resets automatically."""
        self.limiter.operator_reset(accounts, operator, time_s)

    def open_accounts(
        self, mask: NDArray[np.bool_] | None = None, seeds: NDArray[np.uint64] | None = None
    ) -> None:
        """Start the accounts in ``mask`` (default: all) afresh, as new accounts: the limiter's
        (:meth:`RiskLimiter.open_accounts`, ``seeds`` reseeding their jitter) and the
        policy's state."""
        self.limiter.open_accounts(mask, seeds)
        self.policy.reset(mask)
