"""Amounts in memory: what counts as money (money.py), a model's price as the catalog reads
it, and the JSON numbers that the API and the client exchange."""

from __future__ import annotations

from decimal import Decimal

import pytest

from darkroom.client.models import Task
from darkroom.engines.catalog import Catalog
from darkroom.errors import CatalogError
from darkroom.money import AmountError, json_number, parse_amount


@pytest.mark.parametrize(
    ("value", "amount"),
    [(0.5, "0.5"), ("1234.5", "1234.5"), (10, "10"), (" 0.000001 ", "0.000001"), ("-0", "0")],
)
def test_an_amount_is_read_exactly(value, amount):
    assert parse_amount(value) == Decimal(amount)


@pytest.mark.parametrize(
    "value", ["ten", "", "nan", "inf", "1e400", "0.0000001", "1000000000", True, None, [1]]
)
def test_what_is_not_an_amount_is_refused_in_words(value):
    with pytest.raises(AmountError, match=r"\S"):
        parse_amount(value)


@pytest.mark.parametrize(
    ("amount", "number"),
    [("10.000000", 10), ("1234.500000", 1234.5), ("-3.25", -3.25), ("0.1", 0.1), ("0", 0)],
)
def test_an_amount_is_a_json_number_with_its_own_digits(amount, number):
    rendered = json_number(Decimal(amount))
    assert rendered == number and type(rendered) is type(number)


def test_a_model_is_free_unless_its_entry_gives_a_price():
    catalog = Catalog.from_dict(
        {"free": {"engine": "tiny"}, "priced": {"engine": "tiny", "price": 0.5}}
    )
    assert catalog["free"].price == 0
    assert catalog["priced"].price == Decimal("0.5")
    assert "price" not in catalog["priced"].options  # not passed on to the engine


@pytest.mark.parametrize("price", [-1, "cheap", 0.0000001, True, [1]])
def test_a_price_that_is_not_money_stops_the_catalog_naming_the_model(price):
    with pytest.raises(CatalogError, match='model "priced": price'):
        Catalog.from_dict({"priced": {"engine": "tiny", "price": price}})


def test_the_client_reads_a_tasks_cost():
    payload = {"id": "6880f043e6060500018821de", "status": "idle", "cost": 0.5}
    assert Task.from_payload(payload).cost == 0.5
    assert Task.from_payload({**payload, "cost": None}).cost is None
