"""Every markdown table mmgym writes renders: the table writer, the generated pages and every
committed page, parsed by markdown-it-py (CommonMark with GFM tables)."""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_tables import PARSER, assert_tables_render, table_problems

from agents.evaluation import EvaluationConfig, evaluate, markdown_report, summarise
from mmgym.markdown import escape_cell, table
from mmgym.reference import PAGES

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = sorted(
    str(p.relative_to(ROOT))
    for p in [
        ROOT / "README.md",
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "experiments").rglob("*.md"),
    ]
)


def _header_cells(text: str) -> list[str]:
    tokens = PARSER.parse(text)
    out, in_head = [], False
    for t in tokens:
        in_head = (in_head or t.type == "thead_open") and t.type != "thead_close"
        if in_head and t.type == "inline":
            out.append(t.content)
    return out


def test_a_pipe_in_a_cell_is_escaped_and_renders_inside_its_cell() -> None:
    text = table(["policy", "mean |q| (units)"], [["a|b", 1.5]], align="lr")
    assert text.splitlines()[1] == "|---|---:|"
    assert not table_problems(text)
    assert _header_cells(text) == ["policy", "mean |q| (units)"]  # one cell holds the pipes
    html = PARSER.render(text)
    assert "<th>policy</th>" in html and "mean |q| (units)</th>" in html
    assert "<td>a|b</td>" in html
    assert escape_cell("two\nlines") == "two lines"


def test_rows_must_have_the_headers_number_of_cells() -> None:
    with pytest.raises(ValueError, match=r"row 1 has 3 cells, the header has 2"):
        table(["a", "b"], [[1, 2], [1, 2, 3]])
    with pytest.raises(ValueError, match=r"align gives 3 columns, the header has 2"):
        table(["a", "b"], [[1, 2]], align="lrr")
    with pytest.raises(ValueError, match=r"unknown alignment"):
        table(["a", "b"], [[1, 2]], align="x")


def test_the_check_catches_a_header_split_by_a_pipe() -> None:
    broken = "| policy | mean |q| |\n|---|---:|\n| a | 1 |\n"
    assert table_problems(broken)  # header 4 cells, delimiter 2: not a table


def test_the_evaluation_report_renders() -> None:
    config = EvaluationConfig(
        policies=["linear_skew"], scenarios=["calm"], seeds=[0], num_envs=2, episode_seconds=10.0
    )
    episodes, _ = evaluate(config)
    report = markdown_report(summarise(episodes), config)
    assert_tables_render(report, "report.md")
    assert any("|q|" in cell for cell in _header_cells(report))


@pytest.mark.parametrize("name", sorted(PAGES))
def test_generated_reference_page_renders(name: str) -> None:
    assert_tables_render(PAGES[name](), name)


@pytest.mark.parametrize("page", COMMITTED)
def test_every_committed_page_renders(page: str) -> None:
    assert_tables_render((ROOT / page).read_text(), page)
