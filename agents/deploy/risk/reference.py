"""The limiter's reference tables for docs/deploy.md, generated from the code.

    python -m agents.deploy.risk.reference                      # print both tables
    python -m agents.deploy.risk.reference --write docs/deploy.md  # update them there

A test checks that docs/deploy.md holds them exactly (between its ``limits`` and ``reasons``
markers), so the page lists every limit with its default and every reason with its meaning.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from agents.deploy.risk.limits import RiskLimits
from agents.deploy.risk.reasons import DESCRIPTIONS, Reason
from mmgym.reference import attribute_docs


def limits_table() -> str:
    """Markdown table of every limit, its default and meaning."""
    docs = attribute_docs(RiskLimits)
    defaults = RiskLimits()
    rows = ["| limit | default | meaning |", "|---|---:|---|"]
    for f in dataclasses.fields(RiskLimits):
        value = getattr(defaults, f.name)
        shown = str(value).lower() if isinstance(value, bool) else f"{value:g}"
        rows.append(f"| `{f.name}` | {shown} | {docs[f.name]} |")
    return "\n".join(rows)


def reasons_table() -> str:
    """Markdown table of every reason: its code, name, kind and meaning."""
    rows = ["| code | reason | kind | meaning |", "|---:|---|---|---|"]
    for reason in Reason:
        if reason == Reason.NONE:
            continue
        rows.append(f"| {int(reason)} | `{reason.name}` | {reason.kind} | {DESCRIPTIONS[reason]} |")
    return "\n".join(rows)


TABLES = {"limits": limits_table, "reasons": reasons_table}


def with_tables(page: str) -> str:
    """``page`` with the text between each table's markers replaced by the current table."""
    for name, table in TABLES.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if begin not in page or end not in page:
            raise ValueError(f"the page has no {begin} ... {end} markers")
        head, rest = page.split(begin, 1)
        page = head + begin + "\n" + table() + "\n" + end + rest.split(end, 1)[1]
    return page


def main() -> None:
    """Print the tables, or write them into a page between its markers."""
    parser = argparse.ArgumentParser(description="The RiskLimiter's reference tables.")
    parser.add_argument("--write", type=Path, help="update the tables in this markdown page")
    args = parser.parse_args()
    if args.write:
        args.write.write_text(with_tables(args.write.read_text()))
        print(f"wrote {args.write}")
    else:
        print(limits_table(), reasons_table(), sep="\n\n")


if __name__ == "__main__":
    main()
