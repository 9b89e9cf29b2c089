"""A paper session (``make paper``): the demo's bundle on a liquidation cascade, through the
guarded live runner and the paper exchange on 127.0.0.1, in lockstep (or accelerated time);
then the session report (docs/operations.md, "make paper").

    python scripts/paper.py                          # 480 s of market time in lockstep
    python scripts/paper.py market_seconds=300 time_mode=accelerated speed=20 seed=1176
    python scripts/paper.py runs=/tmp/runs vet.num_envs=8 vet.seeds=[20000]

1. The bundle: the newest ``<runs>/demo/<time>/bundle/`` (``make demo`` writes it when its
   policy passed vetting). Without one (no demo run, or its policy failed vetting) the
   ``baseline`` (adaptive) is vetted over ``vet`` under the production limits and exported as a
   manifest-only bundle, kept in ``<runs>/paper/<baseline>-bundle/`` for the next session; the
   output says which and why. A failed vetting stops here (exit 1).
2. The paper exchange (``mmgym-paper-exchange``) serves ``env`` (``liquidation_cascade``, seed
   ``seed``) on a free port in accelerated time (``speed`` decision intervals per interval of
   wall time), its clock starting at the runner's first subscription, and logs the crowd's
   liquidations to ``market.jsonl``.
3. The live runner (``mmgym-live``) trades the bundle for ``market_seconds`` of market time with
   a fresh journal, ``risk=paper`` limits, the operator's controls (``ops_port=0``, a generated
   token in the 0600 file ``ops-token``), metrics (``metrics_port=0``) and the default alert
   rules. On a terminal the live dashboard (``mmgym-ops watch``) shows it; otherwise a progress
   line every ``progress_every`` decisions, then the dashboard's plain-text summary.
4. Both are stopped (the runner, then the exchange; SIGINT or SIGTERM to this script stops both
   too), the session report is written with the cascade marked, and the paths are printed.

Everything lands in ``<runs>/paper/<time>/``: ``journal.db``, ``report/session.md`` (and its
plots), ``market.jsonl``, ``exchange.log``, ``runner.log``, ``ops-token`` and ``paper-key`` (the
paper account's key, 0600; never printed). Exit codes: 0 the session ran and was reported; 1 it
failed (the message says where) or a signal stopped it; 2 bad settings.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from agents.cli import job_main
from agents.config import PaperJob

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
SERVING = re.compile(r"serving (http://127\.0\.0\.1:\d+)")
START_TIMEOUT_S = 120.0
"""How long the exchange may take to serve (a cold numba cache compiles the kernel)."""
STOP_TIMEOUT_S = 30.0
"""How long a child may take to stop after SIGTERM before it is killed."""
EXCHANGE_SLACK_S = 120.0
"""Market time the exchange runs past the session, so that it never ends first."""


class SessionError(RuntimeError):
    """The session could not run; the message says what failed and where its log is."""


class StoppedError(Exception):
    """SIGINT or SIGTERM reached this script."""


@dataclass(frozen=True)
class BundleChoice:
    """The bundle the session trades and why."""

    path: Path
    source: str
    """``demo`` or the baseline's name."""
    why: str
    """Why this bundle (the demo's run, or why not the demo's)."""


# --- the bundle ---------------------------------------------------------------------------------


def demo_bundle(runs: Path) -> tuple[Path | None, str]:
    """The newest demo run's bundle, or None and why there is none."""
    from agents.deploy.bundle import MANIFEST, load_bundle

    demos = sorted(p for p in (runs / "demo").glob("*") if p.is_dir())
    if not demos:
        return None, f"no demo run in {runs / 'demo'} (make demo writes one)"
    newest = demos[-1]
    bundle = newest / "bundle"
    if (bundle / MANIFEST).is_file():
        try:
            load_bundle(bundle)
        except ValueError as err:
            return None, f"the newest demo run's bundle {bundle} does not load ({err})"
        return bundle, f"the newest demo run, {newest}"
    vetting = newest / "train" / "vetting" / "vetting.json"
    verdict = None
    if vetting.is_file():
        try:
            verdict = json.loads(vetting.read_text()).get("verdict")
        except (ValueError, AttributeError):
            verdict = None
    if verdict == "fail":
        return None, (
            f"the newest demo run's policy failed vetting ({vetting.with_suffix('.md')}), so it "
            "exported no bundle"
        )
    return None, f"the newest demo run, {newest}, has no bundle (it did not finish)"


def baseline_bundle(job: PaperJob, why: str) -> BundleChoice:
    """The job's baseline, vetted over ``job.vet`` under the production limits and exported;
    reused from ``<runs>/paper/`` when vetted before with the same suite and market."""
    from agents.deploy.bundle import load_bundle, market_to_json
    from agents.deploy.export import export_baseline
    from agents.deploy.risk import RiskLimits
    from agents.deploy.vetting import vet
    from mmgym.scenarios import make_params

    name = job.baseline
    params = make_params(job.env.scenario, **job.env.overrides)
    home = Path(job.runs) / "paper"
    bundle, vetting, key_file = (
        home / f"{name}-bundle",
        home / f"{name}-vetting",
        home / f"{name}-bundle.key",
    )
    key = json.dumps(
        {"vet": dataclasses.asdict(job.vet), "market": market_to_json(params)}, sort_keys=True
    )
    if key_file.is_file() and key_file.read_text() == key:
        try:
            load_bundle(bundle)
            return BundleChoice(bundle, name, f"{why}; the {name} bundle vetted before")
        except ValueError:
            pass  # vetted again below
    print(f"vetting the {name} baseline over the stress suite (vet=demo; 1-2 min on 2 cores)")
    started = time.perf_counter()
    result = vet(f"baseline:{name}", job.vet, RiskLimits(), out=vetting, progress=False)
    if result.verdict != "pass":
        failed = ", ".join(dict.fromkeys(f"{c.name} ({c.scenario})" for c in result.failed))
        raise SessionError(
            f"the {name} baseline failed vetting ({failed}); report: {result.report}. Nothing "
            "to trade: make demo, or vet another baseline (baseline=<name>)"
        )
    export_baseline(name, bundle, params, vetting=result.record, overwrite=True)
    key_file.write_text(key)
    seconds = time.perf_counter() - started
    return BundleChoice(bundle, name, f"{why}; {name} vetted in {seconds:.0f} s ({result.report})")


def choose_bundle(job: PaperJob) -> BundleChoice:
    """The demo's bundle, else the vetted baseline's."""
    path, why = demo_bundle(Path(job.runs))
    if path is not None:
        return BundleChoice(path, "demo", why)
    return baseline_bundle(job, why)


# --- secrets ------------------------------------------------------------------------------------


def write_secret(path: Path, text: str) -> Path:
    """Write ``text`` to a new file readable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


def paper_account(out: Path) -> tuple[str, Path]:
    """A fresh paper account: its address and its key's 0600 file (the key is never printed)."""
    from eth_account import Account

    account = Account.create()
    key = account.key.hex()
    return account.address, write_secret(
        out / "paper-key", key if key.startswith("0x") else "0x" + key
    )


# --- the children -------------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM when this script dies, even by SIGKILL (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``python scripts/<args>`` in its own process group, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches this script, which stops both
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def stop(child: subprocess.Popen[bytes] | None, timeout: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM, then SIGKILL after ``timeout``; the exit code."""
    if child is None:
        return None
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10.0)
    return child.returncode


def wait_for_url(child: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    """The URL the exchange prints once it serves."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = SERVING.search(log.read_text(errors="replace")) if log.exists() else None
        if found:
            return found.group(1)
        if child.poll() is not None:
            raise SessionError(f"the paper exchange exited with {child.returncode}; see {log}")
        time.sleep(0.05)
    raise SessionError(f"the paper exchange did not serve within {timeout:g} s; see {log}")


def child_env(**extra: str) -> dict[str, str]:
    """This environment, the repository first on the path, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMGYM_HL_", "MMGYM_OPS_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, **extra}


@contextmanager
def signals_stop() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`StoppedError` while the block runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise StoppedError(signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# --- watching -----------------------------------------------------------------------------------


class Progress:
    """A progress line every ``every`` decisions and at each risk transition, read from the
    journal (read-only) while the runner writes it: what :func:`watch` prints when stdout is
    not a terminal."""

    def __init__(self, journal: Path, every: int, total: int, print_: Callable[[str], None]):
        self.journal = journal
        self.every = every
        self.total = total
        self.print = print_
        self.seq = 0
        self.decisions = 0
        self.first_ms: int | None = None
        self.collateral: float | None = None
        self.reasons: Counter[str] = Counter()

    def poll(self) -> None:
        """Read the rows appended since the last poll and print what is due."""
        from agents.live.journal import JournalError, Kind
        from agents.ops.report import open_read_only

        if not self.journal.exists():
            return
        try:
            journal = open_read_only(self.journal)
        except JournalError:
            return  # not initialised yet
        try:
            for event in journal.events(self.seq):
                self.seq = event.seq
                self._show(event.kind, event.payload, Kind)
        finally:
            journal.close()

    def _show(self, kind: Any, p: dict[str, Any], Kind: Any) -> None:
        if kind is Kind.NOTE and p.get("event") in ("ops_listening", "metrics_listening"):
            what = "operator controls" if p["event"] == "ops_listening" else "metrics"
            self.print(f"  {what}: {p.get('url')}")
        elif kind is Kind.RISK_TRANSITION:
            self.print(f"  risk {p.get('from')} -> {p.get('to')} ({p.get('reason')})")
        elif kind is Kind.DECISION:
            self.decisions += 1
            t = p.get("venue_time_ms")
            if self.first_ms is None and isinstance(t, int):
                self.first_ms = t
            equity = p.get("equity")
            if self.collateral is None and isinstance(equity, int | float):
                self.collateral = float(equity)
            for reason, n in (p.get("reasons") or {}).items():
                self.reasons[reason] += int(n)
            if self.decisions % self.every == 0 or self.decisions == 1:
                self.print(self._line(p, t, equity))

    def _line(self, p: dict[str, Any], t: Any, equity: Any) -> str:
        at = (t - self.first_ms) / 1000.0 if isinstance(t, int) and self.first_ms else 0.0
        pnl = (
            f" ({float(equity) - self.collateral:+.2f})"
            if isinstance(equity, int | float) and self.collateral is not None
            else ""
        )
        positions = " ".join(f"{c} {q:+.3f}" for c, q in (p.get("positions") or {}).items())
        limiter = ", ".join(
            f"{r} {n}" for r, n in self.reasons.most_common(3) if r != "ESTIMATOR_WARMUP"
        )
        return (
            f"  decision {self.decisions:4d}/{self.total}  market +{at:5.0f} s  equity "
            f"{equity if not isinstance(equity, float) else f'{equity:.2f}'}{pnl}  "
            f"{p.get('mode')}  {positions or 'flat'}"
            + (f"  limiter so far: {limiter}" if limiter else "")
        )


def watch(
    journal: Path, runner: subprocess.Popen[bytes], job: PaperJob, total: int, deadline: float
) -> None:
    """Show the session while the runner trades, until it exits or ``deadline`` (monotonic).

    On a terminal: the live dashboard (``mmgym-ops watch``, :func:`agents.ops.watch.run_watch`),
    refreshed every second. Otherwise (a log, a pipe): a progress line every ``progress_every``
    decisions and at each risk transition, then the dashboard's plain-text summary once the
    runner stopped."""
    from agents.ops.watch import run_watch

    if sys.stdout.isatty():
        stop = threading.Event()

        def stop_when_the_runner_ends() -> None:
            while runner.poll() is None and time.monotonic() < deadline and not stop.is_set():
                time.sleep(0.25)
            stop.set()

        waiter = threading.Thread(target=stop_when_the_runner_ends, daemon=True)
        waiter.start()
        try:
            run_watch(journal, refresh_s=1.0, exit_when_done=True, stop=stop, wait_s=60.0)
            while runner.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)  # the journal's stop note comes just before the runner exits
        finally:
            stop.set()
            waiter.join(timeout=1.0)
        return
    progress = Progress(journal, job.progress_every, total, lambda s: print(s, flush=True))
    while runner.poll() is None and time.monotonic() < deadline:
        progress.poll()
        time.sleep(0.25)
    progress.poll()
    if journal.exists():
        print(flush=True)
        run_watch(journal, plain=True, once=True)


# --- the session --------------------------------------------------------------------------------


def session_dir(runs: Path) -> Path:
    """A new ``<runs>/paper/<time>/``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = runs / "paper" / stamp
    n = 1
    while out.exists():
        n += 1
        out = runs / "paper" / f"{stamp}-{n}"
    out.mkdir(parents=True)
    return out


def run(job: PaperJob) -> int:
    """The whole session; the exit code."""
    try:
        return _session(job)
    except SessionError as err:
        print(f"make paper: {err}", file=sys.stderr, flush=True)
        return 1


def _session(job: PaperJob) -> int:
    from agents.market import market_of

    started = time.perf_counter()
    market = market_of(job.env.scenario, job.market_seconds, job.env.overrides).params
    interval = market.decision_interval
    decisions = round(job.market_seconds / interval)
    choice = choose_bundle(job)
    if choice.source == "demo":
        print(f"bundle: {choice.path} ({choice.why})", flush=True)
    else:
        print(
            f"bundle: {choice.path}: the {choice.source} baseline, not the demo's policy: "
            f"{choice.why}",
            flush=True,
        )
    out = session_dir(Path(job.runs))
    journal, market_log, report_dir = out / "journal.db", out / "market.jsonl", out / "report"
    exchange_log, runner_log = out / "exchange.log", out / "runner.log"
    address, key_file = paper_account(out)
    token_file = write_secret(out / "ops-token", secrets.token_urlsafe(32))
    overrides = [f"+env.overrides.{k}={json.dumps(v)}" for k, v in job.env.overrides.items()]
    exchange_args = [
        str(SCRIPTS / "paper_exchange.py"),
        f"user={address}",
        f"env={job.env.scenario}",
        *overrides,
        "port=0",
        f"time_mode={job.time_mode}",
        f"speed={job.speed}",
        f"seed={job.seed}",
        f"episode_seconds={job.market_seconds + EXCHANGE_SLACK_S}",
        f"market_log={market_log}",
        f"start_on_subscribe={str(job.time_mode == 'accelerated').lower()}",
    ]
    pacing = (
        ["pacing=lockstep"]
        if job.time_mode == "lockstep"
        else ["pacing=wall", f"decision_seconds={interval / job.speed}"]
    )
    limits = [f"++risk.limits.{k}={v}" for k, v in job.risk.limits.items()]
    exchange = runner = None
    code = 1
    with signals_stop():
        try:
            exchange = spawn(exchange_args, exchange_log, child_env())
            url = wait_for_url(exchange, exchange_log, START_TIMEOUT_S)
            mode = "lockstep" if job.time_mode == "lockstep" else f"accelerated x{job.speed:g}"
            print(
                f"paper exchange: {url} ({job.env.scenario}, seed {job.seed}, {mode}); trading "
                f"{job.market_seconds:g} s of market time ({decisions} decisions)",
                flush=True,
            )
            runner_args = [
                str(SCRIPTS / "live.py"),
                f"bundle={choice.path}",
                f"account={address}",
                f"journal={journal}",
                f"url={url}",
                *pacing,
                f"max_decisions={decisions}",
                "ops_port=0",
                "metrics_port=0",
                "risk=default",
                *limits,
            ]
            env = child_env(MMGYM_HL_KEY_FILE=str(key_file), MMGYM_OPS_TOKEN_FILE=str(token_file))
            runner = spawn(runner_args, runner_log, env)
            deadline = time.monotonic() + job.timeout_s
            watch(journal, runner, job, decisions, deadline)
            if runner.poll() is None:
                print(f"make paper: the session passed timeout_s={job.timeout_s:g} s; stopping")
            code = 0
        except StoppedError as sig:
            print(f"make paper: {sig}: stopping the runner, then the exchange", flush=True)
            code = 1
        finally:
            for s in (signal.SIGINT, signal.SIGTERM):  # the stops below are bounded
                signal.signal(s, signal.SIG_IGN)
            runner_code = stop(runner)
            exchange_code = stop(exchange)
    if runner_code not in (0, None) or exchange_code not in (0, None):
        print(
            f"make paper: the runner exited with {runner_code} ({runner_log}), the exchange "
            f"with {exchange_code} ({exchange_log})",
            file=sys.stderr,
        )
        code = 1
    if not journal.exists():
        raise SessionError(f"no journal was written; see {runner_log}")
    report = write_report(job, journal, market_log, report_dir)
    print()
    print(f"Done in {time.perf_counter() - started:.0f} s.")
    print(f"Session: {out}")
    print(f"  report        {report}")
    print(f"  journal       {journal}")
    print(f"  market log    {market_log}")
    print(f"  runner log    {runner_log}")
    print(f"  exchange log  {exchange_log}")
    print(f"  ops token     {token_file} (0600; MMGYM_OPS_TOKEN_FILE for mmgym-ops)")
    print(f"  paper key     {key_file} (0600; MMGYM_HL_KEY_FILE to restart the runner)")
    return code


def write_report(job: PaperJob, journal: Path, market_log: Path, out: Path) -> Path:
    """The session report with the cascade marked; prints what the limiter did in it."""
    from agents.ops.market_log import cascades, interventions_by_window, read_market_log
    from agents.ops.report import read_session, write_session_report

    events = read_market_log(market_log) if market_log.exists() else []
    windows = cascades(events, job.cascade_gap_s, job.cascade_after_s)
    path = write_session_report(journal, out, windows[:1])
    session = read_session(journal)
    print(f"decisions: {len(session.decisions)}")
    if not windows:
        print("cascade: none in the market log: the market's crowd was not liquidated en masse")
        return path
    cascade = windows[0]
    inside, outside = interventions_by_window(session.decisions, cascade)
    origin = session.decisions[0].payload.get("venue_time_ms") if session.decisions else None
    span = (
        f"{(cascade.start_ms - origin) / 1000:g} s to {(cascade.end_ms - origin) / 1000:g} s"
        if isinstance(origin, int)
        else f"{cascade.start_ms} to {cascade.end_ms} ms"
    )
    print(f"cascade: {span} into the session: {cascade.detail}")
    print(f"limiter in the cascade: {_counts(inside)}")
    print(f"limiter outside it:     {_counts(outside)}")
    return path


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{r} {n}" for r, n in counts.most_common()) or "nothing"


def main(argv: list[str]) -> int:
    """Run the session; return the exit code."""
    return job_main("make paper", "paper", PaperJob, argv, run, __doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
