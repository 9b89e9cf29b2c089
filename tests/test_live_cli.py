"""``mmgym-live``'s settings: bad input exits 2 with one line naming it, the key never comes
from config, and docs/live.md documents every setting."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from agents.config import LiveJob
from agents.deploy.export import export_baseline
from mmgym.scenarios import make_params
from tests.venue_support import run_live_script

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "0x" + "ab" * 20


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["bundle=b", "account=0x12", "journal=j.db"], "account must be an address"),
        (["bundle=b", f"account={ACCOUNT}", "journal=j.db", "pacing=fast"], "pacing"),
        (["bundle=b", f"account={ACCOUNT}", "journal=j.db", "url=ws://x"], "url"),
        (["bundle=b", f"account={ACCOUNT}", "journal=j.db", "risk=none"], "risk=none"),
        (["bundle=b", f"account={ACCOUNT}", "journal=j.db", "+colour=red"], "colour"),
        (["bundle=/nonexistent", f"account={ACCOUNT}", "journal=j.db"], "/nonexistent"),
    ],
)
def test_bad_settings_exit_2_naming_them(args: list[str], named: str) -> None:
    done = run_live_script(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmgym-live: error:"), done.stderr
    assert named in lines[0]


def test_the_key_comes_from_the_environment_only(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    export_baseline("fixed_spread", bundle, make_params("calm"), force=True)
    done = run_live_script(f"bundle={bundle}", f"account={ACCOUNT}", f"journal={tmp_path / 'j.db'}")
    assert done.returncode == 2, done.stderr
    assert "MMGYM_HL_PRIVATE_KEY" in done.stderr and "never read from config" in done.stderr
    assert not (tmp_path / "j.db").exists(), "no journal before a key"


def test_docs_list_every_setting() -> None:
    text = (ROOT / "docs" / "live.md").read_text()
    section = text[text.index("## The live runner") :]
    rows = set(re.findall(r"^\| `([a-z_.<>]+)` \|", section, flags=re.MULTILINE))
    fields = {f.name for f in dataclasses.fields(LiveJob)} - {"risk"}
    assert fields <= rows, f"undocumented: {sorted(fields - rows)}"
    assert "risk.limits.<name>" in rows
