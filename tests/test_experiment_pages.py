"""The committed experiment pages are what their code renders from the committed data, their
confidence intervals say "n/a" where they cannot be computed (tests/test_markdown.py checks that
every table of every page renders)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from markdown_tables import assert_tables_render

from agents.evaluation import markdown_report
from experiments.as2008 import run as as2008
from experiments.baseline_league import render as baseline_league
from experiments.cj2015 import run as cj2015
from experiments.learn_cj import run as learn_cj
from experiments.learn_perp import residual_noise
from experiments.learn_perp import run as learn_perp
from experiments.pages import interval

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
LEARN_PERP_PAGES = sorted(
    p.relative_to(EXPERIMENTS / "learn_perp").with_suffix("")
    for p in (EXPERIMENTS / "learn_perp").rglob("*.json")
    if p.stem != "exploration_noise"
)


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# --- the committed pages are their code's output -----------------------------------------------


def test_cj2015_page_renders_from_its_json() -> None:
    out = EXPERIMENTS / "cj2015"
    results = cj2015.Results.from_json(_json(out / "results.json"))
    assert cj2015.markdown(results) + "\n" == (out / "results.md").read_text()


def test_learn_cj_page_renders_from_its_json() -> None:
    out = EXPERIMENTS / "learn_cj"
    results = learn_cj.Results.from_json(_json(out / "results.json"))
    assert learn_cj.markdown(results) + "\n" == (out / "results.md").read_text()


@pytest.mark.parametrize("stem", LEARN_PERP_PAGES, ids=str)
def test_learn_perp_page_renders_from_its_json(stem: Path) -> None:
    path = EXPERIMENTS / "learn_perp" / stem
    data = _json(path.with_suffix(".json"))
    results = learn_perp.Results.from_json(data)
    assert learn_perp.markdown(results) + "\n" == path.with_suffix(".md").read_text()
    stored = json.loads(json.dumps(learn_perp.to_json(results)))
    assert stored == data  # the stored verdicts follow from the CIs


def test_baseline_league_pages_render_from_the_summary() -> None:
    out = EXPERIMENTS / "baseline_league"
    summary = pd.read_csv(out / "summary.csv")
    report = markdown_report(summary, baseline_league.evaluation_config())
    assert report == (out / "report.md").read_text()
    assert baseline_league.pnl_table(summary) in (out / "README.md").read_text()


def test_as2008_page_is_the_simulated_table() -> None:
    # The AS env is seeded: the same table, to the digit, as committed (about 3 s).
    table = as2008.markdown_table((0.1, 0.01, 1.0), seed=2008)
    assert table + "\n" == (EXPERIMENTS / "as2008" / "results.md").read_text()


# --- confidence intervals that cannot be computed -----------------------------------------------


def test_an_interval_without_bounds_is_not_available() -> None:
    assert interval(1.0, 2.5) == "[1, 2.5]"
    assert interval(-0.01234, 0.5, ".2f") == "[-0.01, 0.50]"
    assert interval(math.nan, math.nan) == "n/a"
    assert interval(0.1, math.inf) == "n/a"


def test_pages_write_n_a_for_a_missing_interval() -> None:
    nan = math.nan
    cj = _json(EXPERIMENTS / "cj2015" / "results.json")
    cj["league"][1]["diff_ci"] = [nan, nan]
    assert f"{cj['league'][1]['diff']:.3f} n/a |" in cj2015.markdown(cj2015.Results.from_json(cj))

    lc = _json(EXPERIMENTS / "learn_cj" / "results.json")
    lc["seeds"][0]["ci"] = [nan, nan]
    lc["seeds"][0]["cj_minus_ppo_ci"] = [nan, nan]
    row = learn_cj.markdown(learn_cj.Results.from_json(lc)).split("\n| 0 |")[1].split("\n")[0]
    assert row.count("n/a") == 4  # three fractions and the paired difference

    lp = _json(EXPERIMENTS / "learn_perp" / "results.json")
    lp["scenarios"][0]["league"][0].update(pnl_ci_low=nan, pnl_ci_high=nan)
    text = learn_perp.markdown(learn_perp.Results.from_json(lp))
    assert "| adaptive (best baseline) | 0.153 n/a |" in text


def test_exploration_noise_page_from_its_record() -> None:
    rows = [
        {"policy": p, "scenario": s, "episodes": 2, "pnl": 0.5, "pnl_ci_low": 0.25}
        | {"pnl_ci_high": 0.75, "cvar_5": -1.0, "fill_rate": 0.5}
        for p in ("std 0", "std 0.1")
        for s in ("calm", "volatile")
    ]
    record = {
        "scale": 0.5,
        "scenarios": ["calm", "volatile"],
        "seeds": [1000, 1001],
        "num_envs": 1,
        "episode_seconds": 600.0,
        "policies": ["std 0", "std 0.1"],
        "rows": rows,
    }
    one_episode = copy.deepcopy(record)
    one_episode["rows"][3].update(episodes=1, pnl_ci_low=math.nan, pnl_ci_high=math.nan)
    text = residual_noise.markdown(record)
    assert "2 episodes of 600 s per cell (seeds 1000-1001 x 1 envs)" in text
    assert "| std 0.1 | 0.5 [0.25, 0.75] / -1 / 0.50 | 0.5 [0.25, 0.75] / -1 / 0.50 |" in text
    assert "| std 0.1 | 0.5 [0.25, 0.75] / -1 / 0.50 | 0.5 n/a / -1 / 0.50 |" in (
        residual_noise.markdown(one_episode)
    )
    assert_tables_render(text, "exploration noise page")  # tests/test_markdown.py: all pages


def test_committed_exploration_noise_page_is_its_record() -> None:
    out = EXPERIMENTS / "learn_perp"
    record = _json(out / "exploration_noise.json")
    assert (out / "exploration_noise.md").read_text() == residual_noise.markdown(record) + "\n"
    assert all(r["episodes"] == 256 for r in record["rows"])
