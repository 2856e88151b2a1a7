"""Money: Wiro's amounts as exact decimals, stored as whole picodollars, shown to people.

Wiro sends costs as strings with 12 decimals ("0.003510000000"). They are parsed to `Decimal`
and summed as integers of 1e-12 dollars, so no float ever rounds a sum.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

#: One picodollar: the smallest amount Wiro writes (12 decimals).
PICO = Decimal("1e-12")
ZERO = Decimal(0)
CENT = Decimal("0.01")


def parse_usd(value: Any) -> Decimal | None:
    """A dollar amount from what Wiro sent (string, int or float); None when it is not one.

    Floats go through `repr`, so 0.003 stays 0.003 rather than its binary neighbour."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        amount = value
    else:
        text = repr(value) if isinstance(value, float) else str(value).strip()
        if not text:
            return None
        try:
            amount = Decimal(text)
        except InvalidOperation:
            return None
    if not amount.is_finite() or amount < 0:
        return None
    return amount


def to_pico(amount: Decimal) -> int:
    """Whole picodollars (rounded half up past the 12th decimal)."""
    return int((amount / PICO).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_pico(pico: int) -> Decimal:
    return (Decimal(pico) * PICO).normalize() if pico else ZERO


def usd(amount: Decimal) -> str:
    """To the cent ("$0.48", "$20.00"), or to four decimals under a cent ("$0.0035")."""
    if amount == 0:
        return "$0.00"
    if abs(amount) < CENT:
        shown = amount.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
        if shown == 0:
            return "under $0.0001"
        return f"${shown}"
    return f"${amount.quantize(CENT, rounding=ROUND_HALF_UP):,}"


def dollars_option(value: float | str) -> Decimal | None:
    """A budget typed by a person ("20", "2.5"): to the cent; None when not a sane amount."""
    amount = parse_usd(value)
    if amount is None or amount > Decimal(1_000_000):
        return None
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)
