"""The API key of a request: `Authorization: <key>` as the hosted service's examples send it,
or `Authorization: Bearer <key>`."""

from __future__ import annotations

from fastapi import Request

from darkroom.api.deps import CurrentApp
from darkroom.errors import AuthenticationError
from darkroom.keys import ApiKey


def presented_key(request: Request) -> str:
    header = request.headers.get("authorization", "").strip()
    scheme, _, rest = header.partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else header


async def require_key(request: Request, app: CurrentApp) -> ApiKey:
    raw = presented_key(request)
    if not raw:
        raise AuthenticationError(
            "No API key: send it in the Authorization header (Authorization: KEY)."
        )
    key = await app.keys.authenticate(raw)
    if key is None:
        raise AuthenticationError("This API key is unknown or was revoked; check the key.")
    return key
