"""Stylized facts of every scenario: simulate, measure, plot, and write docs/stylized_facts.md.

Simulates every scenario of :mod:`mmgym.scenarios` with a passive agent (no orders), plus a
control run (calm, one fixed regime, no informed flow) for the Hawkes fit, and the price-only
runs of the cross-asset section (:mod:`docs.tools.stylized_facts.cross_asset`), measures the
facts of :mod:`mmgym.analysis.stylized_facts` and :mod:`mmgym.analysis.cross_asset` and
writes a markdown page with a table per topic and PNG figures (runs:
:mod:`docs.tools.stylized_facts.runs`; figures: :mod:`docs.tools.stylized_facts.plots`; page:
:mod:`docs.tools.stylized_facts.report`).

    python scripts/stylized_facts.py            # 32 envs x 4 h per scenario (6-7 min on 2 cores)
    python scripts/stylized_facts.py --quick    # 8 envs x 1 h (a smoke run)
    python scripts/stylized_facts.py --envs 64 --hours 8 --out /tmp/facts.md --img /tmp/img
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # docs/tools: not installed

from tqdm import tqdm

from docs.tools.stylized_facts import funding, vol_tails
from docs.tools.stylized_facts.cross_asset import cross_runs, measure, plot_cross_asset, section
from docs.tools.stylized_facts.impact import impact_section
from docs.tools.stylized_facts.liquidity import cascade_section
from docs.tools.stylized_facts.plots import plot_all
from docs.tools.stylized_facts.report import write_page
from docs.tools.stylized_facts.runs import FACTS_RUNS
from docs.tools.stylized_facts.tables import tables_markdown
from mmgym.analysis.cross_asset import PriceRecord
from mmgym.analysis.market_record import MarketRecord
from mmgym.analysis.stylized_facts import summary_table

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    """Command-line options, with the run size filled in from ``--quick``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 envs x 1 h (a smoke run)")
    parser.add_argument("--envs", type=int, default=None, help="envs per scenario (default 32)")
    parser.add_argument("--hours", type=float, default=None, help="hours per env (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "stylized_facts.md")
    parser.add_argument("--img", type=Path, default=ROOT / "docs" / "img" / "stylized_facts")
    args = parser.parse_args()
    if args.envs is None:
        args.envs = 8 if args.quick else 32
    if args.hours is None:
        args.hours = 1.0 if args.quick else 4.0
    return args


def main() -> None:
    """Simulate, measure, plot and write the page."""
    args = parse_args()
    args.img.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = "python scripts/stylized_facts.py" + (
        " " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    )

    start = time.perf_counter()
    runs = [*FACTS_RUNS, *cross_runs()]
    total = sum(run.ticks(args.hours) for run in runs) + vol_tails.ticks(args.hours)
    records: dict[str, MarketRecord] = {}
    prices: dict[str, PriceRecord] = {}
    with tqdm(total=total, unit="tick", unit_scale=True, desc="simulate", mininterval=1.0) as bar:
        for run in FACTS_RUNS:
            bar.set_postfix_str(run.label)
            records[run.label] = run.record(args.envs, args.hours, args.seed, bar.update)
        for cross in cross_runs():
            bar.set_postfix_str(cross.label)
            prices[cross.label] = cross.prices(args.envs, args.hours, args.seed, bar.update)
        bar.set_postfix_str("volatility and tails")
        vol_prices = vol_tails.simulate(args.envs, args.hours, args.seed, bar.update)
    funding_records = funding.simulate(args.envs, args.hours, args.seed)
    sim_time = time.perf_counter() - start
    table = summary_table(tqdm(records.values(), desc="measure"))
    cross_facts = measure(prices)
    vol_facts = vol_tails.measure(vol_prices)
    impact = impact_section(args.envs, min(args.hours, 1.0), args.seed)
    measure_time = time.perf_counter() - start - sim_time

    cascades = plot_all(records, table, args.img)
    plot_cross_asset(prices, args.img / "cross_asset.png")
    vol_tails.plot(vol_prices, vol_facts, args.img / "vol_tails.png")
    runtime = time.perf_counter() - start
    write_page(
        args.out,
        table,
        cascades,
        records,
        envs=args.envs,
        hours=args.hours,
        seed=args.seed,
        command=command,
        runtime=runtime,
        img=args.img,
        cross_asset=section(
            cross_facts, os.path.relpath(args.img, args.out.parent), args.envs, args.hours
        )
        + funding.section(funding_records)
        + vol_tails.section(
            vol_facts, table, os.path.relpath(args.img, args.out.parent), args.envs, args.hours
        ),
        cascade_targets=cascade_section(records),
        impact=impact,
    )
    print(tables_markdown(table))
    print(
        f"simulate {sim_time:.0f} s, measure {measure_time:.0f} s, total {runtime:.0f} s; "
        f"wrote {args.out} and {args.img}/"
    )


if __name__ == "__main__":
    main()
