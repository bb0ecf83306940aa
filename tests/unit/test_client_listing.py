"""The client's listing flows (client/flows.py `models` and `tasks`) against a scripted server:
what they send, what they make of the answer, and that an answer of another shape is
UnexpectedResponse rather than a KeyError in the caller's code."""

from __future__ import annotations

import pytest

from darkroom.client import Backoff, Model, RetryPolicy, UnexpectedResponse, flows
from tests.support.mock_api import FlowDriver, ScriptedApi, task_answer

RETRY = RetryPolicy(attempts=1, backoff=Backoff(first=0.1, factor=2.0, cap=1.0, jitter=False))
ENTRY = {
    "id": "five-ratios",
    "object": "model",
    "kind": "image",
    "ratios": ["1:1", "16:9"],
    "default_ratio": "1:1",
    "max_images": 0,
    "max_prompt": 400,
    "price": 0.5,
}


def test_models_gets_the_listing_and_reads_each_models_rules() -> None:
    api = ScriptedApi({"code": 0, "data": [ENTRY]})
    [model] = FlowDriver(api).run(flows.models(RETRY))
    assert model == Model("five-ratios", "image", ("1:1", "16:9"), "1:1", 0, 400, 0.5)
    [request] = api.requests
    assert request.method == "GET" and request.url.path == "/v1/media/models"


def test_tasks_sends_limit_and_cursor_and_reads_the_page() -> None:
    answer = {"code": 0, "data": [task_answer("done", url="u")], "next_cursor": "abc"}
    api = ScriptedApi(answer)
    page = FlowDriver(api).run(flows.tasks(5, "xyz", RETRY))
    assert [task.url for task in page.tasks] == ["u"] and page.next_cursor == "abc"
    [request] = api.requests
    assert request.url.path == "/v1/media/tasks"
    assert dict(request.url.params) == {"limit": "5", "cursor": "xyz"}


def test_tasks_leaves_out_what_the_caller_left_out() -> None:
    api = ScriptedApi({"code": 0, "data": [], "next_cursor": None})
    page = FlowDriver(api).run(flows.tasks(None, None, RETRY))
    assert page.tasks == [] and page.next_cursor is None
    assert dict(api.requests[0].url.params) == {}


@pytest.mark.parametrize(
    ("flow", "answer"),
    [
        (lambda: flows.models(RETRY), {"code": 0, "data": [{"id": "x"}]}),
        (lambda: flows.models(RETRY), {"code": 0}),
        (lambda: flows.tasks(None, None, RETRY), {"code": 0, "data": [{"status": "idle"}]}),
        (lambda: flows.tasks(None, None, RETRY), {"code": 0, "data": [], "next_cursor": 3}),
    ],
)
def test_an_answer_of_another_shape_is_unexpected_response(flow, answer) -> None:
    with pytest.raises(UnexpectedResponse):
        FlowDriver(ScriptedApi(answer)).run(flow())
