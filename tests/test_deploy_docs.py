"""docs/deploy.md matches the code: every limit and reason, the API it lists, the config."""

from __future__ import annotations

from pathlib import Path

from agents.deploy.risk import RiskLimiter, TradingState
from agents.deploy.risk.reference import with_tables

PAGE = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"


def test_the_limits_and_reasons_tables_are_current() -> None:
    page = PAGE.read_text()
    assert with_tables(page) == page, (
        "docs/deploy.md is out of date: run `python -m agents.deploy.risk.reference --write "
        "docs/deploy.md`"
    )


def test_the_api_the_page_lists_exists() -> None:
    page = PAGE.read_text()
    for method in ("limit", "halt", "flatten_then_halt", "operator_reset", "open_accounts",
                   "drain_transitions"):  # fmt: skip
        assert f"`{method}(" in page
        assert callable(getattr(RiskLimiter, method))
    state = TradingState(num_accounts=1, num_assets=1)
    for name in ("mode", "flattening", "denials", "last_denials", "counts", "measure"):
        assert f"`{name}" in page and hasattr(state, name), name
    assert "risk=default" in page and "risk=none" in page
