"""The operator's controls of a live session: a small HTTP API in the runner's process.

Served on 127.0.0.1 only (``LiveJob.ops_port``; 0 picks a free port, which the runner logs and
journals), every request with ``Authorization: Bearer <token>``; the token comes from
``$MMGYM_OPS_TOKEN`` or a 0600 file named by ``$MMGYM_OPS_TOKEN_FILE``, never from config, and
is compared with :func:`hmac.compare_digest`. A missing or wrong token is refused with 401 and
logged without the token.

``GET /v1/status`` answers at once (even while a decision is in progress or the loop waits on
the venue): the risk mode, the last transition and its reason, the limiter's counts, positions,
open orders, equity, the connection, the decision counts and the alert incidents open
(``alerts``: :meth:`agents.ops.alerts.AlertEngine.active`).

``POST /v1/<command>`` with a JSON object ``{"operator": NAME, "reason": TEXT, "confirm":
bool}``, for ``halt``, ``reduce``, ``resume`` and ``flatten``: the command is journaled
(``operator_command``, with the operator and the reason) before anything else, then queued; the
runner applies the queue between decisions (:meth:`OpsControl.apply_pending`, before each
decision, never inside one) and journals the risk transitions it caused. The answer waits for
the application (up to ``apply_timeout_s``; then 202, applied before the next decision).

- ``halt``: :meth:`~agents.deploy.risk.RiskLimiter.halt`: every order is cancelled from the
  next decision on; only ``resume`` leaves HALTED.
- ``flatten``: :meth:`~agents.deploy.risk.RiskLimiter.flatten_then_halt`: the limiter's own
  reducing orders until flat, then HALTED (``FLATTENED``).
- ``reduce``: :meth:`~agents.deploy.risk.RiskLimiter.reduce`: only reducing orders until
  ``resume`` (``OPERATOR_REDUCE``); refused when HALTED.
- ``resume``: only with ``confirm: true``. Without it nothing changes and the answer shows what
  tripped (the last transition's reason and time, the limiter's counts). From HALTED:
  :meth:`~agents.deploy.risk.RiskLimiter.operator_reset` (ACTIVE); from the operator's REDUCING:
  :meth:`~agents.deploy.risk.RiskLimiter.resume`. Refused otherwise (the kill switch's own
  REDUCING ends by itself).

Answers: 200 applied, 409 refused or nothing changed (the answer says why), 400 bad input, 401
no or wrong token, 202 queued.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import os
import stat
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmgym.extras import extra_needed

with extra_needed("agents.ops.control"):
    from aiohttp import web

from agents.deploy.risk import Reason, TradingMode
from agents.live.journal import Kind
from agents.live.order_state import FINAL

if TYPE_CHECKING:
    from agents.live.runner import LiveRunner

log = logging.getLogger("mmgym.ops")

HOST = "127.0.0.1"
"""The only address the controls (and the metrics) listen on."""
TOKEN_ENV = "MMGYM_OPS_TOKEN"
TOKEN_FILE_ENV = "MMGYM_OPS_TOKEN_FILE"
MIN_TOKEN_LENGTH = 16
COMMANDS = ("status", "halt", "reduce", "resume", "flatten")
ACTIONS = ("halt", "reduce", "resume", "flatten")
"""The commands that change the risk state (journaled, applied between decisions)."""
MAX_OPERATOR = 64
MAX_REASON = 500


class TokenError(ValueError):
    """The operator token is missing, unreadable or too weak (the message never holds it)."""


def load_token(environ: Mapping[str, str] | None = None, *, required: bool = True) -> str | None:
    """The operator token: ``$MMGYM_OPS_TOKEN``, else the file named by ``$MMGYM_OPS_TOKEN_FILE``
    (readable by its owner only: mode 0600 or 0400). Raises :class:`TokenError` when absent
    (unless not ``required``: None), when the file is open to others, or when the token is
    shorter than 16 characters."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV)
    if not token:
        name = env.get(TOKEN_FILE_ENV)
        if not name:
            if not required:
                return None
            raise TokenError(f"no operator token: set ${TOKEN_ENV} or ${TOKEN_FILE_ENV}")
        path = Path(name).expanduser()
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise TokenError(
                    f"${TOKEN_FILE_ENV} {path} is readable by others "
                    f"(mode {stat.S_IMODE(mode):04o}): chmod 600 it"
                )
            token = path.read_text().strip()
        except OSError as err:
            raise TokenError(f"${TOKEN_FILE_ENV} {path} cannot be read: {err.strerror}") from None
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(f"the operator token must have at least {MIN_TOKEN_LENGTH} characters")
    return token


@dataclass(frozen=True)
class OperatorCommand:
    """One operator command: what, who, why."""

    command: str
    operator: str
    reason: str
    confirm: bool = False

    @classmethod
    def parse(cls, command: str, body: Any) -> OperatorCommand:
        """The command of a request's JSON body; ValueError naming what is wrong."""
        if command not in ACTIONS:
            raise ValueError(f"unknown command {command!r}; one of {ACTIONS}")
        if not isinstance(body, dict):
            raise ValueError('the body must be a JSON object {"operator": ..., "reason": ...}')
        unknown = sorted(set(body) - {"operator", "reason", "confirm"})
        if unknown:
            raise ValueError(
                f"unknown field(s) {unknown}; the fields are operator, reason, confirm"
            )
        operator = _text(body.get("operator"), "operator", MAX_OPERATOR)
        reason = _text(body.get("reason"), "reason", MAX_REASON)
        confirm = body.get("confirm", False)
        if not isinstance(confirm, bool):
            raise ValueError("confirm must be true or false")
        return cls(command, operator, reason, confirm)


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"every command needs a non-empty {name}")
    value = value.strip()
    if len(value) > limit or not value.isprintable():
        raise ValueError(f"{name} must be printable, at most {limit} characters")
    return value


Answer = tuple[int, dict[str, Any]]


class OpsControl:
    """The operator's HTTP controls of ``runner`` (started and stopped by
    :meth:`~agents.live.runner.LiveRunner.run`).

    Args:
        runner: the live runner.
        token: the operator token (:func:`load_token`).
        port: the port on 127.0.0.1 (0: a free one, see :attr:`url` once started).
        apply_timeout_s: how long a command's answer waits for the runner to apply it.
    """

    def __init__(
        self, runner: LiveRunner, token: str, port: int = 0, *, apply_timeout_s: float = 30.0
    ) -> None:
        if len(token) < MIN_TOKEN_LENGTH:
            raise TokenError(f"the operator token must have at least {MIN_TOKEN_LENGTH} characters")
        self.runner = runner
        self._token = token.encode()
        self.port = port
        self.apply_timeout_s = apply_timeout_s
        self.url: str | None = None
        self._queue: asyncio.Queue[tuple[OperatorCommand, int | None, asyncio.Future[Answer]]] = (
            asyncio.Queue()
        )
        self._site_runner: web.AppRunner | None = None

    # --- the server -----------------------------------------------------------------------

    async def start(self) -> str:
        """Listen on 127.0.0.1 (logged and journaled); returns the URL."""
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 1024)
        app.router.add_get("/v1/status", self._status)
        app.router.add_post("/v1/{command}", self._command)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._site_runner = runner
        port = int(runner.addresses[0][1])
        self.url = f"http://{HOST}:{port}"
        log.info("operator controls listening on %s", self.url)
        self.runner.journal.append(Kind.NOTE, {"event": "ops_listening", "url": self.url})
        return self.url

    async def close(self) -> None:
        """Stop listening; queued commands not applied are answered 503."""
        if self._site_runner is not None:
            await self._site_runner.cleanup()
            self._site_runner = None
        while not self._queue.empty():
            _, _, answer = self._queue.get_nowait()
            if not answer.done():
                answer.set_result((503, {"ok": False, "message": "the runner stopped"}))

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return self._refuse(request, "no token")
        if not hmac.compare_digest(given.strip().encode(), self._token):
            return self._refuse(request, "a wrong token")
        return await handler(request)

    def _refuse(self, request: web.Request, why: str) -> web.Response:
        log.warning("operator controls: refused %s %s from %s: %s", request.method,
                    request.path, request.remote, why)  # fmt: skip
        return web.json_response({"ok": False, "message": f"unauthorized: {why}"}, status=401)

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "status": self.status()})

    async def _command(self, request: web.Request) -> web.Response:
        name = request.match_info["command"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        try:
            command = OperatorCommand.parse(name, body)
        except ValueError as err:
            return web.json_response({"ok": False, "message": str(err)}, status=400)
        seq = self.runner.journal.append(
            Kind.OPERATOR_COMMAND, {**asdict(command), "remote": request.remote}
        )
        log.warning("operator %s: %s (%s)", command.operator, command.command, command.reason)
        if command.command == "resume" and not command.confirm:
            status, payload = self._resume_preview()
            return web.json_response({**payload, "seq": seq}, status=status)
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((command, seq, answer))
        try:
            status, payload = await asyncio.wait_for(
                asyncio.shield(answer), timeout=self.apply_timeout_s
            )
        except TimeoutError:
            status, payload = (
                202,
                {
                    "ok": True,
                    "queued": True,
                    "message": "queued: the runner applies it before its next decision",
                },
            )
        return web.json_response({**payload, "command": command.command, "seq": seq}, status=status)

    # --- between decisions ----------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Commands queued, not yet applied."""
        return self._queue.qsize()

    def apply_pending(self) -> None:
        """Apply every queued command, oldest first, and journal the transitions each causes.
        Called by the runner between decisions only."""
        while not self._queue.empty():
            command, seq, answer = self._queue.get_nowait()
            try:
                result = self.apply(command)
            except Exception as err:  # an answer, never a crash of the decision loop
                log.exception("operator command %s failed", command.command)
                result = (500, {"ok": False, "message": f"failed: {type(err).__name__}: {err}"})
            self._journal_transitions(seq)
            if not answer.done():
                answer.set_result(result)

    def apply(self, command: OperatorCommand) -> Answer:
        """Apply one command to the limiter now (between decisions): (HTTP status, answer)."""
        limiter = self.runner.guarded.limiter
        mode = limiter.state.mode_of(0)
        who = command.operator
        if command.command == "halt":
            if mode == TradingMode.HALTED:
                return self._answer(409, "already HALTED: nothing changed")
            limiter.halt(0, who)
            return self._answer(200, "HALTED: every order is cancelled at the next decision")
        if command.command == "flatten":
            if mode == TradingMode.HALTED and bool(limiter.state.flattening[0]):
                return self._answer(409, "already flattening: nothing changed")
            limiter.flatten_then_halt(0, who)
            return self._answer(200, "HALTED, flattening: reducing orders until flat")
        if command.command == "reduce":
            if mode == TradingMode.HALTED:
                return self._answer(409, "HALTED: reduce would not restrict it (resume first)")
            if limiter.operator_reducing[0]:
                return self._answer(409, "already REDUCING by an operator: nothing changed")
            limiter.reduce(0, who)
            return self._answer(200, "REDUCING: only reducing orders until resume")
        if command.command == "resume":
            if not command.confirm:
                return self._resume_preview()
            if mode == TradingMode.HALTED:
                limiter.operator_reset(0, who)
                return self._answer(200, "ACTIVE: the kill switch's references restarted")
            if limiter.operator_reducing[0]:
                limiter.resume(0, who)
                return self._answer(200, f"{limiter.state.mode_of(0).name}: the hold ended")
            return self._answer(409, f"{mode.name}: nothing an operator holds; nothing changed")
        return self._answer(400, f"unknown command {command.command!r}")

    def _resume_preview(self) -> Answer:
        limiter = self.runner.guarded.limiter
        mode = limiter.state.mode_of(0)
        held = bool(limiter.operator_reducing[0])
        if mode == TradingMode.HALTED:
            would = "return the account from HALTED to ACTIVE (operator_reset)"
        elif held:
            would = "end the operator's REDUCING"
        else:
            return self._answer(409, f"{mode.name}: nothing to resume; nothing changed")
        status = self.status()
        return 409, {
            "ok": False,
            "confirm_needed": True,
            "message": f"resume would {would}: send confirm=true (mmgym-ops resume --yes); "
            "nothing changed",
            "tripped": {
                "last_transition": status["last_transition"],
                "counts": status["counts"],
            },
            "status": status,
        }

    def _answer(self, code: int, message: str) -> Answer:
        return code, {"ok": code == 200, "message": message, "status": self.status()}

    def _journal_transitions(self, seq: int | None) -> None:
        from agents.live.runner import _transition_payload

        for transition in self.runner.guarded.drain_transitions():
            payload = _transition_payload(transition)
            payload["command_seq"] = seq
            self.runner.journal.append(Kind.RISK_TRANSITION, payload)

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What the operator sees (a snapshot between two awaits of the runner)."""
        runner = self.runner
        limiter = runner.guarded.limiter
        stats = runner.stats
        last = runner.journal.last(Kind.RISK_TRANSITION)
        transition = None
        if last is not None:
            transition = {**last.payload, "seq": last.seq, "journaled_ms": last.time_ms}
        account = runner.account_view()
        equity = runner.feed.equity(account) if runner.feed is not None else math.nan
        orders = [
            {
                "coin": o.coin,
                "side": "buy" if o.is_buy else "sell",
                "px": o.version.px,
                "sz": o.version.remaining,
                "phase": o.phase.name,
                "cloid": o.cloid,
            }
            for o in runner.manager.active()
            if o.phase not in FINAL
        ]
        return {
            "mode": limiter.state.mode_of(0).name,
            "operator_reducing": bool(limiter.operator_reducing[0]),
            "flattening": bool(limiter.state.flattening[0]),
            "last_transition": transition,
            "counts": {Reason(r).name: n for r, n in limiter.state.counts(0).items()},
            "positions": {c: q for c, q in account.positions.items() if q},
            "open_orders": orders,
            "cash": account.cash,
            "equity": equity if math.isfinite(equity) else None,
            "connected": runner.connected,
            "decisions": stats.decisions,
            "skipped": stats.skipped,
            "disconnects": stats.disconnects,
            "reconciles": stats.reconciles,
            "drift": stats.drift,
            "pending_commands": self.pending,
            "alerts": runner.alerts.active() if runner.alerts is not None else [],
        }
