"""POST /v1/media/generate: the hosted service's synchronous call. Some of its clients create
and poll; others call this once and read `result`. So that both see one service, generate is
create followed by a wait: the task goes through the same checks, store, queue and workers
(durable, batched with created tasks, canceled by /v1/media/cancel), and the request only
waits for it to end.

The wait does not poll the database fast: the worker that finishes a task (or the cancel of
an idle one) announces it through the wakeup, in this process or by NOTIFY across processes
on PostgreSQL, and the task row is read again only then or at the wakeup's slow safety poll
(workers in another process on SQLite cannot announce anything). A client that goes away
takes nothing with it: the wait stops, the task runs on and /result answers it later.

What the answer is, by how the task stands when the wait ends:

- done: code 0 with `result` and `url` (the same link), or `b64_json` (the file itself)
  instead of `result` when `response_format` is `b64_json`;
- failed: code 1, "Internal server error." followed by the task's message, whatever failed it
  (a canceled task too). Requests the content policy refuses never become tasks: they are
  answered 1001 or 1002 before anything is queued, as create answers them;
- still idle or processing after `generate_timeout_seconds`: code 0, its status and
  `result: null`, so the client goes on with /result.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

import structlog
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from darkroom.api import issues
from darkroom.api.deps import CurrentApp
from darkroom.api.idempotency import requested_idempotency
from darkroom.api.issues import Issue, invalid
from darkroom.api.media import AuthorizedKey, _body_doc, _choices, accept_task
from darkroom.api.presenters import TaskObject, result_link
from darkroom.api.requests import Choices, CreateRequest, parse_create, read_json_body
from darkroom.app import App
from darkroom.errors import InternalError, InvalidRequest
from darkroom.tasks import Task, TaskStatus

router = APIRouter(prefix="/v1/media", tags=["media"])
log = structlog.get_logger("darkroom.api")
T = TypeVar("T")

SIZES = ["1K", "2K", "4K"]
RESPONSE_FORMATS = ["url", "b64_json"]
ENDED = (TaskStatus.DONE, TaskStatus.FAILED)


class GenerateRequest(CreateRequest):
    """Body of POST /v1/media/generate: the create fields, and how to answer."""

    size: Literal["1K", "2K", "4K"] | None = Field(
        None, description="Output scale, for models that offer it; the others ignore it"
    )
    response_format: Literal["url", "b64_json"] = Field(
        "url", description="`url`: a link in `result`; `b64_json`: the file in `b64_json`"
    )


class GenerateObject(BaseModel):
    """The answer of /generate, in the hosted service's order."""

    code: Literal[0] = Field(description="0: the request succeeded")
    id: str
    model: str
    status: TaskStatus
    result: str | None = Field(None, description="The link, once done (null while running)")
    b64_json: str | None = Field(None, description="The file, base64, with b64_json")
    url: str | None
    cost: int | float | None = Field(None, description="What the task is charged")
    created_at: int


@router.post(
    "/generate", openapi_extra=_body_doc(GenerateRequest), response_model_exclude_unset=True
)
async def generate(request: Request, app: CurrentApp, key: AuthorizedKey) -> GenerateObject:
    """Queue a task like create, wait until it ends (at most the server's generate timeout),
    and answer with its result; a task still running then is answered as it stands."""
    data = await read_json_body(request, app.settings.max_body_bytes)
    body, response_format = parse_generate(data, _choices(app, key))
    task = await accept_task(app, key, body, requested_idempotency(request, body))
    waiting = wait_for_end(app, task, app.settings.generate_timeout_seconds)
    task = await unless_client_leaves(request, waiting, what="generate", task_ids=[task.id])
    return await _answer(app, task, response_format)


def parse_generate(data: dict[str, Any], choices: Choices) -> tuple[CreateRequest, str]:
    """The create fields, parsed exactly as create parses them, and the response format; every
    problem of both in one code-3 answer. `size` is checked, then left to the models (none of
    this server's offers a scale)."""
    problems = [
        *_choice_problems(data, "size", SIZES, None),
        *_choice_problems(data, "response_format", RESPONSE_FORMATS, "url"),
    ]
    try:
        body = parse_create(data, choices)
    except InvalidRequest as exc:
        raise invalid([*(exc.issues or []), *problems]) from exc
    if problems:
        raise invalid(problems)
    return body, data.get("response_format") or "url"


def _choice_problems(
    data: dict[str, Any], field: str, choices: list[str], default: str | None
) -> list[Issue]:
    value = data.get(field, default)
    if value is None or value in choices:
        return []
    if not isinstance(value, str):
        return [issues.wrong_type([field], issues.joined(choices), value, choices)]
    return [issues.unknown_value([field], choices, value[:40])]


async def wait_for_end(app: App, task: Task, timeout: float) -> Task:
    """The task once done or failed, or as it stands when `timeout` seconds have passed. Woken
    when the task may have ended; the row is read again then, or after the safety poll."""
    deadline = time.monotonic() + timeout
    with app.wakeup.watching(task.id) as maybe_ended:
        while task.status not in ENDED:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            poll = app.wakeup.safety_poll(app.settings.poll_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(maybe_ended.wait(), min(remaining, poll))
            maybe_ended.clear()  # before the read: an end announced during it wakes us again
            task = await app.store.get(task.id) or task
    return task


async def unless_client_leaves(
    request: Request, waiting: Awaitable[T], *, what: str, task_ids: list[str]
) -> T:
    """The wait's result; if the client disconnects first, the wait stops (the tasks run on,
    for /result) and the request ends without an answer."""
    wait = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({wait, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (wait, gone):
            pending.cancel()
    if not wait.done() or wait.cancelled():
        log.info(f"{what} client left; its tasks go on", task_ids=task_ids)
        raise ClientDisconnect()
    return wait.result()


async def _disconnected(request: Request) -> None:
    """Returns when the client disconnects: its body is read, so the next message says so."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _answer(app: App, task: Task, response_format: str) -> GenerateObject:
    if task.status is TaskStatus.FAILED:
        raise InternalError(task.message or "The task failed.")
    retention = app.settings.retention_seconds
    shown = TaskObject.of(task, app.storage, retention).model_dump(exclude_unset=True)
    link = result_link(task, app.storage, retention)  # an audio model's first track
    answer: dict[str, Any] = {name: shown[name] for name in ("code", "id", "model", "status")}
    if task.status is not TaskStatus.DONE:
        answer["result"] = None
    elif response_format == "b64_json":
        answer["b64_json"] = await _file_base64(app, task)
    else:
        answer["result"] = link
    answer["url"] = link
    if "cost" in shown:  # the task object's cost, wherever the presenter gives one
        answer["cost"] = shown["cost"]
    answer["created_at"] = shown["created_at"]
    return GenerateObject(**answer)


async def _file_base64(app: App, task: Task) -> str:
    data = await app.storage.get(task.result_key) if task.result_key else None
    if data is None:  # deleted between the task's end and this read: nothing a client did
        raise InternalError(
            f"The result of task {task.id} could not be read back; fetch it with /v1/media/result."
        )
    return base64.b64encode(data).decode("ascii")
