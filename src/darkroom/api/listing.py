"""The listing extensions: the models a key may use, and the key's tasks page by page.

`GET /v1/media/models` tells a client (and the web page) what it may send before it sends it:
each model's ratios, default ratio, prompt cap, how many reference images it takes and its
price, the same rules create checks. `GET /v1/media/tasks` pages through the key's tasks newest
first with an opaque cursor, the position of a page's last task, so that a page costs its rows
and tasks created while a client pages never repeat or skip one (tests/e2e/test_listing.py).
Both answer in the media API's envelope (code 0, or the spec's codes in HTTP 200).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from darkroom.api.deps import CurrentApp
from darkroom.api.issues import custom, invalid, too_big, too_small, wrong_type
from darkroom.api.media import AuthorizedKey
from darkroom.api.presenters import TaskObject
from darkroom.engines import ModelSpec
from darkroom.engines.local.demo_status import read_status
from darkroom.ids import is_task_id
from darkroom.money import json_number
from darkroom.tasks import Task
from darkroom.tasks.store import TaskPosition

router = APIRouter(prefix="/v1/media", tags=["media"])

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class ModelEntry(BaseModel):
    """One model as the listing describes it: what create accepts for it, and what it costs."""

    id: str
    object: Literal["model"] = "model"
    kind: Literal["image", "video", "audio"] = Field(
        "image", description="What it makes: a WebP image, an MP4 video or MP3 tracks"
    )
    ratios: list[str] = Field(description="The `ar` values it accepts")
    default_ratio: str = Field(description="The ratio of a request that gives none")
    max_images: int = Field(description="Reference images a request may send (0: none)")
    max_prompt: int = Field(description="The most characters of a prompt, after trimming")
    price: int | float = Field(description="What one task charges the key")
    demo: str | None = Field(
        None,
        description='Only on a demo model that runs on random weights: "random weights" '
        '(its pictures are noise; docs/models.md, "The demo model")',
    )


class ModelList(BaseModel):
    code: Literal[0] = 0
    data: list[ModelEntry]


class TaskPage(BaseModel):
    code: Literal[0] = 0
    data: list[TaskObject] = Field(description="Tasks as /result answers them, newest first")
    next_cursor: str | None = Field(description="The `cursor` of the next page; null: no more")


@router.get("/models", response_model_exclude_none=True)
async def models(app: CurrentApp, key: AuthorizedKey) -> ModelList:
    """Extension: the models this key may use, sorted by id."""
    catalog = app.catalog
    usable = [catalog[model_id] for model_id in catalog.ids() if key.may_use(model_id)]
    data_dir = app.settings.data_dir
    return ModelList(data=[_entry(spec, data_dir) for spec in usable])


@router.get("/tasks", response_model_exclude_unset=True)
async def tasks(request: Request, app: CurrentApp, key: AuthorizedKey) -> TaskPage:
    """Extension: this key's tasks, newest first; `limit` (1 to 100, default 20) per page, and
    the `cursor` of the previous answer's `next_cursor` for the next page."""
    query = request.query_params
    limit = parse_limit(query.get("limit"))
    before = parse_cursor(query.get("cursor"))
    # One more than the page, to know whether another page follows.
    found = await app.store.newest_of_key(key.id, limit=limit + 1, before=before)
    page = found[:limit]
    settings = app.settings
    return TaskPage(
        code=0,
        data=[TaskObject.of(task, app.storage, settings.retention_seconds) for task in page],
        next_cursor=cursor_after(page[-1]) if len(found) > limit else None,
    )


def _entry(spec: ModelSpec, data_dir: Path) -> ModelEntry:
    return ModelEntry(
        id=spec.id,
        kind=spec.kind,
        ratios=list(spec.ratios),
        default_ratio=spec.default_ratio,
        max_images=spec.max_images,
        max_prompt=spec.max_prompt,
        price=json_number(spec.price),
        demo=_demo_note(spec, data_dir),
    )


def _demo_note(spec: ModelSpec, data_dir: Path) -> str | None:
    """What the workers recorded of a demo model (engines/local/demo_status.py): read, never
    worked out here, since the API node does not ask the hub or load torch."""
    if spec.engine != "demo":
        return None
    status = read_status(data_dir, spec.id)
    return status.note if status else None


# -- the query: limit and cursor -----------------------------------------------------------------


def parse_limit(raw: str | None) -> int:
    """The page size, or code 3 on `limit` in zod's words for a number coerced from the query:
    text is "expected number, received nan", a fraction "expected integer, received float"."""
    if raw is None:
        return DEFAULT_LIMIT
    value = _number_or_nan(raw)
    if math.isnan(value):
        raise invalid([wrong_type(["limit"], "number", value)])
    if not value.is_integer():
        raise invalid([wrong_type(["limit"], "integer", value)])
    if value < 1:
        raise invalid([too_small(["limit"], "number", 1)])
    if value > MAX_LIMIT:
        raise invalid([too_big(["limit"], "number", MAX_LIMIT)])
    return int(value)


def _number_or_nan(raw: str) -> float:
    """What zod's coercion makes of a query value: a number, or NaN for anything else."""
    try:
        value = float(raw)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def cursor_after(task: Task) -> str:
    """The opaque cursor of the page after this task: its position, as base64url JSON."""
    position = json.dumps([task.enqueued_at, task.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def parse_cursor(raw: str | None) -> TaskPosition | None:
    """The position a cursor names, or code 3 on `cursor` for one this server did not give."""
    if raw is None:
        return None
    try:
        padded = raw + "=" * (-len(raw) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        position = None
    if not _is_position(position):
        message = "cursor must be the next_cursor of an earlier answer of /v1/media/tasks"
        raise invalid([custom(["cursor"], message)])
    enqueued_at, task_id = position
    return float(enqueued_at), task_id


def _is_position(value: object) -> bool:
    if not isinstance(value, list) or len(value) != 2:
        return False
    enqueued_at, task_id = value
    if isinstance(enqueued_at, bool) or not isinstance(enqueued_at, int | float):
        return False
    # Unix seconds; false for NaN and the infinities, and no float overflow for a huge int.
    plausible = abs(enqueued_at) < 1e12
    return plausible and isinstance(task_id, str) and is_task_id(task_id)
