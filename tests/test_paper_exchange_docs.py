"""docs/live.md matches the paper exchange: its tables render and it names every setting, info
type, subscription and order status the code has."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from markdown_tables import assert_tables_render

from agents.config import PaperExchangeJob
from mmgym.exchange.clock import TIME_MODES
from mmgym.exchange.orders import ORDER_STATUSES
from mmgym.exchange.server import INFO_TYPES, SUBSCRIPTIONS

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "live.md").read_text()


def test_the_tables_render() -> None:
    assert_tables_render(PAGE, "docs/live.md")


@pytest.mark.parametrize(
    "name",
    [
        *(f.name for f in dataclasses.fields(PaperExchangeJob)),
        *INFO_TYPES,
        *SUBSCRIPTIONS,
        *ORDER_STATUSES,
        *TIME_MODES,
    ],
)
def test_the_page_names_it(name: str) -> None:
    assert f"`{name}`" in PAGE, f"docs/live.md does not mention `{name}`"


def test_the_testnet_section_is_there() -> None:
    assert "## Pointing the adapter at Hyperliquid's testnet" in PAGE
