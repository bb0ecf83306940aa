"""The console's endpoints under /v1/admin/, for an operator's key (`darkroom keys create
--admin`): keys with their balances and spend per model, creating, revoking, topping up and
limiting keys, and the queue, the workers at work and the latest failures (overview.py).

They answer in the media API's envelope, HTTP 200 with `code`: a missing or unknown key is
code 2 as everywhere, and so is a plain key, with words that say an operator's key is needed;
bad input is code 3 with issues; a key that no live key matches is code 4. A new key's raw
value is in the answer of create only, as on the command line.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from darkroom.api.auth import require_key
from darkroom.api.deps import CurrentApp
from darkroom.api.issues import custom, invalid, unknown_value
from darkroom.app import App
from darkroom.errors import AuthenticationError, TaskNotFound
from darkroom.keys import ApiKey, TopUpRefused
from darkroom.keys import Limits as KeyLimits
from darkroom.keys.store import UNSET, Unset
from darkroom.money import ZERO, AmountError, json_number, parse_amount
from darkroom.web import overview


async def require_admin(key: Annotated[ApiKey, Depends(require_key)]) -> ApiKey:
    if not key.admin:
        raise AuthenticationError(
            "This key is not an operator's key; the console needs one made with "
            "`darkroom keys create --admin`."
        )
    return key


router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])

Amount = float | int | str


class NewKey(BaseModel):
    name: str = Field("default", min_length=1, max_length=200)
    models: list[str] | None = Field(None, description="Models it may use; null: all")
    balance: Amount | None = Field(None, description="Money it may spend; null: unmetered")
    credit_limit: Amount = Field(0, description="How far below zero its balance may go")
    admin: bool = False


class TopUp(BaseModel):
    amount: Amount


class Limits(BaseModel):
    models: list[str] | None = Field(None, description="Models it may use; null: all")
    credit_limit: Amount | None = None
    # The tenancy limits (keys/limits.py, docs/tenancy.md); null: the server's default.
    rate: float | None = Field(None, gt=0, description="Requests per second")
    max_waiting: int | None = Field(None, ge=0, description="Tasks waiting")
    max_running: int | None = Field(None, ge=1, description="Tasks running")
    daily_spend: Amount | None = Field(None, description="Spend per 24 hours")
    weight: float | None = Field(None, gt=0, description="Share of the workers")
    priority: int | None = Field(None, description="Higher is served first")

    def tenancy(self, current: KeyLimits) -> KeyLimits | Unset:
        """The key's limits with those sent replaced (null: back to the default)."""
        sent = self.model_fields_set & {"rate", "max_waiting", "max_running", "daily_spend"}
        if not sent:
            return UNSET
        values = {name: getattr(self, name) for name in sent}
        if values.get("daily_spend") is not None:
            values["daily_spend"] = _amount(values["daily_spend"], "daily_spend")
        return dataclasses.replace(current, **values)


@router.get("/keys")
async def list_keys(app: CurrentApp) -> dict[str, Any]:
    """Every key (revoked ones too), with its balance and what it spent on each model."""
    spend = await app.keys.spend_by_model()
    listed = [_key_entry(key, spend.get(key.id, {})) for key in await app.keys.list()]
    return {"code": 0, "data": listed}


@router.post("/keys")
async def create_key(app: CurrentApp, body: NewKey) -> dict[str, Any]:
    """A new key; `key` is its raw value, shown this once."""
    balance = None if body.balance is None else _amount(body.balance, "balance")
    limit = _amount(body.credit_limit, "credit_limit")
    if balance is None and limit:
        raise invalid([custom(["credit_limit"], "needs a balance: an unmetered key has none")])
    models = _known_models(app, body.models)
    raw, key = await app.keys.create(
        body.name, models=models, balance=balance, credit_limit=limit, admin=body.admin
    )
    return {"code": 0, "key": raw, "data": _key_entry(key)}


@router.post("/keys/{ident}/revoke")
async def revoke_key(app: CurrentApp, ident: str) -> dict[str, Any]:
    if not await app.keys.revoke(ident):
        raise TaskNotFound(f"No live key matches {ident!r}.")
    return {"code": 0, "revoked": ident}


@router.post("/keys/{ident}/topup")
async def topup_key(app: CurrentApp, ident: str, body: TopUp) -> dict[str, Any]:
    amount = _amount(body.amount, "amount")
    await _live_key(app, ident)
    try:
        balance = await app.keys.topup(ident, amount)
    except TopUpRefused as exc:
        raise invalid([custom(["amount"], str(exc))]) from None
    return {"code": 0, "balance": json_number(balance)}


@router.post("/keys/{ident}/limits")
async def limit_key(app: CurrentApp, ident: str, body: Limits) -> dict[str, Any]:
    """Sets the fields sent: `models` (null: every model), `credit_limit` (metered keys),
    `rate`, `max_waiting`, `max_running`, `daily_spend` (null: the server's default), `weight`
    and `priority`."""
    key = await _live_key(app, ident)
    sent = body.model_fields_set
    models = _known_models(app, body.models) if "models" in sent else UNSET
    credit_limit = UNSET
    if "credit_limit" in sent:
        credit_limit = _amount(body.credit_limit or ZERO, "credit_limit")
        if credit_limit and key.balance is None:
            raise invalid([custom(["credit_limit"], "an unmetered key has no balance to limit")])
    changed = await app.keys.set_limits(
        ident,
        models=models,
        credit_limit=credit_limit,
        limits=body.tenancy(key.limits),
        weight=body.weight if body.weight is not None else UNSET,
        priority=body.priority if body.priority is not None else UNSET,
    )
    if changed is None:
        raise TaskNotFound(f"No live key matches {ident!r}.")
    return {"code": 0, "data": _key_entry(changed)}


@router.get("/queue")
async def queue(app: CurrentApp) -> dict[str, Any]:
    """Tasks by model and status (every status; `idle` is the queue proper)."""
    counts = await overview.queue_counts(app.db)
    return {"code": 0, "data": [vars(count) for count in counts]}


@router.get("/workers")
async def workers(app: CurrentApp) -> dict[str, Any]:
    """The workers holding leases now and their models, and the models the catalog serves
    (a worker without a lease is not known: no table records workers)."""
    loads = await overview.workers_at_work(app.db)
    return {"code": 0, "data": [vars(load) for load in loads], "models": app.catalog.ids()}


@router.get("/failures")
async def failures(
    app: CurrentApp, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    """The latest failed tasks with their messages, newest first."""
    found = await overview.recent_failures(app.db, limit)
    return {"code": 0, "data": [vars(failure) for failure in found]}


def _amount(value: Amount, field: str) -> Decimal:
    """A JSON number (or its text) as an exact amount of 0 or more, or code 3 on the field."""
    try:
        amount = parse_amount(value)
    except AmountError as exc:
        raise invalid([custom([field], str(exc))]) from None
    if amount < 0:
        raise invalid([custom([field], f"{value!r} must be 0 or more")])
    return amount


def _known_models(app: App, models: list[str] | None) -> list[str] | None:
    if models is None:
        return None
    ids = app.catalog.ids()
    unknown = [unknown_value(["models", i], ids, m) for i, m in enumerate(models) if m not in ids]
    if unknown:
        raise invalid(unknown)
    return models


async def _live_key(app: App, ident: str) -> ApiKey:
    key = await app.keys.find(ident)
    if key is None:
        raise TaskNotFound(f"No live key matches {ident!r}.")
    return key


def _key_entry(key: ApiKey, spend: dict[str, tuple[int, Decimal]] | None = None) -> dict[str, Any]:
    """The key as listed; with its spend (tasks and cost per model) when it was read."""
    entry = {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "admin": key.admin,
        "models": key.models,
        "balance": None if key.balance is None else json_number(key.balance),
        "credit_limit": json_number(key.credit_limit),
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "weight": key.weight,
        "priority": key.priority,
        **{name: value for name, value in vars(key.limits).items() if name != "daily_spend"},
        "daily_spend": None
        if key.limits.daily_spend is None
        else json_number(key.limits.daily_spend),
    }
    if spend is not None:
        entry["spend"] = [
            {"model": model, "tasks": count, "cost": json_number(cost)}
            for model, (count, cost) in sorted(spend.items())
        ]
        entry["spent"] = json_number(sum((cost for _, cost in spend.values()), ZERO))
    return entry
