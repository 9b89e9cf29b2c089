"""``mmgym-live`` (scripts/live.py) with a kill point, for the runner's crash test.

``MMGYM_TEST_KILL_AT=<kind>:<before|after>:<n>`` makes the process SIGKILL itself at the
``n``-th journal append of event kind ``<kind>``: ``before`` the row is written or right
``after`` it is committed. ``intent:after`` kills between an order's intent and its send,
``ack:before`` between the send and the journaled answer. Without it this is ``mmgym-live``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from agents.live.journal import Journal

ROOT = Path(__file__).resolve().parents[1]


def _arm(spec: str) -> None:
    kind, when, count = spec.split(":")
    if when not in ("before", "after"):
        raise SystemExit(f"MMGYM_TEST_KILL_AT: 'before' or 'after', got {when!r}")
    target = int(count)
    append = Journal.append
    seen = 0

    def killing_append(self: Journal, k: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        hit = str(getattr(k, "value", k)) == kind and (seen := seen + 1) == target
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = append(self, k, *args, **kwargs)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    Journal.append = killing_append  # type: ignore[method-assign]


if __name__ == "__main__":
    spec = os.environ.get("MMGYM_TEST_KILL_AT")
    if spec:
        _arm(spec)
    sys.path.insert(0, str(ROOT / "scripts"))
    import live  # scripts/live.py

    sys.exit(live.main(sys.argv[1:]))
