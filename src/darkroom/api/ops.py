"""Operational routes: health and Prometheus metrics (behind DARKROOM_METRICS_TOKEN when set)."""

from __future__ import annotations

import hmac

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from darkroom import metrics
from darkroom.api.deps import CurrentApp

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    responses={503: {"description": "The database does not answer"}},
)
async def healthz(app: CurrentApp) -> JSONResponse:
    """200 when the database answers; 503 otherwise."""
    try:
        async with app.db.read() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        return JSONResponse({"status": "unavailable", "error": type(exc).__name__}, 503)
    return JSONResponse({"status": "ok"})


@router.get(
    "/metrics",
    response_class=PlainTextResponse,  # what the document names: Prometheus's text format
    responses={401: {"description": "DARKROOM_METRICS_TOKEN is set and was not sent"}},
)
async def prometheus_metrics(request: Request, app: CurrentApp) -> Response:
    token = app.settings.metrics_token
    if token is not None and not _bearer_matches(request, token):
        return JSONResponse(
            {"detail": "Metrics need Authorization: Bearer <DARKROOM_METRICS_TOKEN>."},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    counts = await app.store.count_by_status()
    metrics.QUEUE_DEPTH.set(counts["idle"])
    for status, count in counts.items():
        metrics.TASKS_BY_STATUS.labels(status).set(count)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _bearer_matches(request: Request, token: str) -> bool:
    scheme, _, presented = request.headers.get("authorization", "").strip().partition(" ")
    # Compared in constant time, as bytes, so the answer's timing tells nothing of the token.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )
