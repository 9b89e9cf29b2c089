"""Rewrite the league's pages from its committed ``summary.csv``, without simulating anything.

The league itself is ``python scripts/evaluate.py +experiment=baseline_league``, which writes
``summary.csv`` and ``report.md`` (by :func:`agents.evaluation.markdown_report`) into its run
directory; the committed copies live here. This renders ``report.md`` from ``summary.csv`` with
the same function, and the README's PnL table between its markers.

    python -m experiments.baseline_league.render
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from agents.config import EvaluateJob, to_job
from agents.evaluation import EvaluationConfig, markdown_report
from mmgym.markdown import table

HERE = Path(__file__).resolve().parent
CONF = HERE.parents[1] / "conf"
BEGIN, END = "<!-- pnl-table -->", "<!-- /pnl-table -->"
"""Markers of the generated table in ``README.md``."""


def evaluation_config() -> EvaluationConfig:
    """The league's evaluation settings (``conf/experiment/baseline_league.yaml``)."""
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="evaluate", overrides=["+experiment=baseline_league"])
    return to_job(cfg, EvaluateJob).evaluation


def pnl_table(summary: pd.DataFrame) -> str:
    """Episode PnL per scenario and policy: mean ± 95 % CI half-width / CVaR 5 %, the best
    mean of each scenario in bold."""
    policies = list(dict.fromkeys(summary["policy"]))
    lines = []
    for scenario, block in summary.groupby("scenario", sort=False):
        rows = block.set_index("policy")
        best = rows["pnl"].idxmax()
        cells = []
        for policy in policies:
            r = rows.loc[policy]
            half = (r["pnl_ci_high"] - r["pnl_ci_low"]) / 2.0
            cell = f"{r['pnl']:.2f} ± {half:.2f} / {r['cvar_5']:.1f}"
            cells.append(f"**{cell}**" if policy == best else cell)
        lines.append([scenario, *cells])
    return table(["scenario", *policies], lines)


def render(directory: Path = HERE) -> None:
    """``report.md`` and the README's table from ``summary.csv`` in ``directory``."""
    summary = pd.read_csv(directory / "summary.csv")
    (directory / "report.md").write_text(markdown_report(summary, evaluation_config()))
    readme = directory / "README.md"
    text = readme.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{pnl_table(summary)}\n{END}{tail}")


if __name__ == "__main__":
    render()
