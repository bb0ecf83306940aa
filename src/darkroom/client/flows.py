"""The client's logic without I/O, shared by the sync and the async client.

Each operation is a generator (a *flow*) that yields the steps it needs: a `Call` (an HTTP
request) or a `Sleep`. A driver carries each step out, with blocking or with async I/O, and
sends back the `Reply` or the transport exception. Retries, polling, deadlines, parsing and the
mapping of error codes to exceptions thus live here once.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from darkroom.client.errors import (
    ConnectionFailed,
    DarkroomError,
    DownloadError,
    TaskFailed,
    UnexpectedResponse,
    WaitTimeout,
    error_for,
)
from darkroom.client.models import Model, Task, TaskPage
from darkroom.client.policy import Backoff, RetryPolicy, is_transient

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    """A path under the base URL, or an absolute URL (image links)."""
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    authorized: bool = True
    """Image links are plain GETs: they carry no key."""
    idempotent: bool = True


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Reply:
    status_code: int
    headers: Mapping[str, str]
    content: bytes


Step = Call | Sleep
Outcome = Reply | httpx.TransportError | None
Flow = Generator[Step, Outcome, T]
ProgressCallback = Callable[[Task], object]

# Connection failures that happen before a byte of the request is sent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def send(call: Call, retry: RetryPolicy) -> Flow[Reply]:
    """One request, tried again after transient failures; returns the first other reply."""
    return (yield from _tried(call, retry, _no_check))


def api(call: Call, retry: RetryPolicy) -> Flow[dict[str, Any]]:
    """An API call: the answer's JSON object with code 0, else the exception of its code.
    Code 6 (overloaded) is retried like a transient failure of the transport."""
    return (yield from _tried(call, retry, parse_answer))


def _tried(call: Call, retry: RetryPolicy, read: Callable[[Reply], T]) -> Flow[T]:
    # One count of attempts for every kind of transient failure, so the total stays bounded.
    for attempt in itertools.count():
        outcome = yield call
        try:
            return read(_reply(call, outcome))
        except DarkroomError as error:
            if attempt + 1 >= retry.attempts or not is_transient(error, idempotent=call.idempotent):
                raise
            yield Sleep(retry.delay(error, attempt))
    raise AssertionError("unreachable")


def _no_check(reply: Reply) -> Reply:
    return reply


def create(body: dict[str, Any], retry: RetryPolicy) -> Flow[Task]:
    call = Call("POST", "/v1/media/create", json=body, idempotent=False)
    return parse_task((yield from api(call, retry)))


def result(task_id: str, retry: RetryPolicy) -> Flow[Task]:
    call = Call("POST", "/v1/media/result", json={"task_id": task_id})
    return parse_task((yield from api(call, retry)))


def cancel(task_id: str, retry: RetryPolicy) -> Flow[Task]:
    # Canceling twice is canceling once, so a broken connection may be retried.
    call = Call("POST", "/v1/media/cancel", json={"task_id": task_id})
    return parse_task((yield from api(call, retry)))


def models(retry: RetryPolicy) -> Flow[list[Model]]:
    """The models the key may use, with their rules (a Darkroom extension)."""
    answer = yield from api(Call("GET", "/v1/media/models"), retry)
    return _parsed(lambda: [Model.from_payload(entry) for entry in answer["data"]], "model list")


def tasks(limit: int | None, cursor: str | None, retry: RetryPolicy) -> Flow[TaskPage]:
    """One page of the key's tasks, newest first (a Darkroom extension); the server's default
    page size when `limit` is None, the first page when `cursor` is None."""
    params = {"limit": None if limit is None else str(limit), "cursor": cursor}
    sent = {name: value for name, value in params.items() if value is not None}
    answer = yield from api(Call("GET", "/v1/media/tasks", params=sent), retry)
    return _parsed(lambda: _task_page(answer), "page of tasks")


def _task_page(answer: dict[str, Any]) -> TaskPage:
    cursor = answer.get("next_cursor")
    if cursor is not None and not isinstance(cursor, str):
        raise TypeError("next_cursor")
    return TaskPage([Task.from_payload(task) for task in answer["data"]], cursor)


def wait(
    task_id: str,
    retry: RetryPolicy,
    polls: Backoff,
    timeout: float | None,
    on_progress: ProgressCallback | None = None,
) -> Flow[Task]:
    """Polls until the task is done (returned) or failed (TaskFailed), or the timeout passes
    (WaitTimeout). `on_progress` sees every answer."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for poll in itertools.count():
        task = yield from result(task_id, retry)
        if on_progress is not None:
            on_progress(task)
        if task.done:
            return task
        if task.failed:
            raise TaskFailed(task)
        pause = polls.delay(poll)
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(task, timeout or 0.0)
            pause = min(pause, remaining)
        yield Sleep(pause)
    raise AssertionError("unreachable")


def generate(
    body: dict[str, Any],
    retry: RetryPolicy,
    polls: Backoff,
    timeout: float | None,
    on_progress: ProgressCallback | None = None,
) -> Flow[Task]:
    task = yield from create(body, retry)
    if on_progress is not None:
        on_progress(task)
    return (yield from wait(task.id, retry, polls, timeout, on_progress))


def download(task: Task | str, retry: RetryPolicy) -> Flow[bytes]:
    """The file's bytes (an image, a video, an audio model's first track); `task` is a done
    task or its URL."""
    [url] = _links(task)[:1]
    return (yield from _fetched(url, retry)).content


def download_all(task: Task | str, retry: RetryPolicy) -> Flow[list[tuple[bytes, str]]]:
    """Every file of a done task (an audio model's tracks, one by one), each with the file
    extension its content type names (`.webp`, `.mp4`, `.mp3`)."""
    files = []
    for url in _links(task):
        reply = yield from _fetched(url, retry)
        files.append((reply.content, extension_of(reply.headers.get("content-type", ""), url)))
    return files


# The extensions of the media types the API serves, and of a PNG an upstream may link.
EXTENSIONS = {
    "image/webp": ".webp",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "video/mp4": ".mp4",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
}


def extension_of(content_type: str, url: str) -> str:
    """A file's extension from its content type, else from its link's path."""
    named = EXTENSIONS.get(content_type.split(";")[0].strip().lower())
    if named:
        return named
    path = httpx.URL(url).path
    suffix = path[path.rfind(".") :] if "." in path.rsplit("/", 1)[-1] else ""
    return suffix.lower() if 1 < len(suffix) <= 5 else ""


def _links(task: Task | str) -> tuple[str, ...]:
    links = (task,) if isinstance(task, str) else task.links
    if not links:
        assert isinstance(task, Task)
        raise DownloadError(f"Task {task.id} has no file (it is {task.status}).")
    return links


def _fetched(url: str, retry: RetryPolicy) -> Flow[Reply]:
    try:
        reply = yield from send(Call("GET", url, authorized=False), retry)
    except UnexpectedResponse as exc:
        raise DownloadError(_download_failure(exc.status_code)) from exc
    if reply.status_code != 200:
        raise DownloadError(_download_failure(reply.status_code))
    return reply


def _download_failure(status: int) -> str:
    if status in (403, 404, 410):
        return f"The file's link answered HTTP {status}: it has expired or is not valid."
    return f"The file's link answered HTTP {status}."


def create_body(
    prompt: str,
    model: str,
    ar: str | None,
    seed: int | None,
    negative_prompt: str | None,
    images: list[str] | None,
    extras: Mapping[str, Any],
) -> dict[str, Any]:
    """The create request; fields left as None are not sent, so server defaults apply."""
    fields = {
        "model": model,
        "prompt": prompt,
        "ar": ar,
        "images": images,
        "seed": seed,
        "negative_prompt": negative_prompt,
        **extras,
    }
    return {name: value for name, value in fields.items() if value is not None}


def parse_envelope(reply: Reply) -> dict[str, Any]:
    """The JSON object of an API answer, or UnexpectedResponse for anything else."""
    if reply.status_code != 200:
        raise UnexpectedResponse(
            f"The server answered HTTP {reply.status_code} instead of the API's JSON"
            f"{_excerpt(reply.content)}.",
            status_code=reply.status_code,
            retry_after=_retry_after(reply.headers),
        )
    try:
        answer = json.loads(reply.content)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise UnexpectedResponse(
            f"The server's answer is not a JSON object{_excerpt(reply.content)}; "
            f"is the base URL a Darkroom server?",
            status_code=reply.status_code,
        )
    return answer


def parse_answer(reply: Reply) -> dict[str, Any]:
    answer = parse_envelope(reply)
    code = answer.get("code", 0)
    if code != 0:
        issues = answer.get("issues")
        raise error_for(_int_code(code), str(answer.get("message") or ""), issues)
    return answer


def _int_code(code: Any) -> int:
    try:
        return int(code)
    except (TypeError, ValueError):
        return -1


def parse_task(answer: dict[str, Any]) -> Task:
    return _parsed(lambda: Task.from_payload(answer), "task")


def _parsed(parse: Callable[[], T], what: str) -> T:
    """What `parse` reads from a code-0 answer, or UnexpectedResponse when it is not that."""
    try:
        return parse()
    except (KeyError, TypeError, ValueError) as exc:
        raise UnexpectedResponse(
            f"The server's answer is not a {what} (missing or wrong {exc}).", status_code=200
        ) from exc


def _reply(call: Call, outcome: Outcome) -> Reply:
    """The reply, or the error of a failed transport or of an HTTP 429 or 5xx."""
    if isinstance(outcome, Reply):
        if outcome.status_code == 429 or outcome.status_code >= 500:
            raise UnexpectedResponse(
                f"The server answered HTTP {outcome.status_code}{_excerpt(outcome.content)}.",
                status_code=outcome.status_code,
                retry_after=_retry_after(outcome.headers),
            )
        return outcome
    if isinstance(outcome, httpx.TransportError):
        reason = str(outcome) or type(outcome).__name__
        raise ConnectionFailed(
            f"Could not reach {_url_of(outcome, call)}: {reason}.",
            sent=not isinstance(outcome, _NOT_SENT),
        ) from outcome
    raise TypeError(f"a driver sent {outcome!r} in answer to a call")


def _url_of(error: httpx.TransportError, call: Call) -> str:
    try:
        return str(error.request.url.copy_with(query=None))
    except RuntimeError:  # an error raised before httpx built the request
        return call.url


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after", "")
    return float(value) if value.strip().isdigit() else None


def _excerpt(content: bytes) -> str:
    text = " ".join(content[:120].decode("utf-8", "replace").split())
    return f": {text!r}" if text else ""
