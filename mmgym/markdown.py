"""Markdown tables that render: the one writer of every table on a generated page (evaluation
and comparison reports, experiment results, reference docs, benchmark tables).

Cells are escaped (a ``|`` in a cell would split it: ``mean |q|`` becomes ``mean \\|q\\|``, and
a line break would end the row) and every row must have the header's number of cells, so a page
cannot hold a table that GitHub and other GFM renderers show as plain text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

ALIGNMENTS = {"": "---", "l": "---", "r": "---:", "c": ":---:"}
"""Column alignment codes and their delimiter cells (``""``: the renderer's default)."""


def escape_cell(value: object) -> str:
    """``value`` as the text of one table cell: pipes escaped, line breaks as spaces."""
    text = str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return text.replace("|", "\\|").strip()


def table(
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    align: str | Sequence[str] = "",
) -> str:
    """A GFM table (no trailing newline).

    ``align`` gives each column's alignment: ``"l"``, ``"r"``, ``"c"`` or ``""`` (default), as
    one code per column (``"lrr"`` or ``["l", "r", "r"]``) or one code for all (``"r"``).
    """
    width = len(header)
    if width == 0:
        raise ValueError("a markdown table needs at least one column")
    codes = list(align) if len(align) > 1 else [align[0] if align else ""] * width
    if len(codes) != width:
        raise ValueError(f"align gives {len(codes)} columns, the header has {width}")
    unknown = sorted({c for c in codes if c not in ALIGNMENTS})
    if unknown:
        raise ValueError(f"unknown alignment(s) {unknown}; valid: {sorted(ALIGNMENTS)}")
    lines = [_row(header), "|" + "|".join(ALIGNMENTS[c] for c in codes) + "|"]
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"row {i} has {len(row)} cells, the header has {width}: {[str(c) for c in row]}"
            )
        lines.append(_row(row))
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(escape_cell(c) for c in cells) + " |"
