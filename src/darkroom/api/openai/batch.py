"""An OpenAI request for `n` images is `n` tasks of the media API: each checked, charged and
queued as /v1/media/create queues one (media.py's checks and store), each with its own seed, and
all waited for as /v1/media/generate waits (generate.wait_for_end, woken by the finished-task
notifications).

The workers are woken once, after the last task is queued, so that an idle worker claims them
together as one batch (up to the model's `max_batch`) rather than the first alone. A request
refused part-way (the balance pays for two of three, the queue fills) withdraws the tasks it
queued, whose cost comes back: an OpenAI request is all or nothing.
"""

from __future__ import annotations

import asyncio

import structlog
from starlette.requests import Request

from darkroom.api.generate import ENDED, unless_client_leaves, wait_for_end
from darkroom.api.media import _check_content, _check_inputs, _new_task, queue_task
from darkroom.api.openai.errors import OpenAIError
from darkroom.api.requests import CreateRequest
from darkroom.app import App
from darkroom.engines import ModelSpec
from darkroom.errors import ApiError
from darkroom.keys import ApiKey
from darkroom.tasks import Task

log = structlog.get_logger("darkroom.api")


async def accept_tasks(
    app: App, key: ApiKey, spec: ModelSpec, body: CreateRequest, count: int
) -> list[Task]:
    """`count` tasks of this body, durable when this returns, or none at all."""
    _check_inputs(spec, body)
    _check_content(app, body)
    queued: list[Task] = []
    try:
        for _ in range(count):
            queued.append(await _queue(app, key, spec, body))
    except ApiError:
        await _withdraw(app, key, queued)
        raise
    app.wakeup.notify()
    return queued


async def _queue(app: App, key: ApiKey, spec: ModelSpec, body: CreateRequest) -> Task:
    return await queue_task(app, key, _new_task(app, key, spec, body))


async def _withdraw(app: App, key: ApiKey, queued: list[Task]) -> None:
    """Cancels tasks of a refused request (an idle one fails at once and is refunded)."""
    for task in queued:
        canceled = await app.store.cancel(task.id, key.id)
        if canceled is not None:
            app.wakeup.finished(task.id)


async def wait_for_all(request: Request, app: App, tasks: list[Task]) -> list[Task]:
    """The tasks once all have ended; a 504 naming them when the server's generate timeout
    comes first (they go on, and /v1/media/result answers them)."""
    timeout = app.settings.generate_timeout_seconds
    waits = asyncio.gather(*(wait_for_end(app, task, timeout) for task in tasks))
    ended = await unless_client_leaves(
        request, waits, what="images", task_ids=[t.id for t in tasks]
    )
    running = [task.id for task in ended if task.status not in ENDED]
    if running:
        raise OpenAIError(
            504,
            f"The images were not ready within {timeout:g} s. Their tasks go on: fetch each "
            f"with GET /v1/media/result?task_id=ID (ids: {', '.join(running)}).",
            type="server_error",
            code="timeout",
            retry=False,  # a retry would queue and charge the same images again
        )
    return ended
