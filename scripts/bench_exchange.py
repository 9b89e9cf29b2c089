"""The paper exchange's speed on loopback (``scripts/bench.py --exchange-seconds S``).

Two measurements, each against a lockstep paper exchange on 127.0.0.1 served on a thread of
this process (client and server share the machine's cores):

- **market streaming**: a websocket client subscribed to every channel of every coin and to
  the account while ``POST /paper/advance {"steps": 50}`` moves the market for ``seconds``:
  decision intervals per second and websocket messages per second received by the client;
- **order round trip**: a signed Alo order (the SDK's ``Exchange.order``, away from the touch)
  and its cancel, ``orders`` times: the order POST's latency, p50 and p99.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np
import requests


def _exchange(num_assets: int) -> tuple[Any, Any, Any]:
    from eth_account import Account

    from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
    from mmgym.scenarios import make_params

    wallet = Account.create()
    params = make_params("calm", episode_seconds=86_400.0, num_assets=num_assets)
    coins = ["BTC", "ETH", "SOL"][:num_assets]
    venue = PaperVenue(params, 0, coins, wallet.address, epoch_ms=0)
    server = BackgroundServer(PaperExchange(venue, wallet.address, Clock("lockstep")))
    return server, venue, wallet


def _streaming(seconds: float, num_assets: int) -> tuple[float, float]:
    """(decision intervals per second, websocket messages per second)."""
    import websocket

    server, venue, wallet = _exchange(num_assets)
    received = [0]
    ws = websocket.create_connection(server.url.replace("http", "ws") + "/ws", timeout=30)
    try:
        ws.recv()
        user = wallet.address
        subs: list[dict[str, Any]] = [
            {"type": kind, "user": user} for kind in ("orderUpdates", "userFills", "userFundings")
        ]
        for coin in venue.coins:
            subs += [{"type": kind, "coin": coin.name} for kind in ("l2Book", "trades")]
            subs.append({"type": "activeAssetCtx", "coin": coin.name})
        for sub in subs:
            ws.send(json.dumps({"method": "subscribe", "subscription": sub}))
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                try:
                    ws.recv()
                except (websocket.WebSocketTimeoutException, OSError):
                    continue
                received[0] += 1

        ws.settimeout(0.2)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        requests.post(f"{server.url}/paper/advance", json={"steps": 5}, timeout=60)  # warm up
        start_steps, start_msgs, start = venue.steps, received[0], time.perf_counter()
        while time.perf_counter() - start < seconds:
            requests.post(f"{server.url}/paper/advance", json={"steps": 50}, timeout=60)
        time.sleep(0.5)  # the last messages in flight
        elapsed = time.perf_counter() - start
        stop.set()
        reader.join(5)
        return (venue.steps - start_steps) / elapsed, (received[0] - start_msgs) / elapsed
    finally:
        ws.close()
        server.close()


def _round_trips(orders: int) -> np.ndarray:
    """Order POST latencies (ms)."""
    from hyperliquid.exchange import Exchange

    server, venue, wallet = _exchange(1)
    try:
        exchange = Exchange(wallet, base_url=server.url, timeout=30)
        best_bid, _ = venue.best_ticks(0)
        px = round((best_bid - 5) * venue.params.tick_size, 2)
        times = []
        for _ in range(orders):
            start = time.perf_counter()
            answer = exchange.order("BTC", True, 0.1, px, {"limit": {"tif": "Alo"}})
            times.append(1000.0 * (time.perf_counter() - start))
            oid = answer["response"]["data"]["statuses"][0]["resting"]["oid"]
            exchange.cancel("BTC", oid)
        return np.asarray(times)
    finally:
        server.close()


def paper_exchange_table(seconds: float, orders: int) -> str:
    """The markdown table of both measurements."""
    rows = []
    for k in (1, 2):
        steps, messages = _streaming(seconds, k)
        rows.append(
            f"| market streaming, {k} perp{'s' if k > 1 else ''} | {steps:,.0f} decision "
            f"intervals/s | {messages:,.0f} websocket messages/s | {seconds:g} s |"
        )
    latencies = _round_trips(orders)
    p50, p99 = np.percentile(latencies, [50, 99])
    rows.append(
        f"| signed order round trip (SDK `Exchange.order`) | p50 {p50:.2f} ms | "
        f"p99 {p99:.2f} ms | {orders} orders |"
    )
    return "\n".join(
        [
            "Paper exchange on 127.0.0.1 (lockstep, calm; client and server in one process)",
            "",
            "| Measurement | Rate or p50 | Messages or p99 | Over |",
            "|---|---:|---:|---:|",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(paper_exchange_table(5.0, 200))
