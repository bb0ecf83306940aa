"""The openai engine over HTTP against a local server speaking OpenAI's Images API."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from darkroom.engines import BatchMonitor, GenerationError, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.sizes import RATIOS
from tests.support.fakes.base import bomb_png
from tests.support.fakes.openai_images import API_KEY, FakeOpenAI
from tests.support.fakes.serving import client_for, download, serving
from tests.support.servers import free_port, wait_for_status

KEY_ENV = "DARKROOM_TEST_OPENAI_KEY"
FAST = {"retry_initial_seconds": 0.01, "retry_max_seconds": 0.05, "attempts": 3}


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, API_KEY)


def engine_for(fake: FakeOpenAI, **options: Any):
    entry = {"engine": "openai", "base_url": fake.api_base, "api_key_env": KEY_ENV, **FAST}
    catalog = Catalog.from_dict({"gpt-image": {**entry, **options}})
    return load_engine(catalog["gpt-image"], Path()), catalog["gpt-image"]


def job(spec, ratio: str = "1:1", prompt: str = "a red kite over a beach", n: int = 0) -> Job:
    width, height = spec.size_for(ratio)
    return Job(task_id=f"task{n}", prompt=prompt, width=width, height=height, seed=1)


async def generate(engine, *jobs: Job) -> list:
    try:
        return await engine.generate(list(jobs), BatchMonitor())
    finally:
        await engine.close()


async def test_every_ratio_comes_back_at_the_spec_size(fake):
    engine, spec = engine_for(fake)
    jobs = [job(spec, ratio, n=i) for i, ratio in enumerate(RATIOS)]
    outcomes = await generate(engine, *jobs)
    for ratio, image, asked in zip(RATIOS, outcomes, jobs, strict=True):
        assert not isinstance(image, GenerationError), (ratio, image)
        assert image.size == (asked.width, asked.height), ratio
    assert {r.json()["size"] for r in fake.requests} == {"1024x1024", "1536x1024", "1024x1536"}
    bodies = [r.json() for r in fake.requests]
    assert all(b["model"] == "gpt-image-1" and b["n"] == 1 for b in bodies)


async def test_wide_ratios_ask_for_the_nearest_size(fake):
    engine, spec = engine_for(fake)
    await generate(engine, job(spec, "21:9"), job(spec, "9:21", n=1))
    assert sorted(r.json()["size"] for r in fake.requests) == ["1024x1536", "1536x1024"]


async def test_a_moderation_refusal_fails_that_task_with_code_1002(fake):
    engine, spec = engine_for(fake)
    good, blocked = job(spec), job(spec, prompt="something forbidden", n=1)
    image, refusal = await generate(engine, good, blocked)
    assert image.size == (1024, 1024)
    assert isinstance(refusal, GenerationError)
    assert "1002" in str(refusal) and "blocked" in str(refusal)
    assert len(fake.requests) == 2  # a refusal is not retried


async def test_a_rate_limit_is_retried_then_succeeds(fake):
    engine, spec = engine_for(fake)
    fake.fail_next(429)
    [image] = await generate(engine, job(spec))
    assert image.size == (1024, 1024)
    assert len(fake.requests) == 2


async def test_server_errors_exhaust_the_retries(fake):
    engine, spec = engine_for(fake)
    fake.fail_next(503, times=5)
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "not available" in str(failure) and "tried 3 times" in str(failure)
    assert len(fake.requests) == 3


async def test_a_client_error_is_not_retried(fake):
    engine, spec = engine_for(fake, sizes=["1000x1000"])
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "HTTP 400" in str(failure)
    assert len(fake.requests) == 1


async def test_a_timeout_fails_the_task_after_its_retries(fake):
    engine, spec = engine_for(fake, timeout_seconds=0.3, attempts=2)
    fake.stall_next(1.0, times=2)
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "did not answer" in str(failure)
    assert len(fake.requests) == 2


async def test_refused_credentials_never_show_the_key(fake, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-abcdefghijkl")
    engine, spec = engine_for(fake)
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "credentials" in str(failure)
    assert "sk-wrong" not in str(failure) and "ijkl" not in str(failure)
    assert len(fake.requests) == 1


async def test_requests_in_flight_stay_within_the_limit(fake):
    engine, spec = engine_for(fake, max_in_flight=2)
    fake.stall_next(0.2, times=6)
    outcomes = await generate(engine, *(job(spec, n=i) for i in range(6)))
    assert all(not isinstance(o, GenerationError) for o in outcomes)
    assert fake.most_in_flight == 2


def test_end_to_end_through_a_real_server(tmp_path, fake):
    catalog = f"""
[models."gpt-image"]
engine = "openai"
base_url = "{fake.api_base}"
api_key_env = "{KEY_ENV}"
max_batch = 2
"""
    with (
        serving(tmp_path / "darkroom", catalog, {KEY_ENV: API_KEY}) as darkroom,
        client_for(darkroom) as client,
    ):
        made = client.post(
            "/v1/media/create", json={"model": "gpt-image", "prompt": "a fox", "ar": "16:9"}
        ).json()
        blocked = client.post(
            "/v1/media/create", json={"model": "gpt-image", "prompt": "forbidden fox"}
        ).json()
        done = wait_for_status(client, made["id"])
        assert done["status"] == "done", done
        assert download(done["url"]).size == (1408, 768)
        failed = wait_for_status(client, blocked["id"])
        assert failed["status"] == "failed"
        assert "1002" in failed["message"]
        assert API_KEY not in darkroom.logs()


async def test_an_unreachable_server_fails_after_the_retries(fake):
    engine, spec = engine_for(fake, base_url=f"http://127.0.0.1:{free_port()}/v1")
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "could not be reached" in str(failure) and "tried 3 times" in str(failure)


async def test_a_canceled_task_costs_no_request(fake):
    engine, spec = engine_for(fake)
    monitor = BatchMonitor(canceled={"task1"})
    try:
        image, canceled = await engine.generate([job(spec), job(spec, n=1)], monitor)
    finally:
        await engine.close()
    assert image.size == (1024, 1024)
    assert isinstance(canceled, GenerationError) and str(canceled) == "canceled"
    assert len(fake.requests) == 1


async def test_a_content_policy_violation_is_a_refusal_too(fake):
    engine, spec = engine_for(fake)
    error = {"message": "Your request was rejected.", "type": "invalid_request_error"}
    fake.fail_next(
        400, payload={"error": {**error, "param": None, "code": "content_policy_violation"}}
    )
    [refusal] = await generate(engine, job(spec))
    assert isinstance(refusal, GenerationError)
    assert "blocked" in str(refusal) and "1002" in str(refusal)
    assert len(fake.requests) == 1


async def test_a_task_with_reference_images_is_an_edit_that_uploads_them(fake):
    engine, spec = engine_for(fake, quality="high", moderation="low")
    red, blue = Image.new("RGB", (40, 30), "red"), Image.new("RGB", (20, 20), "blue")
    edit = replace(job(spec, "16:9", prompt="make it night"), images=(red, blue))
    [image] = await generate(engine, edit)
    assert not isinstance(image, GenerationError), image
    assert image.size == (edit.width, edit.height)
    [request] = fake.requests
    assert request.path == "/v1/images/edits"
    [sent] = fake.edits
    assert sent.fields["prompt"] == "make it night" and sent.fields["model"] == "gpt-image-1"
    assert sent.fields["size"] == "1536x1024" and sent.fields["quality"] == "high"
    assert "moderation" not in sent.fields  # the edit endpoint has no such field
    uploaded = [Image.open(io.BytesIO(data)) for data in sent.images]
    assert [(i.format, i.size) for i in uploaded] == [("PNG", (40, 30)), ("PNG", (20, 20))]
    assert uploaded[0].convert("RGB").getpixel((0, 0)) == (255, 0, 0)


async def test_a_task_without_images_still_generates(fake):
    engine, spec = engine_for(fake)
    await generate(engine, job(spec))
    assert [r.path for r in fake.requests] == ["/v1/images/generations"] and not fake.edits


# -- a hostile provider: a decompression bomb ------------------------------------------------

# Past Pillow's own limit (its error was not caught: the task was retried as a server error),
# and past our cap yet under Pillow's limit (it would be decoded, some 150 MB).
BOMBS = [(100_000, 100_000), (7_000, 7_000)]


@pytest.mark.parametrize(("width", "height"), BOMBS)
async def test_a_decompression_bomb_fails_the_task_once_undecoded(width, height, fake):
    fake.image = bomb_png(width, height)
    engine, spec = engine_for(fake)
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    # Told from the header alone (by our count, or past twice its own limit by Pillow's at
    # open): decoding would have failed on the missing pixel data instead.
    assert str(failure).startswith("The image OpenAI returned is ")
    assert str(failure).endswith(" over the limit of 40,000,000 pixels.")
    assert len(fake.requests) == 1  # not retried


def test_a_decompression_bomb_fails_the_task_once_through_a_real_server(tmp_path, fake):
    fake.image = bomb_png()
    catalog = f"""
[models."gpt-image"]
engine = "openai"
base_url = "{fake.api_base}"
api_key_env = "{KEY_ENV}"
"""
    with (
        serving(tmp_path / "darkroom", catalog, {KEY_ENV: API_KEY}) as darkroom,
        client_for(darkroom) as client,
    ):
        made = client.post("/v1/media/create", json={"model": "gpt-image", "prompt": "a fox"})
        failed = wait_for_status(client, made.json()["id"], timeout=60)
        assert failed["status"] == "failed", failed
        assert "over the limit of 40,000,000 pixels" in failed["message"]
        assert "server error" not in failed["message"]
    assert len(fake.requests) == 1  # one attempt: the worker did not try it again
