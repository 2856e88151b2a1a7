"""Money is exact: Wiro's 12-decimal strings in, whole picodollars stored, cents shown."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.money import dollars_option, from_pico, parse_usd, to_pico, usd


@pytest.mark.parametrize(
    ("sent", "amount"),
    [
        ("0.003510000000", Decimal("0.00351")),
        ("0", Decimal(0)),
        (0.003, Decimal("0.003")),  # a float goes through its shortest repr, not binary
        (2, Decimal(2)),
        ("", None),
        (None, None),
        ("free", None),
        ("-1", None),
        ("NaN", None),
        (True, None),
    ],
)
def test_wiros_amounts_parse_exactly_or_not_at_all(sent: object, amount: Decimal | None) -> None:
    assert parse_usd(sent) == amount


def test_sums_of_picodollars_are_exact_where_floats_drift() -> None:
    costs = ["0.100000000000"] * 3
    assert sum(float(c) for c in costs) != 0.3
    assert from_pico(sum(to_pico(Decimal(c)) for c in costs)) == Decimal("0.3")
    assert to_pico(Decimal("0.003510000000")) == 3_510_000_000


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0", "$0.00"),
        ("0.48", "$0.48"),
        ("20", "$20.00"),
        ("0.012", "$0.01"),
        ("0.015", "$0.02"),
        ("0.0035", "$0.0035"),
        ("0.00351", "$0.0035"),
        ("0.00000001", "under $0.0001"),
        ("1234.5", "$1,234.50"),
    ],
)
def test_shown_to_the_cent_or_four_decimals_under_a_cent(amount: str, shown: str) -> None:
    assert usd(Decimal(amount)) == shown


def test_a_budget_typed_in_dollars_is_kept_to_the_cent() -> None:
    assert dollars_option(20) == Decimal("20.00")
    assert dollars_option(0.1) == Decimal("0.10")
    assert dollars_option(0) == Decimal("0.00")
    assert dollars_option(-3) is None
    assert dollars_option(10_000_000) is None
