"""`GET /v1/media/deliveries?task_id=` (extension): the webhook delivery of one of the key's
tasks, with every attempt at it: when it was made, the status code answered (null: none), how
long it took and what went wrong. Another key's task is "not found", as for /result."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from darkroom.api.deps import CurrentApp
from darkroom.api.media import AuthorizedKey
from darkroom.api.requests import parse_task_id
from darkroom.errors import TaskNotFound
from darkroom.webhooks.outbox import PENDING, Attempt, Delivery, Outbox

router = APIRouter(prefix="/v1/media", tags=["media"])


class AttemptEntry(BaseModel):
    attempt: int = Field(description="1 for the first try")
    at: float = Field(description="When it was made, in unix seconds")
    status_code: int | None = Field(description="What the receiver answered; null: no answer")
    latency_ms: int
    error: str | None = Field(description="Why it did not count as delivered; null: it did")


class DeliveryEntry(BaseModel):
    id: str = Field(description="The webhook-id header of its every attempt")
    url: str
    status: Literal["pending", "delivered", "failed"] = Field(
        description="pending: to be tried (again); failed: given up"
    )
    next_attempt_at: float | None = Field(description="While pending: when it is tried next")
    attempts: list[AttemptEntry]


class DeliveryList(BaseModel):
    code: Literal[0] = 0
    task_id: str
    data: list[DeliveryEntry] = Field(description="Empty when the task has no callback URL")


@router.get("/deliveries")
async def deliveries(request: Request, app: CurrentApp, key: AuthorizedKey) -> DeliveryList:
    """Extension: the task's webhook delivery and its attempts, oldest first."""
    task_id = parse_task_id(dict(request.query_params), {})
    if await app.store.get(task_id, key_id=key.id) is None:
        raise TaskNotFound(f"No task {task_id} was found for this API key.")
    delivery, attempts = await Outbox(app.db).of_task(task_id)
    data = [] if delivery is None else [_entry(delivery, attempts)]
    return DeliveryList(task_id=task_id, data=data)


def _entry(delivery: Delivery, attempts: list[Attempt]) -> DeliveryEntry:
    return DeliveryEntry(
        id=delivery.message_id,
        url=delivery.url,
        status=delivery.status,  # type: ignore[arg-type]
        next_attempt_at=delivery.next_attempt_at if delivery.status == PENDING else None,
        attempts=[
            AttemptEntry(
                attempt=a.attempt,
                at=a.attempted_at,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
            )
            for a in attempts
        ],
    )
