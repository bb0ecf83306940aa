"""`GET /v1/balance`: the calling key's balance, in the hosted service's shape (spec: "Balance").

The one API answer that is not HTTP 200: a missing or wrong key gets the hosted service's own
401 with its OpenAI-style error body on this path, because that is what its clients test for.
`orgId` names the key without revealing it: an HMAC of the key's id under the server's secret,
so every node that shares the secret answers the same id, and the id tells nothing about the
key or about how many keys there are. `?useWalletBalance` is accepted and ignored, whatever its
value.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from darkroom.api.auth import presented_key
from darkroom.api.deps import CurrentApp
from darkroom.keys import ApiKey
from darkroom.money import json_number

router = APIRouter(prefix="/v1", tags=["balance"])

UNAUTHORIZED = {
    "error": {
        "message": "Unauthorized",
        "type": "unauthorized_request_error",
        "param": None,
        "code": None,
    }
}


_UNAUTHORIZED_DOC = {"application/json": {"example": UNAUTHORIZED}}


class BalanceObject(BaseModel):
    orgId: str = Field(description="Identifies the key without revealing it")  # noqa: N815
    object: str = "balance"
    balance: int | float = Field(description="May be below 0, down to -creditLimit")
    creditLimit: int | float  # noqa: N815
    unlimited: bool | None = Field(None, description="Only for an unmetered key: true")


@router.get(
    "/balance",
    response_model=BalanceObject,
    response_model_exclude_none=True,
    responses={401: {"description": "A missing or wrong key", "content": _UNAUTHORIZED_DOC}},
)
async def balance(request: Request, app: CurrentApp) -> Response:
    """The calling key's balance and credit limit; `unlimited: true` for an unmetered key."""
    raw = presented_key(request)
    key = await app.keys.authenticate(raw, fresh=True) if raw else None
    if key is None:
        return JSONResponse(UNAUTHORIZED, status_code=401)
    answer = _balance_of(key, org_id(key, app.settings.signing_secret))
    return JSONResponse(answer.model_dump(exclude_none=True))


def org_id(key: ApiKey, secret: bytes) -> str:
    """24 hex characters, the length of the hosted service's ids, stable for the key."""
    digest = hmac.new(secret, f"darkroom-org:{key.id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:24]


def _balance_of(key: ApiKey, org: str) -> BalanceObject:
    if key.balance is None:
        return BalanceObject(orgId=org, balance=0, creditLimit=0, unlimited=True)
    return BalanceObject(
        orgId=org, balance=json_number(key.balance), creditLimit=json_number(key.credit_limit)
    )
