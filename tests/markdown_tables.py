"""A check that every table-looking block of a markdown page renders as a GFM table whose rows
all have the header's number of cells (markdown-it-py, the CommonMark parser with GFM tables)."""

from __future__ import annotations

from markdown_it import MarkdownIt

PARSER = MarkdownIt("commonmark").enable("table")


def table_blocks(text: str) -> list[tuple[int, int]]:
    """Line ranges [start, end) of runs of two or more lines starting with ``|``, outside code
    blocks (one such line alone is a paragraph's line, e.g. a wrapped ``|inventory|``)."""
    tokens = PARSER.parse(text)
    in_code = set()
    for token in tokens:
        if token.type in ("fence", "code_block") and token.map:
            in_code.update(range(*token.map))
    blocks = []
    start = None
    lines = text.splitlines()
    for i, line in enumerate([*lines, ""]):
        looks = line.lstrip().startswith("|") and i not in in_code
        if looks and start is None:
            start = i
        elif not looks and start is not None:
            if i - start >= 2:
                blocks.append((start, i))
            start = None
    return blocks


def split_cells(line: str) -> list[str]:
    """The cells of a table row: split at pipes not escaped by a backslash, outer pipes off."""
    cells, cell, escaped = [], "", False
    for ch in line.strip():
        if ch == "|" and not escaped:
            cells.append(cell)
            cell = ""
        else:
            cell += ch
        escaped = ch == "\\" and not escaped
    cells.append(cell)
    if cells and not cells[0].strip():
        cells = cells[1:]
    if cells and not cells[-1].strip():
        cells = cells[:-1]
    return cells


def table_problems(text: str) -> list[str]:
    """What is wrong with the page's tables (empty: every table renders, cell counts agree)."""
    tokens = PARSER.parse(text)
    tables = {tuple(t.map) for t in tokens if t.type == "table_open" and t.map}
    lines = text.splitlines()
    problems = []
    for start, end in table_blocks(text):
        where = f"lines {start + 1}-{end}: {lines[start][:80]!r}"
        if (start, end) not in tables:
            problems.append(f"{where}: does not render as one table")
            continue
        width = len(split_cells(lines[start]))
        for i in range(start + 1, end):
            n = len(split_cells(lines[i]))
            if n != width:
                problems.append(f"{where}: line {i + 1} has {n} cells, the header {width}")
    return problems


def assert_tables_render(text: str, page: str = "page") -> None:
    """Fail naming every table of ``text`` that does not render or has a wrong cell count."""
    problems = table_problems(text)
    assert not problems, f"{page}:\n" + "\n".join(problems)
