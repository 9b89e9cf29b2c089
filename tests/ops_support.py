"""A live session for the operator's controls and metrics tests: the runner against the paper
exchange in lockstep, in-process, 127.0.0.1 only, its decisions let through one at a time."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from agents.baselines.registry import make_baseline
from agents.deploy.guard import GuardedPolicy
from agents.live.feed import MarketFeed
from agents.live.journal import Journal
from agents.live.pacing import LockstepPacer
from agents.live.runner import LiveRunner, RunnerConfig
from agents.live.venues import Signer
from agents.ops.alert_rules import Rule
from agents.ops.alerts import AlertEngine, Webhook
from agents.ops.control import OpsControl
from agents.ops.metrics import LiveMetrics
from mmgym.exchange import BackgroundServer, Clock, PaperExchange, PaperVenue
from mmgym.scenarios import make_params
from tests.venue_support import AGENT_KEY, USER, adapter

EPOCH_MS = 1_700_000_000_000
TOKEN = "ops-test-token-5f0c1d2e3a4b"
"""The operator token of the tests (never to appear in a log or the journal)."""
TIMEOUT_S = 300.0
"""Seconds a wait may take: the first decision of a cold cache compiles the guard and the
limiter (over a minute on a loaded 2-core machine)."""


class GatedPacer:
    """A lockstep pacer that lets one decision through per :meth:`allow`."""

    def __init__(self, inner: LockstepPacer) -> None:
        self.inner = inner
        self.arrivals = 0
        """Times the loop reached the gate (one more after each decision)."""
        self.closed = False
        self._permits = asyncio.Semaphore(0)

    async def next_decision(self, feed: MarketFeed) -> int | None:
        self.arrivals += 1
        await self._permits.acquire()
        if self.closed:
            return None
        return await self.inner.next_decision(feed)

    def allow(self) -> None:
        self._permits.release()

    def shut(self) -> None:
        self.closed = True
        self._permits.release()

    async def close(self) -> None:
        await self.inner.close()


async def wait_until(
    condition: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S
) -> None:
    """Poll ``condition`` (the loop runs meanwhile) until true; AssertionError after the time."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


class Session:
    """``async with Session(tmp_path) as s``: the runner trading behind its gate, with the
    operator's controls (``ops``) and metrics (``metrics``) on free ports of 127.0.0.1."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        seed: int = 3,
        ops: bool = True,
        metrics: bool = False,
        rules: Sequence[Rule] = (),
        webhook: Webhook | None = None,
    ) -> None:
        params = make_params(
            "calm", episode_seconds=3600.0, funding_interval_seconds=60.0, num_assets=1
        )
        self.venue = PaperVenue(params, seed, ["BTC"], USER, EPOCH_MS)
        exchange = PaperExchange(self.venue, Signer(AGENT_KEY).address, Clock("lockstep"))
        self.server = BackgroundServer(exchange, timeout=30.0)
        self.journal = Journal.open(tmp_path / "journal.db")
        guarded = GuardedPolicy(make_baseline("avellaneda_stoikov", params), params)
        config = RunnerConfig(
            coins=("BTC",), collateral=params.collateral, max_decisions=None, reconcile_every=10
        )
        self.gate = GatedPacer(LockstepPacer(self.server.url))
        self.runner = LiveRunner(adapter(self.server.url), guarded, self.journal, config, self.gate)
        self.ops = OpsControl(self.runner, TOKEN, 0, apply_timeout_s=TIMEOUT_S) if ops else None
        self.metrics = LiveMetrics(self.runner, 0) if metrics else None
        self.runner.ops = self.ops
        self.runner.metrics = self.metrics
        if rules or webhook is not None:
            self.runner.alerts = AlertEngine(self.runner, rules, webhook)
        self.journal_path = tmp_path / "journal.db"
        self.task: asyncio.Task[Any] | None = None

    async def __aenter__(self) -> Session:
        self.task = asyncio.create_task(self.runner.run())
        await wait_until(lambda: self.gate.arrivals >= 1 or self.task_done(), "the first gate")
        self.task_done(raise_error=True)
        return self

    def task_done(self, raise_error: bool = False) -> bool:
        assert self.task is not None
        if self.task.done() and raise_error:
            self.task.result()
            raise AssertionError("the runner stopped")
        return self.task.done()

    async def step(self, n: int = 1) -> None:
        """Let ``n`` decisions through, each to its end (back at the gate)."""
        for _ in range(n):
            arrivals = self.gate.arrivals
            self.gate.allow()
            await wait_until(
                lambda a=arrivals: self.gate.arrivals > a or self.task_done(),  # type: ignore[misc]
                "a decision",
            )
            self.task_done(raise_error=True)

    async def step_until(self, condition: Callable[[], bool], what: str, limit: int) -> int:
        """Decisions until ``condition`` holds (at most ``limit``); how many it took."""
        for n in range(limit):
            if condition():
                return n
            await self.step()
        assert condition(), f"{what} not reached in {limit} decisions"
        return limit

    @property
    def url(self) -> str:
        assert self.ops is not None and self.ops.url is not None
        return self.ops.url

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.task is not None:
                self.runner.stop()
                self.gate.shut()
                await asyncio.wait_for(self.task, TIMEOUT_S)
        finally:
            self.journal.close()
            self.server.close()


class HookServer:
    """A webhook on 127.0.0.1 (a free port) that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10.0)


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (a webhook that is down)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


async def get_status(s: Session, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    """``GET /v1/status`` with ``token`` (None: no header): (HTTP status, answer)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(s.url + "/v1/status", headers=headers) as response,
    ):
        return response.status, await response.json()


async def post(
    s: Session, command: str, token: str | None = TOKEN, **body: Any
) -> tuple[int, dict[str, Any]]:
    """``POST /v1/<command>`` with ``body`` and ``token``: (HTTP status, answer)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(s.url + f"/v1/{command}", json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def command(s: Session, command: str, **body: Any) -> tuple[int, dict[str, Any]]:
    """Send a command and let one decision through: the runner applies it before deciding."""
    body = {"operator": "alice", "reason": f"test {command}", **body}
    task = asyncio.create_task(post(s, command, **body))
    await wait_until(lambda: task.done() or (s.ops is not None and s.ops.pending > 0), "queued")
    if not task.done():
        await s.step()
    return await asyncio.wait_for(task, TIMEOUT_S)
