"""The blocking client: `Client`."""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from darkroom.client import flows
from darkroom.client._base import (
    DEFAULT_WAIT,
    ClientBase,
    raw_call,
    reply_of,
    saved_paths,
    task_id_of,
)
from darkroom.client.config import DEFAULT_MODEL
from darkroom.client.flows import Call, Flow, Outcome, ProgressCallback, Sleep, T
from darkroom.client.models import Model, Task, TaskPage
from darkroom.client.policy import Backoff, RetryPolicy


class Client(ClientBase):
    """A client of the media API. Use it as a context manager, or call `close()`.

    >>> with Client() as client:  # DARKROOM_BASE_URL and DARKROOM_API_KEY
    ...     task = client.generate("a lighthouse at dusk", ar="16:9")
    ...     client.download(task, "lighthouse.webp")
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        polls: Backoff | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout=timeout, retry=retry, polls=polls)
        self._http = httpx.Client(**self._http_options(), transport=transport)

    def create(
        self,
        prompt: str,
        model: str = DEFAULT_MODEL,
        ar: str | None = None,
        *,
        seed: int | None = None,
        negative_prompt: str | None = None,
        images: list[str] | None = None,
        **extras: Any,
    ) -> Task:
        """Queues a task and returns it (`status` "idle"). `extras` are sent as they are."""
        body = self._body(prompt, model, ar, seed, negative_prompt, images, extras)
        return self._run(flows.create(body, self.retry))

    def result(self, task: Task | str) -> Task:
        """The task's current state."""
        return self._run(flows.result(task_id_of(task), self.retry))

    def cancel(self, task: Task | str) -> Task:
        """Cancels a task (a Darkroom extension): an idle one fails at once with the message
        "canceled", a processing one stops soon after; a finished one is left as it is."""
        return self._run(flows.cancel(task_id_of(task), self.retry))

    def models(self) -> list[Model]:
        """The models this key may use, with their ratios, prompt cap, image inputs and price
        (a Darkroom extension)."""
        return self._run(flows.models(self.retry))

    def tasks(self, *, limit: int | None = None, cursor: str | None = None) -> TaskPage:
        """One page of this key's tasks, newest first (a Darkroom extension): `limit` per page
        (1 to 100; the server's default is 20), and the previous page's `next_cursor` for the
        next one."""
        return self._run(flows.tasks(limit, cursor, self.retry))

    def wait(
        self,
        task: Task | str,
        *,
        timeout: float | None = DEFAULT_WAIT,
        on_progress: ProgressCallback | None = None,
    ) -> Task:
        """Polls until the task is done and returns it. Raises TaskFailed if it fails and
        WaitTimeout after `timeout` seconds (None: no limit). `on_progress(task)` sees each poll."""
        flow = flows.wait(task_id_of(task), self.retry, self.polls, timeout, on_progress)
        return self._run(flow)

    def generate(
        self,
        prompt: str,
        model: str = DEFAULT_MODEL,
        ar: str | None = None,
        *,
        seed: int | None = None,
        negative_prompt: str | None = None,
        images: list[str] | None = None,
        timeout: float | None = DEFAULT_WAIT,
        on_progress: ProgressCallback | None = None,
        **extras: Any,
    ) -> Task:
        """Creates a task and waits for it: the finished task, with its `url`."""
        body = self._body(prompt, model, ar, seed, negative_prompt, images, extras)
        return self._run(flows.generate(body, self.retry, self.polls, timeout, on_progress))

    def download(self, task: Task | str, path: str | Path) -> Path:
        """Saves the file of a done task (its image, video or first track), or of a URL, to
        `path` as it is named."""
        data = self._run(flows.download(task, self.retry))
        target = Path(path)
        target.write_bytes(data)
        return target

    def save(self, task: Task | str, path: str | Path) -> list[Path]:
        """Saves every file of a done task (an image, a video, each track of an audio model)
        at `path` with the extension of its kind (see `saved_paths`); returns the paths."""
        files = self._run(flows.download_all(task, self.retry))
        paths = saved_paths(path, [extension for _, extension in files])
        for target, (data, _) in zip(paths, files, strict=True):
            target.write_bytes(data)
        return paths

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Any API method (an extension this client has no method for): the answer's JSON,
        or the exception of its error code."""
        return self._run(flows.api(raw_call(method, path, json, params), self.retry))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, flow: Flow[T]) -> T:
        outcome: Outcome = None
        while True:
            try:
                step = flow.send(outcome)
            except StopIteration as stop:
                value: T = stop.value
                return value
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                outcome = None
            else:
                outcome = self._perform(step)

    def _perform(self, call: Call) -> Outcome:
        try:
            response = self._http.request(call.method, call.url, **self._request_options(call))
        except httpx.TransportError as exc:
            return exc
        return reply_of(response)
