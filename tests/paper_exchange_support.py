"""Helpers of the paper exchange's tests: a running exchange on 127.0.0.1 and signed clients."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount

from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
from mmgym.scenarios import make_params

TIMEOUT = 60.0
"""Seconds any request or wait of these tests may take."""
MARKET = {"episode_seconds": 3600.0, "funding_interval_seconds": 60.0}


@dataclass
class Running:
    """A paper exchange serving on 127.0.0.1: its URL, venue and the account's key."""

    url: str
    venue: PaperVenue
    wallet: LocalAccount
    server: BackgroundServer

    def advance(self, steps: int = 1) -> dict[str, Any]:
        """``POST /paper/advance``."""
        answer = requests.post(f"{self.url}/paper/advance", json={"steps": steps}, timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def info(self, body: dict[str, Any]) -> Any:
        """``POST /info``."""
        answer = requests.post(f"{self.url}/info", json=body, timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        return answer.json()


@contextmanager
def running_exchange(
    seed: int = 3, time_mode: str = "lockstep", speed: float = 1.0, **overrides: Any
) -> Iterator[Running]:
    """A paper exchange of the calm market (funding every minute) with a fresh key, stopped on
    exit within TIMEOUT seconds."""
    wallet: LocalAccount = Account.create()
    params = make_params("calm", **{**MARKET, **overrides})
    coins = ["BTC", "ETH"][: params.num_assets]
    venue = PaperVenue(params, seed, coins, wallet.address, epoch_ms=1_700_000_000_000)
    exchange = PaperExchange(venue, wallet.address, Clock(time_mode, speed))
    server = BackgroundServer(exchange, port=0, timeout=TIMEOUT)
    try:
        yield Running(server.url, venue, wallet, server)
    finally:
        server.close()


def wait_for(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``check`` until it holds; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)
