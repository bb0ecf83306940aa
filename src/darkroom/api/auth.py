"""The API key of a request: `Authorization: <key>` as the hosted service's examples send it,
or `Authorization: Bearer <key>`."""

from __future__ import annotations

from fastapi import Request

from darkroom.api.deps import CurrentApp
from darkroom.errors import AuthenticationError, Overloaded
from darkroom.keys import ApiKey
from darkroom.keys.rate import RateLimited


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
    limits = key.limits.over(app.settings.key_limits)
    try:
        await app.rate.take(key.id, limits)
    except RateLimited as exc:
        raise Overloaded(
            f"This key may make {limits.rate:g} requests a second; "
            f"try again in {exc.retry_after:.1f} s.",
            retry_after=exc.retry_after,
        ) from exc
    return key
