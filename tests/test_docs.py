"""The generated reference pages match the code, and every parameter is documented."""

from __future__ import annotations

import dataclasses

import pytest

from mmgym.core.params import MarketParams
from mmgym.reference import DOCS, PAGES, field_docs


@pytest.mark.parametrize("name", sorted(PAGES))
def test_generated_page_is_current(name: str) -> None:
    assert (DOCS / name).read_text() == PAGES[name](), (
        f"docs/{name} is out of date: run `python -m mmgym.reference`"
    )


def test_every_market_parameter_has_a_docstring() -> None:
    docs = field_docs()
    missing = [f.name for f in dataclasses.fields(MarketParams) if not docs.get(f.name)]
    assert not missing, f"parameters without a docstring: {missing}"
