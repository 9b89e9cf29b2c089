"""The closed-form models as registered baselines for ``mmgym/PerpMM-v0``.

``"avellaneda_stoikov"``, ``"glft"`` and ``"cartea_jaimungal"`` (:class:`PerpAvellanedaStoikov`,
:class:`PerpGLFT`, :class:`PerpCarteaJaimungal`) read each perp's inventory and elapsed-time
features, compute the model's depths (:mod:`agents.baselines.closed_form`) in price units from
the mid and turn them into one action block per perp (see :class:`ModelQuoting`). Their model
parameters default to :func:`agents.baselines.calibration.calibrate`. The closed forms are
optimal only under the models' dynamics. PerpMM departs from them: queues, tick rounding,
latency, Hawkes flow, partial fills, informed takers, jumps and regimes. In PerpMM they are
reasonable, interpretable baselines, not optima.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import NDArray

from agents.baselines.calibration import calibrate, default_lot
from agents.baselines.checks import check_non_negative, check_positive
from agents.baselines.closed_form import (
    F64,
    Depths,
    avellaneda_stoikov_depths,
    cartea_jaimungal_table,
    glft_depths,
)
from agents.baselines.registry import register
from mmgym.core.orders import ACTION_NAMES, encode_block
from mmgym.core.params import MarketParams
from mmgym.features.observation import ASSET_FEATURES, OBS_NAMES

_INVENTORY = OBS_NAMES.index("inventory")
_TIME = OBS_NAMES.index("time")
_ACTION_SIZE = len(ACTION_NAMES)
_LARGEST = float(np.finfo(np.float64).max)


@nb.njit(cache=True, error_model="numpy")
def _unquoted_depth(
    model: float, quoted: float, tick: float, max_half_spread_ticks: float, max_skew_ticks: float
) -> float:
    """The depth (price units) to encode for a side that places no order, given the depth
    ``quoted`` of the side that does.

    The action holds the half-spread ``(delta_bid + delta_ask) / 2`` and the skew
    ``(delta_ask - delta_bid) / 2``, each clipped to its range, so the free side's depth can move
    the quoted side. It is the model's own depth (the quoted side's where the model has none),
    moved just enough to keep both in range; the quoted side then sits at its depth. Where no
    value can (a quoted depth above ``max_half_spread_ticks + max_skew_ticks`` ticks or below
    ``0.5 - max_skew_ticks``), it is the bound that brings the quoted side closest.
    """
    reach = 2.0 * max_skew_ticks * tick
    lo = np.maximum(tick - quoted, quoted - reach)
    hi = np.minimum(2.0 * max_half_spread_ticks * tick - quoted, quoted + reach)
    return np.minimum(np.maximum(quoted if np.isnan(model) else model, lo), hi)


@nb.njit(cache=True, error_model="numpy")
def _finite_or_zero(depth: float) -> float:
    """NaN to 0 (neither side has a depth: nothing is quoted), infinities to the largest
    finite numbers (``np.nan_to_num``)."""
    if np.isnan(depth):
        return 0.0
    if np.isinf(depth):
        return _LARGEST if depth > 0.0 else -_LARGEST
    return depth


@nb.njit(cache=True, error_model="numpy")
def _model_actions(
    q: NDArray[np.float64],
    bid_depth: NDArray[np.float64],
    ask_depth: NDArray[np.float64],
    lot: float,
    Q: int,
    tick: float,
    max_skew_ticks: float,
    max_half_spread_ticks: float,
    max_quote_size: float,
    out: NDArray[np.float32],
) -> None:
    """Action blocks ``out`` ``(n, 5 K)`` for inventories ``q`` (lots) and quoted depths
    ``(n, K)``: see :class:`ModelQuoting`."""
    for i in range(q.shape[0]):
        for k in range(q.shape[1]):
            q_round = np.rint(q[i, k])
            bid, ask = bid_depth[i, k], ask_depth[i, k]
            bid_on = q_round < Q and not np.isnan(bid)
            ask_on = q_round > -Q and not np.isnan(ask)
            if not bid_on:
                bid = _unquoted_depth(bid, ask, tick, max_half_spread_ticks, max_skew_ticks)
            if not ask_on:
                ask = _unquoted_depth(ask, bid, tick, max_half_spread_ticks, max_skew_ticks)
            bid, ask = _finite_or_zero(bid), _finite_or_zero(ask)
            block = encode_block(
                0.5 * (ask - bid) / tick,
                0.5 * (ask + bid) / tick,
                lot if bid_on else 0.0,
                lot if ask_on else 0.0,
                0.0,
                max_skew_ticks,
                max_half_spread_ticks,
                max_quote_size,
            )
            for j in range(_ACTION_SIZE):
                out[i, k * _ACTION_SIZE + j] = block[j]


class ModelQuoting:
    """Base of the model baselines on PerpMM: the model's depths, one action block per perp.

    Per perp, the inventory in lots is ``obs inventory x max_inventory / lot`` and the time is
    ``obs time x episode_seconds`` (the model's horizon is the episode). The model gives depths
    ``delta_bid``, ``delta_ask`` in price units from the mid; the action quotes
    ``skew = (delta_ask - delta_bid) / 2`` and ``half_spread = (delta_ask + delta_bid) / 2``
    (in ticks), so the bid sits at ``mid - delta_bid`` and the ask at ``mid + delta_ask`` before
    the decoder rounds them outward to the tick grid. Values beyond the action's range
    (half-spread in ``[0.5, max_half_spread_ticks]``, ``|skew| <= max_skew_ticks``) are clipped
    to it. Each side quotes one ``lot`` (base units), or nothing when the rounded inventory is
    at the limit ``Q`` lots on that side (``Q = floor(max_inventory / lot)`` unless given) or
    the model has no depth for it; the depth encoded for a side that quotes nothing leaves the
    other side where its depth puts it (:func:`_unquoted_depth`). Nothing is hedged.

    Fees (``fees=True``): the models have none, but a maker fee ``f = maker_fee x
    initial_price`` per unit (price units) enters them exactly. A fill at depth ``delta`` earns
    ``delta - f`` at intensity ``A exp(-k delta) = A_net exp(-k (delta - f))`` with
    ``A_net = A exp(-k f)``, so the optimal depths are the fee-free model's, computed with
    ``A_net``, plus ``f`` on each side. Without this, quotes at the fee-free ``1/k`` may earn less
    than the fee they pay (with the default market, 0.8 tick of spread against a 1.5-tick fee).

    ``sigma`` (price per sqrt(second)), ``A`` (lots per second) and ``k`` (per price unit)
    default to :func:`agents.baselines.calibration.calibrate` for these market parameters and
    this lot; ``lot`` defaults to a tenth of ``max_inventory``, at most ``max_quote_size``.
    """

    def __init__(
        self,
        params: MarketParams,
        *,
        sigma: float | None,
        A: float | None,
        k: float | None,
        lot: float | None,
        max_lots: int | None,
        fees: bool,
    ) -> None:
        self.params = params
        self.lot = float(lot) if lot is not None else default_lot(params)
        check_positive(lot=self.lot)
        if self.lot > params.max_quote_size:
            raise ValueError(
                f"lot must be <= max_quote_size ({params.max_quote_size}), got {self.lot}"
            )
        if sigma is None or A is None or k is None:
            fit = calibrate(params, lot=self.lot)
            sigma = fit.sigma if sigma is None else sigma
            A = fit.A if A is None else A
            k = fit.k if k is None else k
        check_positive(sigma=sigma, A=A, k=k)
        self.sigma, self.A, self.k = float(sigma), float(A), float(k)
        self.fee = params.maker_fee * params.initial_price if fees else 0.0
        self.A_net = self.A * math.exp(-self.k * self.fee)
        whole_lots = math.floor(params.max_inventory / self.lot + 1e-9)
        self.Q = int(max_lots) if max_lots is not None else whole_lots
        if self.Q < 1:
            raise ValueError(f"the inventory limit must be at least one lot, got Q={self.Q}")
        self.T = float(params.episode_seconds)

    def depths(self, q: F64, t: F64) -> Depths:
        """Model depths net of the fee (price units) at inventories ``q`` (lots) and times
        ``t`` (seconds), with intensity ``A_net``; NaN for no quote."""
        raise NotImplementedError

    def quoted_depths(self, q: F64, t: F64) -> Depths:
        """Depths from the mid that the action asks for: the model's plus the fee."""
        bid, ask = self.depths(q, t)
        return bid + self.fee, ask + self.fee

    def act(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        """Actions for a batch of PerpMM observations: one block per perp."""
        obs = np.asarray(obs)
        P = self.params
        end = P.num_assets * ASSET_FEATURES
        q = obs[:, _INVENTORY:end:ASSET_FEATURES].astype(np.float64) * P.max_inventory / self.lot
        t = obs[:, _TIME:end:ASSET_FEATURES].astype(np.float64) * P.episode_seconds
        bid, ask = self.quoted_depths(q, t)
        out = np.empty((q.shape[0], P.num_assets * _ACTION_SIZE), dtype=np.float32)
        _model_actions(
            q,
            np.asarray(bid, dtype=np.float64),
            np.asarray(ask, dtype=np.float64),
            self.lot,
            self.Q,
            float(P.tick_size),
            float(P.max_skew_ticks),
            float(P.max_half_spread_ticks),
            float(P.max_quote_size),
            out,
        )
        return out

    def reset(self, mask: NDArray[np.bool_] | None = None) -> None:
        """Stateless: nothing to clear."""


@register("avellaneda_stoikov")
class PerpAvellanedaStoikov(ModelQuoting):
    """Avellaneda & Stoikov (2008) on PerpMM: reservation price and optimal spread.

    ``gamma``: risk aversion per unit of the model's wealth (price x lots). The skew per lot
    at the start is ``gamma sigma^2 T``: 0.29 tick with the defaults and the calibrated calm
    market. ``sigma``, ``k``, ``lot``, ``max_lots``, ``fees``: see :class:`ModelQuoting`
    (``A`` plays no part). Horizon: the episode.
    """

    def __init__(
        self,
        params: MarketParams,
        gamma: float = 0.01,
        sigma: float | None = None,
        k: float | None = None,
        lot: float | None = None,
        max_lots: int | None = None,
        fees: bool = True,
    ) -> None:
        check_positive(gamma=gamma)
        super().__init__(params, sigma=sigma, A=1.0, k=k, lot=lot, max_lots=max_lots, fees=fees)
        self.gamma = float(gamma)

    def depths(self, q: F64, t: F64) -> Depths:
        """AS depths with ``tau = T - t``."""
        tau = np.clip(self.T - t, 0.0, self.T)
        return avellaneda_stoikov_depths(q, tau, self.gamma, self.sigma, self.k)


@register("glft")
class PerpGLFT(ModelQuoting):
    """Gueant-Lehalle-Fernandez-Tapia (2013) asymptotic quotes on PerpMM (time-independent).

    ``gamma``: risk aversion per unit of the model's wealth (price x lots). ``sigma``, ``A``,
    ``k``, ``lot``, ``max_lots``, ``fees``: see :class:`ModelQuoting`.
    """

    def __init__(
        self,
        params: MarketParams,
        gamma: float = 0.01,
        sigma: float | None = None,
        A: float | None = None,
        k: float | None = None,
        lot: float | None = None,
        max_lots: int | None = None,
        fees: bool = True,
    ) -> None:
        check_positive(gamma=gamma)
        super().__init__(params, sigma=sigma, A=A, k=k, lot=lot, max_lots=max_lots, fees=fees)
        self.gamma = float(gamma)

    def depths(self, q: F64, t: F64) -> Depths:
        """GLFT depths (``t`` unused)."""
        return glft_depths(q, self.gamma, self.sigma, self.A_net, self.k)


@register("cartea_jaimungal")
class PerpCarteaJaimungal(ModelQuoting):
    """The exact Cartea-Jaimungal-Penalva strategy on PerpMM, over the episode as horizon.

    ``phi`` (per lot squared per second) and ``alpha`` (per lot squared), in units of price x
    lots: ``None`` takes the env's own criterion, ``inventory_penalty x lot`` and
    ``terminal_inventory_penalty x lot`` when ``reward="inventory_penalty"`` (the env's
    penalties are per base unit squared in quote currency), and 0 otherwise (then only the
    inventory limit moves the quotes away from ``1/k``). ``sigma`` plays no part (the criterion
    has no variance term). ``A``, ``k``, ``lot``, ``max_lots``, ``fees``: see
    :class:`ModelQuoting`; the inventory is rounded to whole lots to read the table.
    """

    def __init__(
        self,
        params: MarketParams,
        phi: float | None = None,
        alpha: float | None = None,
        A: float | None = None,
        k: float | None = None,
        lot: float | None = None,
        max_lots: int | None = None,
        fees: bool = True,
    ) -> None:
        super().__init__(params, sigma=1.0, A=A, k=k, lot=lot, max_lots=max_lots, fees=fees)
        penalised = params.reward == "inventory_penalty"
        if phi is None:
            phi = params.inventory_penalty * self.lot if penalised else 0.0
        if alpha is None:
            alpha = params.terminal_inventory_penalty * self.lot if penalised else 0.0
        check_non_negative(phi=phi, alpha=alpha)
        self.phi, self.alpha = float(phi), float(alpha)
        self.table = cartea_jaimungal_table(
            self.phi, self.alpha, self.A_net, self.k, self.T, self.Q, params.decisions_per_episode
        )

    def depths(self, q: F64, t: F64) -> Depths:
        """Table depths at the nearest whole lot; NaN on a side at the limit."""
        return self.table.depths(t, q)
