"""Money over real servers, on SQLite and on PostgreSQL: prices charged at create by
compare-and-set, code 5 below the credit limit, the cost given back exactly once when a task
fails or is canceled, `GET /v1/balance` in the hosted service's shape (and its 401), and the
operator's `keys` commands (spec: "Balance", "Money")."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import backend_named
from tests.support.backends import BACKENDS
from tests.support.catalogs import SLOW_STEPS, write_catalog
from tests.support.media import client_for
from tests.support.servers import Darkroom, wait_for_status
from tests.support.spec import UNAUTHORIZED_BODY


def money_catalog(root: Path) -> Path:
    """A model at 1, one at a quarter, a free one, a slow one at 2 to cancel, and one at a
    half whose every task fails (its model folder is corrupt)."""
    broken = root / "broken-model"
    broken.mkdir(parents=True)
    (broken / "model_index.json").write_text("this is not a model index")
    catalog = write_catalog(
        root / "money.toml",
        {
            "whole": {"engine": "tiny", "native_size": 256, "max_batch": 4, "price": 1},
            "quarter": {"engine": "tiny", "native_size": 256, "price": 0.25},
            "free": {"engine": "tiny", "native_size": 256},
            "slow": {"engine": "tiny", "native_size": 512, "steps": SLOW_STEPS, "price": 2},
            "broken": {"engine": "tiny", "folder": str(broken), "price": 0.5},
        },
    )
    with catalog.open("a") as file:
        file.write('[safety]\nblocked_terms = ["forbiddenword"]\n')
    return catalog


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Darkroom]:
    root = tmp_path_factory.mktemp(f"money-{request.param}")
    backend = backend_named(request, request.param)
    with backend.running(root, money_catalog(root), max_attempts=1) as darkroom:
        yield darkroom


def balance_of(server: Darkroom, key: str, **params: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/v1/balance", params=params, headers={"Authorization": key})


def create(client: httpx.Client, model: str, prompt: str = "a lighthouse") -> dict:
    return client.post("/v1/media/create", json={"model": model, "prompt": prompt}).json()


# -- charging --------------------------------------------------------------------------------


def test_100_concurrent_creates_on_a_balance_of_10_make_exactly_10_tasks(server):
    key = server.create_key("--balance", "10")

    async def create_all() -> list[dict]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": key}, limits=limits, timeout=60
        ) as http:
            body = {"model": "whole", "prompt": "a lighthouse"}
            answers = await asyncio.gather(
                *(http.post("/v1/media/create", json=body) for _ in range(100))
            )
        return [answer.json() for answer in answers]

    answers = asyncio.run(create_all())
    codes = [answer["code"] for answer in answers]
    assert codes.count(0) == 10 and codes.count(5) == 90
    assert {a["cost"] for a in answers if a["code"] == 0} == {1}
    assert balance_of(server, key).json()["balance"] == 0


def test_a_fractional_price_is_charged_exactly_down_to_0(server):
    with client_for(server, server.create_key("--balance", "1")) as client:
        tasks = [create(client, "quarter") for _ in range(4)]
        assert [task["cost"] for task in tasks] == [0.25] * 4
        refused = create(client, "quarter")
        assert refused["code"] == 5 and "balance cannot pay" in refused["message"]
        assert create(client, "free")["cost"] == 0  # a free model still runs at 0
    assert balance_of(server, client.headers["Authorization"]).json()["balance"] == 0


def test_a_credit_limit_lets_the_balance_go_that_far_below_zero(server):
    key = server.create_key("--balance", "0", "--credit-limit", "0.5")
    with client_for(server, key) as client:
        assert [create(client, "quarter")["code"] for _ in range(3)] == [0, 0, 5]
    answer = balance_of(server, key).json()
    assert (answer["balance"], answer["creditLimit"]) == (-0.5, 0.5)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "whole"},  # no prompt: code 3
        {"model": "whole", "prompt": "x", "ar": "5:4"},  # no such ratio: code 3
        {"model": "whole", "prompt": "a forbiddenword"},  # code 1002 where a policy has it
        {"model": "nope", "prompt": "x"},  # code 3
    ],
)
def test_a_refused_create_charges_nothing(server, body):
    key = server.create_key("--balance", "1")
    with client_for(server, key) as client:
        assert client.post("/v1/media/create", json=body).json()["code"] != 0
    assert balance_of(server, key).json()["balance"] == 1


def test_generate_charges_like_create_and_answers_the_cost(server):
    key = server.create_key("--balance", "0.25")
    with client_for(server, key) as client:
        body = {"model": "quarter", "prompt": "a lighthouse"}
        answer = client.post("/v1/media/generate", json=body, timeout=150).json()
        assert (answer["code"], answer["status"], answer["cost"]) == (0, "done", 0.25)
        assert client.post("/v1/media/generate", json=body).json()["code"] == 5
    assert balance_of(server, key).json()["balance"] == 0


def test_the_models_listing_shows_each_models_price(server):
    answer = httpx.get(
        f"{server.base_url}/v1/media/models", headers={"Authorization": server.create_key()}
    ).json()
    prices = {model["id"]: model["price"] for model in answer["data"]}
    assert prices == {"broken": 0.5, "free": 0, "quarter": 0.25, "slow": 2, "whole": 1}


# -- refunds ---------------------------------------------------------------------------------


def test_a_failed_task_gives_its_cost_back_exactly_once(server):
    key = server.create_key("--balance", "0.5")
    with client_for(server, key) as client:
        task = create(client, "broken")
        assert task["cost"] == 0.5  # charged (it may fail before the balance can be read)
        failed = wait_for_status(client, task["id"], ("failed",))
        assert failed["cost"] == 0  # given back
        client.post("/v1/media/cancel", json={"task_id": task["id"]})  # finished: no refund
        assert wait_for_status(client, task["id"], ("failed",))["cost"] == 0
    assert balance_of(server, key).json()["balance"] == 0.5  # not 1: given back once


def test_a_canceled_task_gives_its_cost_back_exactly_once(server):
    key = server.create_key("--balance", "2")
    with client_for(server, key) as client:
        task = create(client, "slow")
        assert task["cost"] == 2
        for _ in range(3):
            client.post("/v1/media/cancel", json={"task_id": task["id"]})
        canceled = wait_for_status(client, task["id"], ("failed",))
        assert (canceled["message"], canceled["cost"]) == ("canceled", 0)
    assert balance_of(server, key).json()["balance"] == 2


# -- GET /v1/balance -------------------------------------------------------------------------


def test_the_balance_answers_in_the_hosted_shape_with_raw_key_and_bearer(server):
    key = server.create_key("--balance", "1234.5")
    answer = balance_of(server, key)
    assert answer.status_code == 200
    body = answer.json()
    assert list(body) == ["orgId", "object", "balance", "creditLimit"]
    assert re.fullmatch(r"[0-9a-f]{24}", body["orgId"])
    assert (body["object"], body["balance"], body["creditLimit"]) == ("balance", 1234.5, 0)
    assert '"balance":1234.5' in answer.text.replace(" ", "")  # a number, not a string
    assert balance_of(server, f"Bearer {key}").json() == body
    for flag in ("true", "false", "[1,2]", ""):  # accepted and ignored, whatever its type
        assert balance_of(server, key, useWalletBalance=flag).json() == body


def test_the_org_id_is_stable_for_a_key_and_tells_keys_apart(server):
    first, second = server.create_key("--balance", "1"), server.create_key("--balance", "1")
    org = balance_of(server, first).json()["orgId"]
    assert balance_of(server, first).json()["orgId"] == org
    assert balance_of(server, second).json()["orgId"] != org
    assert org not in first


def test_an_unmetered_key_has_an_unlimited_balance(server):
    body = balance_of(server, server.create_key()).json()
    assert {k: v for k, v in body.items() if k != "orgId"} == {
        "object": "balance",
        "balance": 0,
        "creditLimit": 0,
        "unlimited": True,
    }


@pytest.mark.parametrize("header", [None, "", "Bearer", "dk_not-a-key", "Bearer dk_wrong"])
def test_a_missing_or_wrong_key_is_http_401_with_the_hosted_body(server, header):
    headers = {} if header is None else {"Authorization": header}
    answer = httpx.get(f"{server.base_url}/v1/balance", headers=headers)
    assert answer.status_code == 401 and answer.json() == UNAUTHORIZED_BODY


def test_a_revoked_key_is_http_401(server):
    key = server.create_key("--balance", "1")
    server.cli("keys", "revoke", key)
    answer = balance_of(server, key)
    assert answer.status_code == 401 and answer.json() == UNAUTHORIZED_BODY


# -- the operator's commands -----------------------------------------------------------------


def listed(server: Darkroom, key: str) -> dict:
    prefix = key[:10]
    lines = server.cli("keys", "list").stdout.splitlines()
    return next(k for k in map(json.loads, lines) if k["prefix"] == prefix)


def test_topup_adds_to_the_balance_and_list_shows_it_as_numbers(server):
    key = server.create_key("--balance", "1.5", "--credit-limit", "2")
    ident = str(listed(server, key)["id"])
    topped = server.cli("keys", "topup", ident, "0.25")
    assert json.loads(topped.stdout) == {"balance": 1.75}
    entry = listed(server, key)
    assert (entry["balance"], entry["credit_limit"]) == (1.75, 2)
    assert balance_of(server, key).json()["balance"] == 1.75
    assert listed(server, server.create_key())["balance"] is None  # unmetered


@pytest.mark.parametrize("amount", ["-5", "0", "ten", "1e400", "0.0000001", "nan"])
def test_topup_refuses_an_amount_that_is_not_positive_money(server, amount):
    key = server.create_key("--balance", "1")
    ident = str(listed(server, key)["id"])
    refused = server.cli("keys", "topup", ident, amount, check=False)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and len(refused.stderr.splitlines()) == 1
    assert balance_of(server, key).json()["balance"] == 1


def test_topup_refuses_an_unmetered_or_unknown_key(server):
    ident = str(listed(server, server.create_key())["id"])
    unmetered = server.cli("keys", "topup", ident, "5", check=False)
    assert unmetered.returncode == 1 and "unmetered" in unmetered.stderr
    unknown = server.cli("keys", "topup", "999999", "5", check=False)
    assert unknown.returncode == 1 and "no live key" in unknown.stderr


@pytest.mark.parametrize(
    "args",
    [["--balance", "lots"], ["--balance", "-1"], ["--credit-limit", "1"], ["--balance", "1",
     "--credits", "1"]],
)  # fmt: skip
def test_keys_create_refuses_amounts_it_cannot_keep(server, args):
    refused = server.cli("keys", "create", *args, check=False)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert refused.stdout == ""


def test_the_old_credits_option_still_makes_a_balance(server):
    key = server.create_key("--credits", "3")
    assert balance_of(server, key).json()["balance"] == 3
