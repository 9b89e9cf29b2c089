"""The operator's controls against a runner trading the lockstep paper exchange in-process
(127.0.0.1 only): the token, each command's effect on the risk state and the exchange's open
orders, and the journal's order (command, then its transitions)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from agents.deploy.export import export_baseline
from agents.deploy.risk import TradingMode
from agents.live.journal import Kind
from agents.ops import control_cli
from agents.ops.control import OperatorCommand, TokenError, load_token
from mmgym.scenarios import make_params
from tests.ops_support import TOKEN, Session, wait_until
from tests.ops_support import command as _command
from tests.ops_support import get_status as _get
from tests.ops_support import post as _post
from tests.venue_support import AGENT_KEY, USER, loopback_only, run_live_script  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("loopback_only")

A, R, H = TradingMode.ACTIVE, TradingMode.REDUCING, TradingMode.HALTED


def _mode(s: Session) -> TradingMode:
    return s.runner.guarded.state.mode_of(0)


def _position(s: Session) -> float:
    return float(s.venue.assets[0]["inventory"])


def _orders(s: Session) -> list[tuple[bool, float]]:
    return [(o.is_buy, o.remaining) for o in s.venue.book.open_orders() if o.coin == "BTC"]


def _assert_reducing_only(s: Session) -> None:
    position = _position(s)
    for is_buy, size in _orders(s):
        assert (is_buy and position < 0.0) or (not is_buy and position > 0.0), (is_buy, position)
        assert size <= abs(position) + 1e-9


def test_refused_without_a_token_or_with_a_wrong_one_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-token-0123456789"

    async def main() -> None:
        async with Session(tmp_path) as s:
            assert s.url.startswith("http://127.0.0.1:")
            assert (await _get(s, None))[0] == 401
            assert (await _get(s, wrong))[0] == 401
            assert (await _post(s, "halt", None, operator="x", reason="y"))[0] == 401
            status, body = await _post(s, "halt", wrong, operator="x", reason="y")
            assert status == 401 and not body["ok"]
            assert _mode(s) == A
            status, body = await _get(s)
            assert status == 200 and body["status"]["mode"] == "ACTIVE"

    with caplog.at_level(logging.DEBUG):
        asyncio.run(main())
    assert "refused" in caplog.text and "a wrong token" in caplog.text
    assert TOKEN not in caplog.text and wrong not in caplog.text
    journal = (tmp_path / "journal.db").read_bytes()
    assert TOKEN.encode() not in journal and wrong.encode() not in journal
    assert b"ops_listening" in journal


def test_halt_cancels_every_order_at_the_next_decision_and_resume_needs_confirmation(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with Session(tmp_path) as s:
            await s.step_until(lambda: bool(_orders(s)), "quotes on the book", 50)
            status, body = await _command(s, "halt")
            assert status == 200 and body["ok"] and body["status"]["mode"] == "HALTED"
            assert _mode(s) == H
            assert not _orders(s), "the decision after the halt cancels every order"
            await s.step(3)
            assert not _orders(s) and _mode(s) == H
            status, body = await _command(s, "halt")
            assert status == 409  # already HALTED: nothing changed

            status, body = await _post(s, "resume", operator="bob", reason="looked at it")
            assert status == 409 and body["confirm_needed"] and _mode(s) == H
            tripped = body["tripped"]
            assert tripped["last_transition"]["reason"] == "OPERATOR_HALT"
            assert tripped["last_transition"]["operator"] == "alice"
            assert "time_s" in tripped["last_transition"]
            assert tripped["counts"]["OPERATOR_HALT"] == 1
            await s.step()
            assert _mode(s) == H and not _orders(s)

            status, body = await _command(s, "resume", confirm=True)
            assert status == 200 and body["status"]["mode"] == "ACTIVE"
            await s.step_until(lambda: bool(_orders(s)), "quotes again", 20)
            assert _mode(s) == A

    asyncio.run(main())


def test_every_command_is_journaled_with_operator_and_reason_before_its_transition(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with Session(tmp_path) as s:
            await s.step(2)
            await _command(s, "reduce", reason="news at 14:00")
            await s.step()
            await _command(s, "resume", confirm=True, reason="news passed")
            await _command(s, "halt", reason="drill")
            await _command(s, "resume", reason="no confirm")
            await _command(s, "resume", confirm=True, reason="drill over")
            await s.step()
        return None

    asyncio.run(main())
    from agents.live.journal import Journal

    with Journal.open(tmp_path / "journal.db") as journal:
        events = [e for e in journal.events() if e.kind in (Kind.OPERATOR_COMMAND,
                                                           Kind.RISK_TRANSITION)]  # fmt: skip
    commands = [e for e in events if e.kind is Kind.OPERATOR_COMMAND]
    assert [(e.payload["command"], e.payload["reason"]) for e in commands] == [
        ("reduce", "news at 14:00"),
        ("resume", "news passed"),
        ("halt", "drill"),
        ("resume", "no confirm"),
        ("resume", "drill over"),
    ]
    assert all(e.payload["operator"] == "alice" for e in commands)
    operated = [e for e in events if e.kind is Kind.RISK_TRANSITION and e.payload["operator"]]
    assert [(e.payload["reason"], e.payload["to"]) for e in operated] == [
        ("OPERATOR_REDUCE", "REDUCING"),
        ("OPERATOR_RESUME", "ACTIVE"),
        ("OPERATOR_HALT", "HALTED"),
        ("OPERATOR_RESET", "ACTIVE"),
    ]
    by_seq = {e.seq: e for e in commands}
    for transition in operated:
        command = by_seq[transition.payload["command_seq"]]
        assert command.seq < transition.seq
        assert command.payload["operator"] == transition.payload["operator"]


def test_reduce_admits_only_reducing_orders_until_resume(tmp_path: Path) -> None:
    async def main() -> None:
        async with Session(tmp_path) as s:
            await s.step_until(lambda: abs(_position(s)) > 1e-9, "a position", 300)
            status, body = await _command(s, "reduce")
            assert status == 200 and body["status"]["mode"] == "REDUCING"
            assert body["status"]["operator_reducing"]
            for _ in range(40):  # far past reducing_hold_seconds: still held
                _assert_reducing_only(s)
                assert _mode(s) == R
                await s.step()
            status, body = await _command(s, "reduce")
            assert status == 409
            status, body = await _command(s, "resume", confirm=True)
            assert status == 200 and not body["status"]["operator_reducing"]
            await s.step(2)
            assert _mode(s) == A

    asyncio.run(main())


def test_flatten_places_reducing_orders_then_stays_halted_flat(tmp_path: Path) -> None:
    async def main() -> None:
        async with Session(tmp_path) as s:
            await s.step_until(lambda: abs(_position(s)) > 1e-9, "a position", 300)
            status, body = await _command(s, "flatten")
            assert status == 200 and body["status"]["mode"] == "HALTED"
            assert body["status"]["flattening"]
            limiter = s.runner.guarded.limiter
            for _ in range(600):
                _assert_reducing_only(s)
                assert _mode(s) == H
                if not limiter.state.flattening[0]:
                    break
                await s.step()
            assert not limiter.state.flattening[0], "the flatten sequence should end"
            assert abs(_position(s)) < s.runner.market.min_quote_size
            await s.step(2)
            assert not _orders(s) and _mode(s) == H
            last = s.journal.last(Kind.RISK_TRANSITION)
            assert last is not None and last.payload["reason"] == "FLATTENED"

    asyncio.run(main())


def test_bad_commands_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with Session(tmp_path) as s:
            assert (await _post(s, "halt", reason="no operator"))[0] == 400
            assert (await _post(s, "halt", operator="alice"))[0] == 400
            assert (await _post(s, "halt", operator="a", reason="b", extra=1))[0] == 400
            assert (await _post(s, "halt", operator="a", reason="b", confirm="yes"))[0] == 400
            assert (await _post(s, "explode", operator="a", reason="b"))[0] == 400
            status, body = await _command(s, "resume", confirm=True)
            assert status == 409 and not body["ok"] and _mode(s) == A
            await s.step()
            assert _mode(s) == A
            assert s.journal.last(Kind.OPERATOR_COMMAND) is None or all(
                e.payload["command"] == "resume"
                for e in s.journal.events()
                if e.kind is Kind.OPERATOR_COMMAND
            )

    asyncio.run(main())


def test_the_cli_talks_to_the_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MMGYM_OPS_TOKEN", TOKEN)

    async def main() -> None:
        async with Session(tmp_path) as s:
            url = s.url
            code = await asyncio.to_thread(control_cli.main, ["status", "--url", url])
            assert code == 0 and '"mode": "ACTIVE"' in capsys.readouterr().out
            args = ["halt", "--operator", "carol", "--reason", "cli drill", "--url", url]
            task = asyncio.create_task(asyncio.to_thread(control_cli.main, args))
            await wait_until(lambda: s.ops is not None and s.ops.pending > 0, "queued")
            await s.step()
            assert await task == 0 and _mode(s) == H
            resume = ["resume", "--operator", "carol", "--reason", "check", "--url", url]
            assert await asyncio.to_thread(control_cli.main, resume) == 1
            assert "confirm" in capsys.readouterr().err and _mode(s) == H
            monkeypatch.setenv("MMGYM_OPS_TOKEN", "a-wrong-token-0123456789")
            assert await asyncio.to_thread(control_cli.main, ["status", "--url", url]) == 2
            assert capsys.readouterr().err.strip() == "mmgym-ops: the runner refused the token"

    asyncio.run(main())


def test_the_cli_refuses_bad_input_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MMGYM_OPS_TOKEN", raising=False)
    monkeypatch.delenv("MMGYM_OPS_TOKEN_FILE", raising=False)
    cases = [
        ["explode"],
        ["halt", "--reason", "r"],
        ["halt", "--operator", "o"],
        ["status", "--url", "http://10.0.0.1:8790"],
        ["status", "--url", "https://127.0.0.1:8790"],
        ["status"],  # no token
    ]
    for argv in cases:
        assert control_cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("mmgym-ops: "), (argv, err)


def test_the_token_from_the_environment_or_an_owner_only_file(tmp_path: Path) -> None:
    assert load_token({"MMGYM_OPS_TOKEN": TOKEN}) == TOKEN
    assert load_token({}, required=False) is None
    with pytest.raises(TokenError, match="no operator token"):
        load_token({})
    with pytest.raises(TokenError, match="at least 16"):
        load_token({"MMGYM_OPS_TOKEN": "short"})
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(TokenError, match="chmod 600") as err:
        load_token({"MMGYM_OPS_TOKEN_FILE": str(path)})
    assert TOKEN not in str(err.value)
    os.chmod(path, 0o600)
    assert load_token({"MMGYM_OPS_TOKEN_FILE": str(path)}) == TOKEN
    with pytest.raises(TokenError, match="cannot be read"):
        load_token({"MMGYM_OPS_TOKEN_FILE": str(tmp_path / "absent")})


def test_a_command_needs_an_operator_and_a_reason() -> None:
    command = OperatorCommand.parse("halt", {"operator": " alice ", "reason": "why"})
    assert command == OperatorCommand("halt", "alice", "why", False)
    for body in ({}, {"operator": "a"}, {"reason": "r"}, {"operator": "", "reason": "r"}, []):
        with pytest.raises(ValueError):
            OperatorCommand.parse("halt", body)
    with pytest.raises(ValueError, match="printable"):
        OperatorCommand.parse("halt", {"operator": "a\nb", "reason": "r"})


@pytest.mark.parametrize("setting", ["ops_port=70000", "metrics_port=-1"])
def test_mmgym_live_refuses_a_bad_port(setting: str) -> None:
    done = run_live_script("bundle=b", f"account={USER}", "journal=j.db", setting)
    assert done.returncode == 2, done.stderr
    assert setting.partition("=")[0] in done.stderr and done.stderr.count("\n") == 1


def test_mmgym_live_with_ops_port_needs_a_token_before_trading(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    export_baseline("fixed_spread", bundle, make_params("calm"), force=True)
    journal = tmp_path / "j.db"
    args = (f"bundle={bundle}", f"account={USER}", f"journal={journal}", "ops_port=0")
    done = run_live_script(*args, env={"MMGYM_HL_PRIVATE_KEY": AGENT_KEY})
    assert done.returncode == 2, done.stderr
    assert "MMGYM_OPS_TOKEN" in done.stderr and done.stderr.count("\n") == 1
    assert not journal.exists(), "no journal before a token"


def test_an_operators_reducing_outlives_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        async with Session(tmp_path) as s:
            await s.step(2)
            await _command(s, "reduce", reason="before the restart")
            await s.step()
        async with Session(tmp_path) as s:  # the same journal
            limiter = s.runner.guarded.limiter
            assert _mode(s) == R and limiter.operator_reducing[0]
            await s.step(20)
            assert _mode(s) == R
            status, body = await _command(s, "resume", confirm=True, reason="after it")
            assert status == 200 and body["status"]["mode"] == "ACTIVE"

    asyncio.run(main())
