"""The Hydra entry of the published reproductions: configs, a bad key, an as2008 run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from markdown_tables import assert_tables_render

from agents.config import ReproduceJob, to_job

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["as2008", "cj2015"])
def test_each_experiment_config_composes(name: str) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(config_name="reproduce", overrides=[f"experiment={name}"])
    job = to_job(cfg.experiment, ReproduceJob)
    assert job.name == name
    if name == "cj2015":
        assert job.config_file is not None and (ROOT / job.config_file).is_file()


def test_a_misspelt_experiment_key_is_named() -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(config_name="reproduce", overrides=["+experiment.gamma=[1.0]"])
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['gamma'\]"):
        to_job(cfg.experiment, ReproduceJob)


def test_as2008_run_writes_the_table_beside_the_published_numbers(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        str(ROOT / "scripts" / "reproduce.py"),
        "experiment=as2008",
        "experiment.gammas=[0.1]",
        f"hydra.run.dir={tmp_path}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    table = (tmp_path / "results.md").read_text()
    assert "| 0.1 | inventory | 1.49 (1.49) |" in table  # spread is path-independent
    assert table.count("\n") == 4  # header, rule, two strategies
    assert_tables_render(table, "as2008 results.md")
