"""Take docs/img/tensorboard_comparison.png: TensorBoard's time series of a demo run's ``eval/*``
charts, the learned policy and its baselines overlaid, in headless Chromium.

    python docs/tools/tensorboard_screenshot.py runs/demo/<time>
    python docs/tools/tensorboard_screenshot.py runs/demo/<time> --tags '^eval/' --runs ''

Needs Chromium (Debian: ``apt-get install -y chromium``; not needed by the tests). Starts
TensorBoard from this Python environment on a free port of 127.0.0.1, waits until it serves the
run's ``eval/pnl``, takes the screenshot and stops the server.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "img" / "tensorboard_comparison.png"
TAGS = "^eval/(pnl|max_drawdown|inventory_abs_mean|fill_rate)$"
"""Four of the training's evaluation charts, each with the learned policy and its baselines."""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_tag(base: str, tag: str, timeout: float = 60.0) -> None:
    """Poll TensorBoard until some run serves ``tag``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/data/plugin/scalars/tags", timeout=5) as r:
                if any(tag in tags for tags in json.load(r).values()):
                    return
        except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"TensorBoard at {base} served no {tag!r} within {timeout:.0f} s")


def screenshot(logdir: Path, out: Path, tags: str, runs: str, size: str, budget_ms: int) -> Path:
    """Serve ``logdir`` with TensorBoard and save its time series filtered by ``tags`` and
    ``runs`` (regular expressions)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("error: chromium not found (Debian: apt-get install -y chromium)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_tag(base, "eval/pnl")
        query = urllib.parse.urlencode(
            {"tagFilter": tags, "runFilter": runs, "smoothing": "0", "forceSVG": "true"}
        )  # SVG charts: WebGL ones may not be drawn yet when a headless browser shoots
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--window-size={size}", f"--virtual-time-budget={budget_ms}",
                 f"--screenshot={out}", f"{base}/?{query}#timeseries"],
                check=True, timeout=120, capture_output=True,
            )  # fmt: skip
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return out


def main() -> None:
    """Parse the arguments, take the screenshot, print its path and size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path, help="a demo run (runs/demo/<time>) or any logdir")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--tags", default=TAGS, help="TensorBoard's tag filter (a regex)")
    parser.add_argument("--runs", default="^train/", help="TensorBoard's run filter (a regex)")
    parser.add_argument("--size", default="1400,1000", help="window width,height in pixels")
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time to render")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = screenshot(args.logdir, args.out, args.tags, args.runs, args.size, args.budget_ms)
    print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
