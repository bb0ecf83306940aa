"""The console's endpoints under /v1/admin/ over the real server, on SQLite and on PostgreSQL,
each on its own: only an operator's key (`darkroom keys create --admin`) may call them (any
other key gets code 2, the spec's answer to a key that may not); keys are listed with their
balances and what they spent per model, created, topped up, limited and revoked, and what that
changes is what the media API then answers; the queue, the workers at work and the latest
failures are what the task table holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import backend_named
from tests.support.backends import BACKENDS
from tests.support.catalogs import SLOW_STEPS, write_catalog
from tests.support.servers import Darkroom, wait_for_status

ADMIN_ROUTES = [
    ("GET", "/v1/admin/keys", None),
    ("POST", "/v1/admin/keys", {"name": "x"}),
    ("POST", "/v1/admin/keys/1/revoke", None),
    ("POST", "/v1/admin/keys/1/topup", {"amount": 1}),
    ("POST", "/v1/admin/keys/1/limits", {"credit_limit": 1}),
    ("GET", "/v1/admin/queue", None),
    ("GET", "/v1/admin/workers", None),
    ("GET", "/v1/admin/failures", None),
]


def admin_catalog(root: Path) -> Path:
    """A model at 1, one at a quarter, a slow one to catch at work, and one at a half whose
    every task fails (its model folder is corrupt)."""
    broken = root / "broken-model"
    broken.mkdir(parents=True)
    (broken / "model_index.json").write_text("this is not a model index")
    return write_catalog(
        root / "admin.toml",
        {
            "whole": {"engine": "tiny", "native_size": 256, "price": 1},
            "quarter": {"engine": "tiny", "native_size": 256, "price": 0.25},
            "slow": {"engine": "tiny", "native_size": 512, "steps": SLOW_STEPS},
            "broken": {"engine": "tiny", "folder": str(broken), "price": 0.5},
        },
    )


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Darkroom]:
    root = tmp_path_factory.mktemp(f"admin-{request.param}")
    backend = backend_named(request, request.param)
    with backend.running(root, admin_catalog(root), max_attempts=1) as darkroom:
        yield darkroom


@pytest.fixture(scope="module")
def admin(server: Darkroom) -> Iterator[httpx.Client]:
    key = server.create_key("--name", "operator", "--admin")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": key}) as client:
        yield client


@pytest.fixture(scope="module")
def plain(server: Darkroom) -> str:
    return server.create_key("--name", "plain", "--balance", "5")


def as_key(server: Darkroom, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": key}, timeout=30)


def ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["code"] == 0, answer
    return answer


def code_of(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return response.json()["code"]


def new_key(console: httpx.Client, **fields: object) -> tuple[str, dict]:
    answer = ok(console.post("/v1/admin/keys", json={"name": "made", **fields}))
    return answer["key"], answer["data"]


def listed(admin: httpx.Client, key_id: int) -> dict:
    [entry] = [k for k in ok(admin.get("/v1/admin/keys"))["data"] if k["id"] == key_id]
    return entry


def create(client: httpx.Client, model: str) -> dict:
    return ok(client.post("/v1/media/create", json={"model": model, "prompt": "a lighthouse"}))


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_a_plain_key_gets_code_2_from_every_admin_endpoint(server, plain, method, path, body):
    with as_key(server, plain) as client:
        answer = client.request(method, path, json=body).json()
    assert answer["code"] == 2
    assert answer["message"].startswith("Invalid token")
    assert "--admin" in answer["message"]
    # Nothing was done: the plain key's balance is as it was.
    with as_key(server, plain) as client:
        assert client.get("/v1/balance").json()["balance"] == 5


def test_no_key_and_a_wrong_key_get_code_2(server):
    assert code_of(httpx.get(f"{server.base_url}/v1/admin/keys")) == 2
    wrong = {"Authorization": "dk_not-a-key-at-all-0000000000000000000"}
    assert code_of(httpx.get(f"{server.base_url}/v1/admin/keys", headers=wrong)) == 2


def test_a_key_created_in_the_console_works_and_is_listed_without_its_secret(server, admin):
    raw, entry = new_key(admin, balance="2.5", credit_limit=1, models=["whole"])
    assert entry["balance"] == 2.5 and entry["credit_limit"] == 1 and entry["admin"] is False
    assert raw.startswith(entry["prefix"])
    with as_key(server, raw) as client:
        balance = client.get("/v1/balance").json()
        assert (balance["balance"], balance["creditLimit"]) == (2.5, 1)
        assert code_of(client.post("/v1/media/create", json={"model": "quarter", "prompt": "x"}))
    listing = admin.get("/v1/admin/keys").text
    assert raw not in listing and entry["prefix"] in listing


def test_an_operator_key_made_in_the_console_may_use_the_console(server, admin):
    raw, entry = new_key(admin, admin=True)
    assert entry["admin"] is True and entry["balance"] is None
    with as_key(server, raw) as client:
        ok(client.get("/v1/admin/queue"))


def test_create_refuses_bad_fields_with_code_3(admin):
    bad = [
        {"name": ""},
        {"balance": "lots"},
        {"balance": -1},
        {"balance": "0.0000001"},
        {"credit_limit": 2},  # an unmetered key has no balance to go below zero
        {"models": ["no-such-model"]},
    ]
    for body in bad:
        assert code_of(admin.post("/v1/admin/keys", json=body)) == 3, body
    malformed = admin.post("/v1/admin/keys", content=b"{", headers={"content-type": "json"})
    assert code_of(malformed) == 3


def test_a_top_up_adds_to_the_balance_the_key_then_has(server, admin):
    raw, entry = new_key(admin, balance=1)
    assert ok(admin.post(f"/v1/admin/keys/{entry['id']}/topup", json={"amount": "0.75"})) == {
        "code": 0,
        "balance": 1.75,
    }
    with as_key(server, raw) as client:
        assert client.get("/v1/balance").json()["balance"] == 1.75
    assert listed(admin, entry["id"])["balance"] == 1.75


def test_a_top_up_is_refused_in_words(admin):
    _, metered = new_key(admin, balance=1)
    _, unmetered = new_key(admin)
    for ident, amount in [(metered["id"], 0), (metered["id"], -3), (unmetered["id"], 5)]:
        answer = admin.post(f"/v1/admin/keys/{ident}/topup", json={"amount": amount}).json()
        assert answer["code"] == 3, (ident, amount, answer)
    assert listed(admin, metered["id"])["balance"] == 1
    assert code_of(admin.post("/v1/admin/keys/99999/topup", json={"amount": 1})) == 4


def test_limits_change_what_the_media_api_lets_the_key_do(server, admin):
    raw, entry = new_key(admin, balance=0)
    ident = entry["id"]
    with as_key(server, raw) as client:
        assert code_of(client.post("/v1/media/create", json={"model": "whole", "prompt": "x"})) == 5
        limited = ok(admin.post(f"/v1/admin/keys/{ident}/limits", json={"credit_limit": 1}))
        assert limited["data"]["credit_limit"] == 1
        create(client, "whole")  # 0 - 1 is within the credit limit now
        assert client.get("/v1/balance").json() | {"orgId": ""} == {
            "orgId": "",
            "object": "balance",
            "balance": -1,
            "creditLimit": 1,
        }
        ok(admin.post(f"/v1/admin/keys/{ident}/limits", json={"models": ["quarter"]}))
        assert code_of(client.post("/v1/media/create", json={"model": "whole", "prompt": "x"})) == 7
        models = ok(client.get("/v1/media/models"))["data"]
        assert [m["id"] for m in models] == ["quarter"]
        ok(admin.post(f"/v1/admin/keys/{ident}/limits", json={"models": None}))
        assert len(ok(client.get("/v1/media/models"))["data"]) == 4
    # Only the limits sent change: the credit limit is still 1.
    assert listed(admin, ident)["credit_limit"] == 1


def test_tenancy_limits_and_share_are_set_and_then_applied_at_once(server, admin):
    raw, entry = new_key(admin)
    ident = entry["id"]
    sent = {"max_waiting": 1, "rate": 50, "weight": 2.5, "priority": 1, "daily_spend": "3.5"}
    changed = ok(admin.post(f"/v1/admin/keys/{ident}/limits", json=sent))["data"]
    assert {name: changed[name] for name in sent} == {**sent, "daily_spend": 3.5}
    with as_key(server, raw) as client:
        first = create(client, "slow")  # the worker may take it: then the next one waits
        creates = [
            client.post("/v1/media/create", json={"model": "slow", "prompt": "x"}) for _ in range(2)
        ]
        assert 6 in [code_of(answer) for answer in creates]  # over max_waiting, at once
        for task_id in [first["id"], *(a.json().get("id") for a in creates)]:
            if task_id:  # the slow ones would hold the worker for the other tests
                client.post("/v1/media/cancel", json={"task_id": task_id})
        # Null: back to the server's default (none), and only that limit changes.
        back = ok(admin.post(f"/v1/admin/keys/{ident}/limits", json={"max_waiting": None}))
        assert back["data"]["max_waiting"] is None and back["data"]["weight"] == 2.5


def test_limits_are_refused_in_words(admin):
    _, unmetered = new_key(admin)
    path = f"/v1/admin/keys/{unmetered['id']}/limits"
    assert code_of(admin.post(path, json={"credit_limit": 1})) == 3
    assert code_of(admin.post(path, json={"models": ["no-such-model"]})) == 3
    assert code_of(admin.post(path, json={"credit_limit": "many"})) == 3
    assert code_of(admin.post("/v1/admin/keys/99999/limits", json={"models": None})) == 4


def test_a_revoked_key_is_refused_by_the_api_and_listed_as_revoked(server, admin):
    raw, entry = new_key(admin, balance=3)
    with as_key(server, raw) as client:
        create(client, "quarter")
        ok(admin.post(f"/v1/admin/keys/{entry['id']}/revoke"))
        answer = client.post("/v1/media/create", json={"model": "quarter", "prompt": "x"}).json()
        assert answer["code"] == 2
        assert client.get("/v1/balance").status_code == 401
    assert listed(admin, entry["id"])["revoked_at"] is not None
    assert code_of(admin.post(f"/v1/admin/keys/{entry['id']}/revoke")) == 4
    assert code_of(admin.post(f"/v1/admin/keys/{entry['id']}/topup", json={"amount": 1})) == 4


def test_spend_per_model_counts_tasks_and_leaves_refunds_out(server, admin):
    raw, entry = new_key(admin, balance=10)
    with as_key(server, raw) as client:
        made = [create(client, "whole"), create(client, "whole"), create(client, "quarter")]
        made.append(create(client, "broken"))
        for task in made:
            wait_for_status(client, task["id"])
    spend = listed(admin, entry["id"])
    assert spend["spend"] == [
        {"model": "broken", "tasks": 1, "cost": 0},  # it failed: its 0.5 came back
        {"model": "quarter", "tasks": 1, "cost": 0.25},
        {"model": "whole", "tasks": 2, "cost": 2},
    ]
    assert spend["spent"] == 2.25 and spend["balance"] == 7.75


def test_failures_list_the_latest_failed_tasks_with_their_messages(server, admin):
    raw, _ = new_key(admin)
    with as_key(server, raw) as client:
        first = wait_for_status(client, create(client, "broken")["id"])
        second = wait_for_status(client, create(client, "broken")["id"])
        canceled = create(client, "slow")
        ok(client.post("/v1/media/cancel", json={"task_id": canceled["id"]}))
        wait_for_status(client, canceled["id"])
    failures = ok(admin.get("/v1/admin/failures", params={"limit": 100}))["data"]
    ids = [failure["id"] for failure in failures]
    assert ids.index(second["id"]) < ids.index(first["id"])  # newest first
    assert canceled["id"] not in ids  # its owner canceled it: not a failure
    [failure] = [f for f in failures if f["id"] == first["id"]]
    assert failure["model"] == "broken" and failure["message"] == first["message"]
    assert len(ok(admin.get("/v1/admin/failures", params={"limit": 1}))["data"]) == 1
    assert code_of(admin.get("/v1/admin/failures", params={"limit": 0})) == 3


def test_the_queue_and_the_workers_show_a_task_at_work(server, admin):
    raw, _ = new_key(admin)
    with as_key(server, raw) as client:
        task = create(client, "slow")
        wait_for_status(client, task["id"], ("processing",))
        workers = ok(admin.get("/v1/admin/workers"))
        queue = ok(admin.get("/v1/admin/queue"))["data"]
        ok(client.post("/v1/media/cancel", json={"task_id": task["id"]}))
        wait_for_status(client, task["id"])
    [at_work] = [w for w in workers["data"] if w["model"] == "slow"]
    assert at_work["tasks"] == 1 and at_work["owner"]
    assert sorted(workers["models"]) == ["broken", "quarter", "slow", "whole"]
    assert {"model": "slow", "status": "processing", "tasks": 1} in queue
    after = ok(admin.get("/v1/admin/queue"))["data"]
    assert not [row for row in after if row["model"] == "slow" and row["status"] == "processing"]
    assert [w for w in ok(admin.get("/v1/admin/workers"))["data"] if w["model"] == "slow"] == []
