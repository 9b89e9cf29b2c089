"""Hyperliquid's wire conventions: string numbers, price and size rounding, error texts.

Numbers travel as decimal strings. A perp price is valid when it has at most 5 significant
figures (an integer price always is) and at most ``6 - szDecimals`` decimals; a size has at most
``szDecimals`` decimals. The paper exchange adds one rule of its own: a price must lie on the
market's tick grid. Texts of the errors follow Hyperliquid's (its "Error responses" page), with
the ``asset=<a>`` suffix the venue appends to order errors; the paper exchange's own refusals
start with ``Paper exchange:`` and name the rule.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_PERP_DECIMALS = 6
"""Decimals of a perp price plus the coin's szDecimals (Hyperliquid's MAX_DECIMALS for perps)."""
SIGNIFICANT_FIGURES = 5

# --- Hyperliquid's error texts ------------------------------------------------------------------

TICK_ERROR = "Price must be divisible by tick size."
SIZE_ERROR = "Order has invalid size."
REDUCE_ONLY_ERROR = "Reduce only order would increase position."
MISSING_ORDER_ERROR = "Order was never placed, already canceled, or filled."
IOC_ERROR = "Order could not immediately match against any resting orders."


def with_asset(text: str, asset: int) -> str:
    """An order error as the venue writes it: ``<text> asset=<asset>``."""
    return f"{text} asset={asset}"


def post_only_error(best_bid: str, best_ask: str, asset: int) -> str:
    """Hyperliquid's rejection of an Alo order that would cross (status ``badAloPxRejected``)."""
    return with_asset(
        f"Post only order would have immediately matched, bbo was {best_bid}@{best_ask}.", asset
    )


def unknown_signer_error(address: str) -> str:
    """The venue's answer to an action signed by a key that is not the account's."""
    return f"User or API Wallet {address.lower()} does not exist."


# --- numbers ------------------------------------------------------------------------------------


def decimal_of(text: object) -> Decimal | None:
    """The decimal a wire number holds, or None when it is not a finite decimal string."""
    if not isinstance(text, str):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def decimals(value: Decimal) -> int:
    """Digits after the decimal point of ``value`` once trailing zeros are dropped."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def significant_figures(value: Decimal) -> int:
    """Significant digits of ``value`` (trailing zeros dropped)."""
    return len(value.normalize().as_tuple().digits)


def valid_price(value: Decimal, sz_decimals: int) -> bool:
    """Hyperliquid's rule for a perp price: positive, at most 5 significant figures unless an
    integer, at most ``6 - szDecimals`` decimals."""
    if value <= 0:
        return False
    places = decimals(value)
    if places > MAX_PERP_DECIMALS - sz_decimals:
        return False
    return places == 0 or significant_figures(value) <= SIGNIFICANT_FIGURES


def valid_size(value: Decimal, sz_decimals: int) -> bool:
    """Hyperliquid's rule for a size: positive, at most ``szDecimals`` decimals."""
    return value > 0 and decimals(value) <= sz_decimals


def number(x: float) -> str:
    """A float as a wire number: the shortest decimal that reads back as the same float, never
    in exponent notation (``0.1``, ``100``, ``0.00001``)."""
    text = f"{Decimal(repr(float(x))):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def price(x: float, sz_decimals: int) -> str:
    """A price rounded as the venue shows prices: 5 significant figures and at most
    ``6 - szDecimals`` decimals (integers whole)."""
    if x == 0 or x != x:
        return "0"
    rounded = float(f"{x:.{SIGNIFICANT_FIGURES}g}")
    if abs(x) >= 10**SIGNIFICANT_FIGURES:
        rounded = float(round(x))
    return number(round(rounded, MAX_PERP_DECIMALS - sz_decimals))


def tick_decimals(tick_size: float) -> int:
    """Decimals of the market's tick size (0.01 -> 2)."""
    return decimals(Decimal(repr(float(tick_size))))


def on_tick_grid(value: Decimal, tick_size: float) -> bool:
    """Whether ``value`` is a whole number of ticks."""
    return value % Decimal(repr(float(tick_size))) == 0


def is_cloid(text: object) -> bool:
    """A client order id: ``0x`` and 32 hexadecimal digits (16 bytes)."""
    if not isinstance(text, str) or len(text) != 34 or not text.startswith("0x"):
        return False
    try:
        int(text[2:], 16)
    except ValueError:
        return False
    return True
