"""The media routes: create a task, read its result, cancel it (an extension)."""

from __future__ import annotations

import functools
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from darkroom import metrics
from darkroom.api.auth import require_key
from darkroom.api.deps import CurrentApp, current_app_of
from darkroom.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from darkroom.api.idempotency import requested_idempotency
from darkroom.api.issues import custom, invalid, too_big
from darkroom.api.presenters import TaskObject
from darkroom.api.requests import (
    MAX_SEED,
    Choices,
    CreateRequest,
    ResultRequest,
    parse_create,
    parse_task_id,
    read_json_body,
)
from darkroom.app import App
from darkroom.engines import Catalog, ModelSpec
from darkroom.errors import (
    InsufficientBalance,
    ModelNotAllowed,
    Overloaded,
    SensitiveContent,
    TaskNotFound,
    UnsafePrompt,
)
from darkroom.keys import ApiKey
from darkroom.tasks import (
    Idempotency,
    IdempotencyMismatch,
    InsufficientFunds,
    KeyLimitReached,
    NewTask,
    QueueFull,
    Task,
    TaskParams,
    TaskStatus,
)

router = APIRouter(prefix="/v1/media", tags=["media"])
AuthorizedKey = Annotated[ApiKey, Depends(require_key)]


def _body_doc(model: type) -> dict[str, Any]:
    schema = model.model_json_schema()  # type: ignore[attr-defined]
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


@router.post(
    "/create",
    openapi_extra=_body_doc(CreateRequest),
    response_model=TaskObject,
    response_model_exclude_unset=True,
)
async def create(request: Request) -> Response:
    """Queue a generation task; answers at once with `status: "idle"`."""
    # A hot route (api/hot.py), as /result is: its steps are called here, not declared.
    app = current_app_of(request)
    key = await require_key(request, app)
    data = await read_json_body(request, app.settings.max_body_bytes)
    body = parse_create(data, _choices(app, key))
    task = await accept_task(app, key, body, requested_idempotency(request, body))
    return _answer(TaskObject.of(task, app.storage, app.settings.retention_seconds))


async def accept_task(
    app: App, key: ApiKey, body: CreateRequest, idempotency: Idempotency | None = None
) -> Task:
    """Checks a parsed create body against the model, the key and the content policy, and
    queues its task (durable when this returns): the one way in for create and generate. With
    an idempotency key already used for the same body, the task that create queued."""
    spec = _model_for(app, key, body.model)
    _check_inputs(spec, body)
    _check_content(app, body)
    task = await queue_task(app, key, _new_task(app, key, spec, body), idempotency)
    app.wakeup.notify()
    return task


async def queue_task(
    app: App, key: ApiKey, new: NewTask, idempotency: Idempotency | None = None
) -> Task:
    """Queues a checked task (durable when this returns), answering the store's refusals
    with their codes: the step that create, generate and the OpenAI front share."""
    try:
        task = await app.store.create(
            new, key, max_queue=app.settings.max_queue, idempotency=idempotency
        )
    except IdempotencyMismatch as exc:
        message = "this key was used with another request body in the last 24 hours"
        raise invalid([custom([IDEMPOTENCY_HEADER], message)]) from exc
    except KeyLimitReached as exc:
        raise Overloaded(exc.message, retry_after=exc.retry_after) from exc
    except QueueFull as exc:
        raise Overloaded(
            f"{exc.args[0]} tasks are waiting in the queue; try again in a minute."
        ) from exc
    except InsufficientFunds as exc:
        raise InsufficientBalance(
            f"This key's balance cannot pay for {new.model}'s price; ask the operator to top it up."
        ) from exc
    metrics.TASKS_CREATED.labels(task.model).inc()
    return task


async def requested_task_id(request: Request, app: CurrentApp) -> str:
    """The `task_id` of a result or cancel request, from the query string or the JSON body."""
    query = request.query_params
    if request.method == "GET" and "task_id" in query:  # a poll: no body to read
        return parse_task_id({"task_id": query["task_id"]}, {})
    body = await read_json_body(request, app.settings.max_body_bytes)
    return parse_task_id(dict(query), body)


# After the key, so that a request without a valid key is code 2 whatever its body.
RequestedTaskId = Annotated[str, Depends(requested_task_id)]


@router.api_route(
    "/result",
    methods=["GET", "POST"],
    openapi_extra=_body_doc(ResultRequest),
    response_model=TaskObject,
    response_model_exclude_unset=True,
)
async def result(request: Request) -> Response:
    """The task's current state; `task_id` in the query string or in the JSON body."""
    # The hottest route of a busy server (clients poll it), served before FastAPI's stack
    # (api/hot.py): its steps are called here rather than declared as dependencies, and it
    # answers JSON directly, as FastAPI's response validation costs as much as the rest.
    app = current_app_of(request)
    key = await require_key(request, app)
    task_id = await requested_task_id(request, app)
    task = await app.store.get(task_id, key_id=key.id)
    return _answer(await _live_answer(app, _found(task, task_id)))


def _answer(task: TaskObject) -> JSONResponse:
    """The task object as FastAPI's `response_model_exclude_unset` would write it."""
    return JSONResponse(task.model_dump(mode="json", exclude_unset=True))


@router.post("/cancel", openapi_extra=_body_doc(ResultRequest), response_model_exclude_unset=True)
async def cancel(app: CurrentApp, key: AuthorizedKey, task_id: RequestedTaskId) -> TaskObject:
    """Extension: cancel a task; `task_id` in the query string or in the JSON body.

    An idle task fails at once with the message "canceled"; a processing one stops at its next
    denoising step and then fails the same way; a finished one is left as it is. The answer is
    the task as it stands after the request."""
    task = await app.store.cancel(task_id, key.id)
    if task is not None and task.status is TaskStatus.FAILED:
        app.wakeup.finished(task.id)  # a generate call waiting for it answers now
    return await _live_answer(app, _found(task, task_id))


def _found(task: Task | None, task_id: str) -> Task:
    """The task, or code 4: another key's task is "not found" too."""
    if task is None:
        raise TaskNotFound(f"No task {task_id} was found for this API key.")
    return task


async def _live_answer(app: App, task: Task) -> TaskObject:
    """The task object, with its place in the queue while it waits."""
    position = await app.store.queue_position(task) if task.status is TaskStatus.IDLE else None
    return TaskObject.of(task, app.storage, app.settings.retention_seconds, queue_position=position)


def _choices(app: App, key: ApiKey) -> Choices:
    """What this key's create request is checked against: its models, their ratios and their
    prompt caps."""
    ratios, max_prompts = _catalog_rules(app.catalog)
    return Choices([m for m in ratios if key.may_use(m)], ratios, max_prompts)


@functools.lru_cache(maxsize=4)
def _catalog_rules(catalog: Catalog) -> tuple[dict[str, tuple[str, ...]], dict[str, int]]:
    """Every served model's ratios and prompt cap, in id order: the catalog does not change
    while it serves, so this is worked out once rather than on every create."""
    ratios = {model_id: catalog[model_id].ratios for model_id in catalog.ids()}
    return ratios, {model_id: catalog[model_id].max_prompt for model_id in ratios}


def _model_for(app: App, key: ApiKey, model_id: str) -> ModelSpec:
    """The spec of a model the catalog serves (parse_create checked it), or code 7."""
    if not key.may_use(model_id):
        raise ModelNotAllowed(
            f"This API key may not use the model {model_id!r}; it may use {key.models}."
        )
    return app.catalog[model_id]


def _check_inputs(spec: ModelSpec, body: CreateRequest) -> None:
    """Reference images only for a model that takes them, and at most its count of them."""
    if not body.images:
        return
    field = body.sent_as("images")
    if not spec.takes_images:
        message = f"{spec.id} does not take reference images; leave out {field}"
        raise invalid([custom([field], message)])
    if len(body.images) > spec.max_images:
        raise invalid([too_big([field], "array", spec.max_images)])


def _check_content(app: App, body: CreateRequest) -> None:
    policy = app.policy
    if policy.flags(body.prompt):
        raise UnsafePrompt("Rephrase it and try again.")
    other_text = [body.negative_prompt or "", *(body.images or [])]
    if any(policy.flags(text) for text in other_text):
        raise SensitiveContent("It was found in the negative prompt or in an image link.")


def _new_task(app: App, key: ApiKey, spec: ModelSpec, body: CreateRequest) -> NewTask:
    # A seed is always fixed at creation, so a retried task gives the same image.
    seed = body.seed if body.seed is not None else secrets.randbelow(MAX_SEED + 1)
    return NewTask.build(
        key_id=key.id,
        model=spec.id,
        prompt=body.prompt,
        ar=body.ar,
        size=spec.size_for(body.ar or spec.default_ratio),
        params=TaskParams(seed, body.negative_prompt or None, tuple(body.images or ())),
        max_attempts=app.settings.max_attempts,
        cost=spec.price,
        callback_url=body.callback_url or key.callback_url,
        kind=spec.kind,
        clip=spec.clip_shape,
    )


HOT_ROUTES = {
    ("POST", "/v1/media/create"): create,
    ("GET", "/v1/media/result"): result,
    ("POST", "/v1/media/result"): result,
}
"""The routes `darkroom serve` dispatches before FastAPI's stack (api/hot.py)."""
