"""The paper exchange's benchmarks (``scripts/bench.py --exchange-rtt N --exchange-rate S``).

- Order round trip on loopback: the SDK's ``Exchange`` signs an Alo bid at the best bid,
  posts it and reads the ack (``resting``), then cancels it (``success``). The exchange runs in
  its own process in lockstep mode (the book does not move); the client in this one. The same
  round trips through ``mmgym-fault-proxy`` (no rules, its own process) take turns with the
  direct ones block by block, and the signing alone is timed too.
- Sustained WebSocket rate: the exchange in accelerated mode at ``speed`` decision intervals per
  simulated second, as fast as it can, streaming l2Book, trades and activeAssetCtx of every
  coin to ``subscribers`` WebSocket clients (this process); messages/s received, and decision
  intervals per second of wall time (from the l2Book time stamps).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from agents.config import PAPER_COINS, PaperExchangeJob
from agents.market import market_of
from mmgym.markdown import table

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = "calm"
COINS = PAPER_COINS
EPISODE_SECONDS = PaperExchangeJob.episode_seconds  # mmgym-paper-exchange's default
BLOCK = 50  # round trips per block; direct and proxied blocks take turns
START_TIMEOUT = 60.0  # s, for a server process to print its URL


def serve_exchange(mode: str, speed: float, agent: str, books: int = 1) -> None:
    """Worker process: serve the scenario's market (seed 0) until SIGTERM; print the URL.
    ``books`` > 1: every l2Book message goes out that many times (a burst: identical copies,
    one WebSocket frame each)."""
    from mmgym.exchange import Clock, PaperExchange, PaperVenue, serve

    class BurstExchange(PaperExchange):
        async def _publish(self) -> None:
            self.venue.outbox = [
                event
                for event in self.venue.outbox
                for _ in range(books if event.channel == "l2Book" else 1)
            ]
            await super()._publish()

    params = _params()
    epoch_ms = int(time.time()) * 1000
    venue = PaperVenue(params, 0, COINS[: params.num_assets], agent, epoch_ms)
    kind = PaperExchange if books == 1 else BurstExchange
    exchange = kind(venue, agent, Clock(mode, speed))
    serve(exchange, 0, lambda url: print(url, flush=True))


def _params() -> Any:
    """The benchmark's market, built as ``mmgym-paper-exchange env=calm`` builds it."""
    return market_of(SCENARIO, EPISODE_SECONDS, {}).params


@contextmanager
def _process(command: list[str]) -> Iterator[str]:
    """Run ``command`` (a server that prints its URL as the last word of its first line);
    yield the URL; SIGTERM it on exit (kill after 10 s)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        line = process.stdout.readline() if ready else ""
        if not line.strip():
            raise RuntimeError(f"{command[:4]} printed no URL within {START_TIMEOUT} s")
        yield line.split()[-1]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _exchange_process(mode: str, speed: float, agent: str, books: int = 1) -> Any:
    bench = str(ROOT / "scripts" / "bench.py")
    command = [sys.executable, bench, "--exchange-server", mode, str(speed), agent]
    return _process([*command, "--exchange-books", str(books)])


def _proxy_process(upstream: str) -> Any:
    command = [sys.executable, "-m", "mmgym.exchange.fault_proxy_cli"]
    return _process([*command, "--upstream", upstream])


def _next_ms(last: int) -> int:
    """Wait (outside any timed region) until the SDK's millisecond nonce moves past ``last``."""
    from hyperliquid.utils.signing import get_timestamp_ms

    while (now := get_timestamp_ms()) <= last:
        time.sleep(0.0002)
    return now


class _Trader:
    """The SDK's ``Exchange`` on ``url``, placing and canceling one Alo bid at the best bid."""

    def __init__(self, wallet: Any, url: str) -> None:
        from hyperliquid.exchange import Exchange

        self.exchange = Exchange(wallet, base_url=url, timeout=10.0)
        self.coin = COINS[0]
        book = self.exchange.info.l2_snapshot(self.coin)
        self.px = float(book["levels"][0][0]["px"])
        self.sz = max(_params().min_quote_size, 0.01)
        self.last_ms = 0

    def round_trip(self) -> tuple[float, float]:
        """Seconds to place (until the ack) and to cancel (until its answer)."""
        self.last_ms = _next_ms(self.last_ms)
        started = time.perf_counter()
        answer = self.exchange.order(self.coin, True, self.sz, self.px, {"limit": {"tif": "Alo"}})
        placed = time.perf_counter()
        status = answer["response"]["data"]["statuses"][0]
        if "resting" not in status:
            raise RuntimeError(f"the bench order was not resting: {answer}")
        self.last_ms = _next_ms(self.last_ms)
        started_cancel = time.perf_counter()
        answer = self.exchange.cancel(self.coin, status["resting"]["oid"])
        canceled = time.perf_counter()
        if answer["response"]["data"]["statuses"] != ["success"]:
            raise RuntimeError(f"the bench cancel failed: {answer}")
        return placed - started, canceled - started_cancel


def _signing_seconds(wallet: Any, calls: int) -> np.ndarray:
    from hyperliquid.utils.signing import sign_l1_action

    action = {"type": "cancel", "cancels": [{"a": 0, "o": 1}]}
    times = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter()
        sign_l1_action(wallet, action, None, 1_700_000_000_000 + i, None, False)
        times[i] = time.perf_counter() - started
    return times


def _ms(seconds: np.ndarray, q: float) -> str:
    """The ``q``-th percentile of ``seconds``, in ms."""
    return f"{np.percentile(seconds, q) * 1e3:.2f}"


def round_trip_table(orders: int) -> str:
    """Order round trips (place and cancel), direct and through the fault proxy."""
    from eth_account import Account

    wallet = Account.create()
    times: dict[str, list[tuple[float, float]]] = {"direct": [], "fault proxy": []}
    with (
        _exchange_process("lockstep", 1.0, wallet.address) as url,
        _proxy_process(url) as proxy_url,
    ):
        traders = {"direct": _Trader(wallet, url), "fault proxy": _Trader(wallet, proxy_url)}
        for trader in traders.values():
            for _ in range(10):  # warm-up: connections, caches
                trader.round_trip()
        while len(times["direct"]) < orders:
            block = min(BLOCK, orders - len(times["direct"]))
            for path, trader in traders.items():
                times[path].extend(trader.round_trip() for _ in range(block))
    rows = []
    for path, pairs in times.items():
        place, cancel = (np.array(column) for column in zip(*pairs, strict=True))
        for action, seconds in (("place (ack)", place), ("cancel", cancel)):
            rows.append([path, action, len(seconds), _ms(seconds, 50), _ms(seconds, 99)])
    signing = _signing_seconds(wallet, orders)
    rows.append(["client only", "sign", len(signing), _ms(signing, 50), _ms(signing, 99)])
    return table(["path", "action", "n", "p50 (ms)", "p99 (ms)"], rows, "llrrr")


async def _subscriber(
    url: str, coins: tuple[str, ...], seconds: float, warmup: float
) -> tuple[Counter[str], list[int]]:
    """Messages per channel received in ``seconds`` after ``warmup``; the l2Book times."""
    import aiohttp

    counts: Counter[str] = Counter()
    book_times: list[int] = []
    ws_url = "ws" + url[len("http") :] + "/ws"
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
        for coin in coins:
            for kind in ("l2Book", "trades", "activeAssetCtx"):
                subscription = {"type": kind, "coin": coin}
                await ws.send_json({"method": "subscribe", "subscription": subscription})
        loop = asyncio.get_running_loop()
        start = loop.time() + warmup
        end = start + seconds
        while (now := loop.time()) < end:
            try:
                message = await ws.receive(timeout=end - now)
            except TimeoutError:
                break
            if message.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"the stream ended: {message.type}")
            if now < start:
                continue
            payload = json.loads(message.data)
            channel = payload.get("channel", "?") if isinstance(payload, dict) else "?"
            counts[channel] += 1
            if channel == "l2Book":
                book_times.append(int(payload["data"]["time"]))
    return counts, book_times


async def _subscribers(
    url: str, n: int, coins: tuple[str, ...], seconds: float
) -> list[tuple[Counter[str], list[int]]]:
    return list(await asyncio.gather(*(_subscriber(url, coins, seconds, 1.0) for _ in range(n))))


def _rate(
    n: int, coins: tuple[str, ...], seconds: float, decision_interval: float
) -> dict[str, Any]:
    """One measurement with ``n`` subscribers on a fresh server: decisions/s and messages/s."""
    from eth_account import Account

    speed = 1e6  # decision intervals per simulated second: the server runs as fast as it can
    with _exchange_process("accelerated", speed, Account.create().address) as url:
        results = asyncio.run(_subscribers(url, n, coins, seconds))
    total = sum((counts for counts, _ in results), Counter())
    times = results[0][1]
    decisions = (times[-1] - times[0]) / 1e3 / decision_interval if len(times) > 1 else 0.0
    return {
        "decisions": decisions / seconds,
        "messages": sum(total.values()) / seconds,
        "channels": {c: v / seconds for c, v in total.items()},
    }


def rate_table(seconds: float, repeats: int, subscribers: tuple[int, ...] = (1, 4)) -> str:
    """Messages/s the exchange sustains with its market running flat out, per subscriber
    count: medians (and ranges) of ``repeats`` runs, the counts taking turns."""
    params = _params()
    coins = COINS[: params.num_assets]
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in subscribers}
    for _ in range(repeats):
        for n in subscribers:
            runs[n].append(_rate(n, coins, seconds, params.decision_interval))
    rows = []
    for n, measured in runs.items():
        decisions = [m["decisions"] for m in measured]
        messages = [m["messages"] for m in measured]
        channels = sorted({c for m in measured for c in m["channels"]})
        shares = ", ".join(
            f"{c} {statistics.median(m['channels'].get(c, 0.0) for m in measured):,.0f}"
            for c in channels
        )
        rows.append(
            [
                n,
                _median_range(decisions),
                _median_range(messages),
                f"{statistics.median(messages) / n:,.0f}",
                shares,
            ]
        )
    header = [
        "subscribers",
        "decisions/s",
        "messages/s (all)",
        "messages/s each (median)",
        "by channel (median)",
    ]
    return table(header, rows, "rrrrl")


def _median_range(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f} to {max(values):,.0f})"


def report(orders: int, seconds: float, repeats: int = 3) -> str:
    """The tables asked for, with their conditions."""
    parts = []
    if orders > 0:
        parts.append(
            f"Order round trips on loopback ({SCENARIO}, one perp, lockstep; the SDK's Exchange, "
            f"{orders} per path, blocks of {BLOCK} taking turns):\n\n{round_trip_table(orders)}"
        )
    if seconds > 0:
        parts.append(
            f"Sustained WebSocket rate ({SCENARIO}, accelerated flat out, l2Book + trades + "
            f"activeAssetCtx per coin, {seconds:g} s after 1 s of warm-up, a fresh server per "
            f"run; median (min to max) of {repeats} runs):\n\n{rate_table(seconds, repeats)}"
        )
    return "\n\n".join(parts)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(report(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
