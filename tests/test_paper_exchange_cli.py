"""``mmgym-paper-exchange`` as a process: it prints the URL it serves (port=0 picks a free
port), answers, and stops cleanly on SIGTERM and SIGINT; bad settings exit 2 naming them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "paper_exchange.py"
USER = "0x" + "12" * 20
START_TIMEOUT = 300.0  # a cold numba compile of the market before the URL is printed
"""Seconds to start (Hydra composition, the market's first compile on a cold cache)."""
STOP_TIMEOUT = 20.0


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The process's first line of stdout, or an AssertionError after ``timeout`` s."""
    lines: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines and lines[0], f"no URL printed within {timeout} s"
    return lines[0]


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_serves_on_a_free_port_and_stops_on_a_signal(stop_with: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), f"user={USER}", "port=0", "env=calm", "seed=4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = _first_line(process, START_TIMEOUT)
        match = re.search(r"serving (http://127\.0\.0\.1:(\d+))$", line.strip())
        assert match, line
        url, port = match.group(1), int(match.group(2))
        assert port > 0 and "calm (seed 4, lockstep)" in line
        meta = requests.post(f"{url}/info", json={"type": "meta"}, timeout=10).json()
        assert meta["universe"][0]["name"] == "BTC"
        advanced = requests.post(f"{url}/paper/advance", json={"steps": 3}, timeout=30).json()
        assert advanced["steps"] == 3
        process.send_signal(stop_with)
        out, err = process.communicate(timeout=STOP_TIMEOUT)
        assert process.returncode == 0, err[-2000:]
        assert "mmgym-paper-exchange: stopped" in out
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{url}/info", json={"type": "meta"}, timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT)


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("time_mode=sometimes", "time_mode"),
        ("user=0x1234", "user must be an address"),
        ("api_wallet=0x12", "api_wallet must be an address"),  # the setting is reachable
        ("+env.overrides.num_assets=9", "the market has 9 perps but coins names 8"),
    ],
)
def test_bad_settings_exit_2_naming_them(setting: str, named: str) -> None:
    args = [sys.executable, str(SCRIPT), "port=0", setting]
    if not setting.startswith("user="):
        args.insert(2, f"user={USER}")
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=START_TIMEOUT)
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    assert done.stderr.startswith("mmgym-paper-exchange: error:") and named in done.stderr
