"""The PnL decomposition and the funding drift of a live session, one journal row at a time.

:class:`PnlAccumulator` takes a journal's rows in seq order (:meth:`PnlAccumulator.add`) and
answers at any point the decomposition of the rows so far (:meth:`PnlAccumulator.decomposition`)
and the funding drift (:attr:`PnlAccumulator.funding_drift`). The session report feeds it the
whole journal (:func:`agents.ops.report.decompose`); the live metrics feed it the rows the runner
appended since their last update (:mod:`agents.ops.metrics`): the same rows through the same
code, so the live numbers equal the report's of the same journal.

Sums are exact (Shewchuk's partials, rounded once by :func:`math.fsum` when read): the result does
not depend on how the rows were split between updates, and equals a :func:`math.fsum` over every
term.

Funding drift (quote currency): the sum over the perps' funding payments of (payment received -
expected carry), the expected carry of a payment being ``-position x oracle x rate``, with
``rate`` the funding rate per interval the venue published (the asset context's predicted rate)
and ``oracle`` its oracle price, both as journaled by the last decision before the payment
(``funding_rates`` and ``oracles``), and ``position`` the perp's position at that decision plus
the fills journaled since. A payment before any decision that journaled the coin's rate and
oracle price has no expected carry and is left out. Positive: the account received more (or paid
less) than the published rates said it would.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agents.live.journal import Event, Journal, Kind

if TYPE_CHECKING:
    from agents.live.runner import LiveRunner

HEDGE_SUFFIX = "-HEDGE"
"""A hedge venue's coin is its perp's coin with this suffix (the paper exchange's and the
runner's ``hedge_coins`` convention)."""

COMPONENTS = {
    "spread": (
        "spread capture",
        "sum over the perps' fills of signed size x (mid at the last decision before the fill "
        "- fill price): what each fill earned against the mid the policy saw",
    ),
    "inventory": (
        "inventory",
        "sum over decisions of position x (mid at this decision - mid at the last one), the "
        "position including the fills since the last decision (from a fill on, its size "
        "earns the mid's changes)",
    ),
    "mark_basis": (
        "mark vs mid",
        "the journaled equity values positions at the mark, the components above at the mid: "
        "position x (mark - mid) at the last decision minus the same at the first",
    ),
    "fees": ("fees", "minus the fees of the perps' fills (a rebate is a negative fee)"),
    "funding": ("funding", "the perps' funding payments received (paid: negative)"),
    "hedge": (
        "hedge",
        f"the cash flows of the fills on the hedge coins (`<COIN>{HEDGE_SUFFIX}`), minus their "
        "fees, plus their funding: the journaled equity books the hedge leg's cash but leaves "
        "its position's value out (the hedge venue's)",
    ),
}
"""The PnL components: name -> (label, definition). Their sum is the equity change between the
first and the last decision (the report states the difference, which should be rounding)."""


@dataclass(frozen=True)
class PnlDecomposition:
    """The equity change between the first and the last decision with a known equity, in parts
    (:data:`COMPONENTS`, quote currency)."""

    components: dict[str, float]
    equity_start: float
    equity_end: float
    start_ms: int | None
    end_ms: int | None
    fills: int
    """Fills inside the window (between the two decisions)."""
    outside_fills: int
    """Fills before the first decision or after the last (in neither equity's change)."""
    other_coins: tuple[str, ...]
    """Coins filled that are neither a perp of the decisions nor a hedge coin (their cash
    flows are in the equity change and in no component)."""

    @property
    def change(self) -> float:
        return self.equity_end - self.equity_start

    @property
    def total(self) -> float:
        return math.fsum(self.components.values())

    @property
    def residual(self) -> float:
        """Equity change minus the components' sum (rounding, unless the journal's cash or
        positions disagree with its fills and funding rows)."""
        return self.change - self.total


class ExactSum:
    """A sum of floats kept exactly (Shewchuk's non-overlapping partials); :attr:`value` is
    rounded once, and equals :func:`math.fsum` of every term added."""

    __slots__ = ("partials",)

    def __init__(self, partials: Iterable[float] = ()) -> None:
        self.partials = list(partials)

    def add(self, x: float) -> None:
        partials = self.partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def value(self, extra: Iterable[float] = ()) -> float:
        """The sum, with ``extra`` terms."""
        return math.fsum([*self.partials, *extra])

    def copy(self) -> ExactSum:
        return ExactSum(self.partials)


@dataclass
class _Window:
    """The decomposition's running state from the first decision with a known equity."""

    start: Mapping[str, Any]
    q: dict[str, float]
    mid: dict[str, float | None]
    sums: dict[str, ExactSum]
    spread_later: dict[str, list[tuple[float, float]]]
    """Per coin without a known mid yet: (signed size, price) of its fills, whose spread
    capture waits for the coin's first mid (the report's reference before it)."""
    basis_later: dict[str, tuple[float, float]]
    """Per coin without a known mid at the start: (position, mark) for the starting basis."""
    basis_start: list[float]
    fills: int = 0
    other: frozenset[str] = frozenset()

    def copy(self) -> _Window:
        return _Window(
            self.start,
            dict(self.q),
            dict(self.mid),
            {k: s.copy() for k, s in self.sums.items()},
            {c: list(xs) for c, xs in self.spread_later.items()},
            dict(self.basis_later),
            list(self.basis_start),
            self.fills,
            self.other,
        )


class PnlAccumulator:
    """The PnL decomposition (:data:`COMPONENTS`) and the funding drift of the journal rows
    :meth:`add`-ed so far, in seq order. ``coins``: the perps (the decisions' ``mids``); None:
    those of the first decision (the rows before it wait for it), for a reader that follows a
    journal from its start (the runner's decisions all hold the same coins)."""

    def __init__(self, coins: Sequence[str] | None) -> None:
        self.coins: tuple[str, ...] = () if coins is None else tuple(coins)
        self._waiting: list[Event] | None = [] if coins is None else None
        """The rows before the first decision, while the coins are not known."""
        self._fills = 0
        self._first_mid: dict[str, float] = {}
        self._first_mark: dict[str, float] = {}
        self._last_mid: dict[str, float] = {}
        self._window: _Window | None = None
        self._end: tuple[_Window, Mapping[str, Any]] | None = None
        """The window as of the last decision with a known equity, and its payload."""
        self._funding: dict[str, tuple[float, float]] = {}
        """Per perp: (published rate, oracle price) of the last decision that journaled both."""
        self._position: dict[str, float] = {}
        self._drift = ExactSum()
        self._expected = ExactSum()
        self._realised = ExactSum()
        self.funding_payments = 0
        """Funding payments with an expected carry (those in :attr:`funding_drift`)."""

    # --- rows -----------------------------------------------------------------------------------

    def add_all(self, events: Iterable[Event]) -> PnlAccumulator:
        for event in events:
            self.add(event)
        return self

    def add(self, event: Event) -> None:
        """Take the next row of the journal."""
        if self._waiting is not None:
            if event.kind is not Kind.DECISION:
                self._waiting.append(event)
                return
            self.coins = tuple(_mapping(event.payload.get("mids")))
            waiting, self._waiting = self._waiting, None
            self.add_all(waiting)
        kind = event.kind
        if kind is Kind.DECISION:
            self._decision(event.payload)
        elif kind is Kind.FILL:
            self._fills += 1
            self._fill(event.payload)
        elif kind is Kind.FUNDING:
            self._funding_row(event.payload)

    def _decision(self, p: Mapping[str, Any]) -> None:
        mids = _mapping(p.get("mids"))
        marks = _mapping(p.get("marks"))
        positions = _mapping(p.get("positions"))
        for c in self.coins:
            mark = _num(marks.get(c))
            if mark is not None:
                self._first_mark.setdefault(c, mark)
            raw = _num(mids.get(c))
            if raw is not None:
                self._first_mid.setdefault(c, raw)
                self._last_mid[c] = raw
        self._track_funding(p, positions)
        equity = _num(p.get("equity"))
        w = self._window
        if w is None:
            if equity is None:
                return
            w = self._window = self._open(p, positions, marks)
        else:
            for c in self.coins:
                before, after = w.mid[c], self._last_mid.get(c)
                if before is not None and after is not None:
                    term = w.q[c] * (after - before)
                    if term:
                        w.sums["inventory"].add(term)
                elif after is not None:  # the coin's first mid: every earlier one was it
                    self._resolve(w, c, after)
                w.mid[c] = after
        if equity is not None:
            self._end = (w.copy(), p)

    def _open(
        self, p: Mapping[str, Any], positions: Mapping[str, Any], marks: Mapping[str, Any]
    ) -> _Window:
        """The window starts at the first decision with a known equity."""
        mid = {c: self._last_mid.get(c) for c in self.coins}
        q = {c: _num(positions.get(c)) or 0.0 for c in self.coins}
        sums = {name: ExactSum() for name in ("spread", "inventory", "fees", "funding", "hedge")}
        w = _Window(p, q, mid, sums, spread_later={}, basis_later={}, basis_start=[])
        for c, position in q.items():
            mark = _num(marks.get(c))
            if position and mark is not None:
                m = mid[c]
                if m is None:
                    w.basis_later[c] = (position, mark)
                else:
                    w.basis_start.append(position * (mark - m))
        return w

    def _resolve(self, w: _Window, coin: str, mid: float) -> None:
        """The first mid of ``coin``: the spread captures and starting basis waiting for it."""
        for signed, px in w.spread_later.pop(coin, ()):
            w.sums["spread"].add(signed * (mid - px))
        if coin in w.basis_later:
            position, mark = w.basis_later.pop(coin)
            w.basis_start.append(position * (mark - mid))

    def _fill(self, p: Mapping[str, Any]) -> None:
        coin, px, fee = str(p["coin"]), float(p["px"]), float(p["fee"])
        signed = float(p["sz"]) if p["is_buy"] else -float(p["sz"])
        if coin in self._position:
            self._position[coin] += signed
        w = self._window
        if w is None:
            return
        w.fills += 1
        if coin in w.q:
            mid = w.mid[coin]
            if mid is None:
                w.spread_later.setdefault(coin, []).append((signed, px))
            else:
                w.sums["spread"].add(signed * (mid - px))
            w.sums["fees"].add(-fee)
            w.q[coin] += signed
        elif coin.endswith(HEDGE_SUFFIX):
            w.sums["hedge"].add(-signed * px - fee)
        else:
            w.other = w.other | {coin}

    def _funding_row(self, p: Mapping[str, Any]) -> None:
        coin, usdc = str(p["coin"]), float(p["usdc"])
        published = self._funding.get(coin)
        if published is not None:
            rate, oracle = published
            expected = -self._position.get(coin, 0.0) * oracle * rate
            self._expected.add(expected)
            self._realised.add(usdc)
            self._drift.add(usdc)
            self._drift.add(-expected)
            self.funding_payments += 1
        w = self._window
        if w is None:
            return
        if coin in w.q:
            w.sums["funding"].add(usdc)
        elif coin.endswith(HEDGE_SUFFIX):
            w.sums["hedge"].add(usdc)
        else:
            w.other = w.other | {coin}

    def _track_funding(self, p: Mapping[str, Any], positions: Mapping[str, Any]) -> None:
        rates = _mapping(p.get("funding_rates"))
        oracles = _mapping(p.get("oracles"))
        for c in self.coins:
            self._position[c] = _num(positions.get(c)) or 0.0
            rate, oracle = _num(rates.get(c)), _num(oracles.get(c))
            if rate is not None and oracle is not None:
                self._funding[c] = (rate, oracle)

    # --- answers --------------------------------------------------------------------------------

    def decomposition(self) -> PnlDecomposition | None:
        """The decomposition between the first and the last decision with a known equity so far
        (None: none yet)."""
        if self._end is None:
            return None
        w, end = self._end
        reference = {c: self._reference(w, c) for c in self.coins}
        spread = w.sums["spread"].value(
            signed * (reference[c] - px) for c, xs in w.spread_later.items() for signed, px in xs
        )
        basis_start = math.fsum(
            [
                *w.basis_start,
                *(q * (mark - reference[c]) for c, (q, mark) in w.basis_later.items()),
            ]
        )
        marks = _mapping(end.get("marks"))
        basis_end = []
        for c, position in w.q.items():
            mark = _num(marks.get(c))
            if position and mark is not None:
                basis_end.append(position * (mark - reference[c]))
        parts = dict.fromkeys(COMPONENTS, 0.0)
        parts["spread"] = spread
        parts["inventory"] = w.sums["inventory"].value()
        parts["mark_basis"] = math.fsum(basis_end) - basis_start
        parts["fees"] = w.sums["fees"].value()
        parts["funding"] = w.sums["funding"].value()
        parts["hedge"] = w.sums["hedge"].value()
        return PnlDecomposition(
            components=parts,
            equity_start=float(w.start["equity"]),
            equity_end=float(end["equity"]),
            start_ms=_int(w.start.get("venue_time_ms")),
            end_ms=_int(end.get("venue_time_ms")),
            fills=w.fills,
            outside_fills=self._fills - w.fills,
            other_coins=tuple(sorted(w.other)),
        )

    def _reference(self, w: _Window, coin: str) -> float:
        """A coin's mid as the decomposition prices it: the window's, else its first known mid,
        else its first known mark, else 0."""
        mid = w.mid[coin]
        if mid is not None:
            return mid
        return self._first_mid.get(coin, self._first_mark.get(coin, 0.0))

    @property
    def funding_drift(self) -> float:
        """Funding received less the expected carry (module docstring; quote currency)."""
        return self._drift.value()

    @property
    def expected_carry(self) -> float:
        """The expected carry of the payments in :attr:`funding_drift` (quote currency)."""
        return self._expected.value()

    @property
    def realised_funding(self) -> float:
        """The payments in :attr:`funding_drift` (quote currency)."""
        return self._realised.value()


class JournalPnl:
    """A :class:`PnlAccumulator` kept up to date with an open journal: :meth:`update` feeds it
    the rows appended since the last call (the runner's metrics and alerts share one, see
    :func:`runner_pnl`)."""

    def __init__(self, journal: Journal, coins: Sequence[str]) -> None:
        self.journal = journal
        self.accumulator = PnlAccumulator(coins)
        self.seq = 0
        """The last row taken."""

    def update(self) -> PnlAccumulator:
        """Take the rows appended since the last call; the accumulator."""
        for event in self.journal.events(since_seq=self.seq):
            self.accumulator.add(event)
            self.seq = event.seq
        return self.accumulator


def runner_pnl(runner: LiveRunner) -> JournalPnl:
    """The runner's one :class:`JournalPnl` (``runner.pnl``, made on first use)."""
    if runner.pnl is None:
        runner.pnl = JournalPnl(runner.journal, runner.config.coins)
    return runner.pnl


def _mapping(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _int(x: Any) -> int | None:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) else None
