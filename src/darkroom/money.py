"""Amounts of money: prices, balances, credit limits and costs, exact to the micro-unit.

Every amount is a `Decimal` with at most `SCALE` decimal places and a magnitude below
`LIMIT`, from the catalog or the command line to the database and back (spec: "Money"): binary
floats would let a balance drift by a fraction at each charge, until a key that should reach 0
exactly is refused. 15 significant digits also means that the JSON number of an amount
(`json_number`) reads back as the same decimal in any client.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

SCALE = 6
PRECISION = 15
QUANTUM = Decimal(1).scaleb(-SCALE)
LIMIT = Decimal(10) ** (PRECISION - SCALE)
ZERO = Decimal(0)


class AmountError(ValueError):
    """Not an amount: not a number, too precise, or too large."""


def parse_amount(value: object) -> Decimal:
    """The amount written as `value` (a TOML or JSON number, or the text of a command line);
    AmountError says why it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise AmountError(f"{value!r} is not a number")
    try:
        # str() of a float is its shortest form: the 0.5 a TOML file says, not 0.5000000001.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise AmountError(f"{value!r} is not a number") from None
    if not amount.is_finite():
        raise AmountError(f"{value!r} is not a finite number")
    if abs(amount) >= LIMIT:
        raise AmountError(f"{value!r} is too large (amounts are below {LIMIT:,})")
    if amount != amount.quantize(QUANTUM, rounding=ROUND_DOWN):
        raise AmountError(f"{value!r} has more than {SCALE} decimal places")
    return amount + ZERO  # -0 is 0


def json_number(amount: Decimal) -> int | float:
    """The amount as a JSON number: 10 for 10.000000, 1234.5 for 1234.500000. A float holds
    every amount of 15 significant digits exactly enough that its shortest form is the
    amount's own digits."""
    if amount == amount.to_integral_value():
        return int(amount)
    return float(amount)
