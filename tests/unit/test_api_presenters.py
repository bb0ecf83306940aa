"""The task object in memory: one model gives /docs its schema and the answer its exact keys,
the extensions only where they apply, in the spec's order."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from darkroom.api import media
from darkroom.api.presenters import TaskObject
from darkroom.storage.local import LocalStorage
from darkroom.tasks import Task, TaskParams, TaskStatus

SPEC_KEYS = ["code", "id", "model", "prompt", "created_at", "status", "url"]
TASK = Task(
    id="6880f043e6060500018821de",
    key_id=1,
    model="google-imagen-3",
    prompt="a lighthouse",
    ar="9:21",
    width=640,
    height=1536,
    params=TaskParams(seed=7),
    batch_key="b",
    status=TaskStatus.IDLE,
    created_at=1753280579,
    enqueued_at=1753280579.0,
    attempt=0,
    max_attempts=3,
)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path, "http://darkroom.test", b"secret")


def answer(task: Task, storage: LocalStorage, queue_position: int | None = None) -> dict:
    """The body as the routes send it: the fields that were set, in JSON."""
    presented = TaskObject.of(task, storage, 3600, queue_position=queue_position)
    return presented.model_dump(mode="json", exclude_unset=True)


@pytest.mark.parametrize(
    ("changes", "queue_position", "extensions"),
    [
        ({}, None, []),
        ({}, 3, ["queue_position"]),
        ({"status": TaskStatus.PROCESSING, "progress": None}, 3, ["progress"]),
        ({"status": TaskStatus.DONE, "result_key": "k.webp", "finished_at": 1.0}, None, []),
        ({"status": TaskStatus.FAILED, "message": "canceled"}, 3, ["message", "error"]),
    ],
)
def test_extensions_appear_only_where_they_apply(storage, changes, queue_position, extensions):
    body = answer(dataclasses.replace(TASK, **changes), storage, queue_position)
    assert list(body) == SPEC_KEYS + extensions


def test_the_seven_fields_are_the_seeds():
    body = answer(TASK, LocalStorage(Path("/nonexistent"), "http://darkroom.test", b"s"))
    assert body == {
        "code": 0,
        "id": TASK.id,
        "model": "google-imagen-3",
        "prompt": "a lighthouse --ar 9:21",
        "created_at": 1753280579,
        "status": "idle",
        "url": None,
    }


def test_a_failed_task_says_why_in_message_and_in_error_alike(storage):
    failed = dataclasses.replace(TASK, status=TaskStatus.FAILED, message="The image was refused.")
    body = answer(failed, storage)
    assert body["message"] == body["error"] == "The image was refused."


def test_a_processing_task_without_progress_yet_is_at_0(storage):
    processing = dataclasses.replace(TASK, status=TaskStatus.PROCESSING)
    assert answer(processing, storage)["progress"] == 0


def test_a_done_task_links_to_its_file_with_the_same_link_on_every_poll(storage):
    done = dataclasses.replace(TASK, status=TaskStatus.DONE, result_key="k.webp", finished_at=5.0)
    first, again = answer(done, storage), answer(done, storage)
    assert first["url"].startswith("http://darkroom.test/files/k.webp?")
    assert first["url"] == again["url"]


def test_every_route_answering_a_task_sends_only_the_fields_set():
    routes = [r for r in media.router.routes if isinstance(r, APIRoute)]
    answering = [r for r in routes if r.response_model is TaskObject]
    assert {r.path for r in answering} == {
        "/v1/media/create",
        "/v1/media/result",
        "/v1/media/cancel",
    }
    assert all(r.response_model_exclude_unset for r in answering)
