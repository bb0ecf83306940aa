"""A media API server played from a script, for the client's unit tests on httpx's
MockTransport, and a driver that carries out a client flow's steps against it, recording the
sleeps it is asked for instead of sleeping (flows are sans-IO: any driver will do)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from darkroom.client.flows import Call, Flow, Outcome, Reply, Sleep

T = TypeVar("T")

BASE_URL = "http://darkroom.test"
API_KEY = "dk_unit"
Answer = httpx.Response | httpx.TransportError | dict[str, Any]


def task_answer(status: str = "idle", task_id: str = "task-1", **fields: Any) -> dict[str, Any]:
    """A code-0 answer carrying a task, as create, result and cancel give it."""
    task = {"id": task_id, "model": "fake", "prompt": "a harbour", "created_at": 1}
    return {"code": 0, **task, "status": status, **fields}


class ScriptedApi:
    """Answers each request with the next answer of its script (a JSON object, a response, or
    a transport error to raise) and keeps the requests; requests for links go to `storage`
    and are kept apart, in `link_requests`."""

    def __init__(
        self, *answers: Answer, storage: Callable[[httpx.Request], httpx.Response] | None = None
    ) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.link_requests: list[httpx.Request] = []
        self.storage = storage

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.storage is not None and request.url.host != httpx.URL(BASE_URL).host:
            self.link_requests.append(request)
            return self.storage(request)
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, httpx.TransportError):
            raise answer
        return answer if isinstance(answer, httpx.Response) else httpx.Response(200, json=answer)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


class FlowDriver:
    """Runs flows over an httpx client on a MockTransport; `sleeps` holds each Sleep's seconds."""

    def __init__(self, api: ScriptedApi) -> None:
        self.http = httpx.Client(base_url=BASE_URL, transport=httpx.MockTransport(api))
        self.sleeps: list[float] = []

    def run(self, flow: Flow[T]) -> T:
        outcome: Outcome = None
        try:
            while True:
                outcome = self._carry_out(flow.send(outcome))
        except StopIteration as stop:
            return stop.value

    def _carry_out(self, step: Call | Sleep) -> Outcome:
        if isinstance(step, Sleep):
            self.sleeps.append(step.seconds)
            return None
        headers = {"Authorization": API_KEY} if step.authorized else {}
        try:
            response = self.http.request(
                step.method, step.url, json=step.json, params=step.params, headers=headers
            )
        except httpx.TransportError as error:
            return error
        return Reply(response.status_code, response.headers, response.content)
