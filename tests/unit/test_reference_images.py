"""The worker reads each task's reference images before its batch is generated: `data:` URLs
decoded, links to its own storage read from storage, anything else through the guarded fetcher.
An image that cannot be had fails its own task alone, at once, naming the image, and refunds
it; the rest of the batch is generated. An edit model draws at its reference's ratio."""

from __future__ import annotations

import base64
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from darkroom.engines import Job
from darkroom.fetch import Fetcher
from darkroom.keys import KeyStore
from darkroom.tasks import Task, TaskParams, TaskStatus
from darkroom.testing import function_model, solid_image
from tests.support.inprocess import Queue, in_process_queue


def data_url(image: Image.Image, kind: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, kind)
    return f"data:image/{kind.lower()};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def bomb_url() -> str:
    """A PNG of a few hundred kB that claims 20000 x 20000 pixels (1.2 GB decoded)."""
    return data_url(Image.new("1", (20_000, 20_000)))


seen: dict[str, Job] = {}


def recording(job: Job) -> Image.Image:
    seen[job.task_id] = job
    return solid_image(job)


@pytest.fixture
async def queue(tmp_path: Path) -> Any:
    seen.clear()
    models = [
        function_model("edit", recording, max_batch=4, max_images=2),
        function_model("shaped", recording, max_images=1, images_override_ar=True, native_size=512),
    ]
    async with in_process_queue(tmp_path, *models) as queue:
        yield queue


async def add(
    queue: Queue, index: int, images: list[str], model: str = "edit", size: int = 64
) -> Task:
    params = TaskParams(seed=index, images=tuple(images))
    return await queue.add(index, model, size=size, params=params)


async def credits(queue: Queue) -> Decimal | None:
    [key] = [k for k in await KeyStore(queue.db).list() if k.id == queue.key.id]
    return key.balance


async def test_a_data_url_reaches_the_engine_as_a_decoded_picture(queue: Queue) -> None:
    task = await add(queue, 1, [data_url(Image.new("RGB", (40, 30), "red"))])
    async with queue.worker():
        assert (await queue.finished(task.id)).status is TaskStatus.DONE
    [image] = seen[task.id].images
    assert image.size == (40, 30) and image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 0, 0)


async def test_a_link_to_a_stored_file_is_read_from_storage_not_fetched(queue: Queue) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(buffer, "WEBP", lossless=True)
    await queue.storage.put("exp1h/earlier_result.webp", buffer.getvalue(), "image/webp")
    link = queue.storage.url("exp1h/earlier_result.webp", 4e9)  # storage.test: no such host
    task = await add(queue, 1, [link])
    async with queue.worker(fetcher=Fetcher(allow_private=False)):
        assert (await queue.finished(task.id)).status is TaskStatus.DONE
    assert seen[task.id].images[0].getpixel((0, 0)) == (0, 0, 255)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/ref.png", "images[1] at 127.0.0.1 is not allowed"),
        ("data:image/png;base64," + base64.b64encode(b"not a png").decode(), "images[1] at a data"),
        ("data:text/plain;base64,aGVsbG8=", "images[1] is a data: URL of text/plain"),
        (bomb_url(), "images[1] at a data: URL is over the limit of 40,000,000 pixels"),
    ],
    ids=["private address", "not an image", "not an image type", "decompression bomb"],
)
async def test_an_image_that_cannot_be_had_fails_its_task_alone_and_refunds_it(
    queue: Queue, url: str, reason: str
) -> None:
    good = data_url(Image.new("RGB", (8, 8), "green"))
    before = await credits(queue)
    bad, fine = await add(queue, 1, [good, url]), await add(queue, 2, [good])
    async with queue.worker(fetcher=Fetcher(allow_private=False)):
        failed, done = await queue.finished(bad.id), await queue.finished(fine.id)
    assert failed.status is TaskStatus.FAILED and failed.attempt == 1  # no retry
    assert failed.message is not None and failed.message.startswith(reason), failed.message
    assert done.status is TaskStatus.DONE and bad.id not in seen
    assert await credits(queue) == (before - 1 if before is not None else None)


async def test_an_unreachable_image_fails_its_task_naming_the_host(queue: Queue) -> None:
    task = await add(queue, 1, ["http://127.0.0.1:9/ref.png"])  # nothing listens on port 9
    async with queue.worker(fetcher=Fetcher(allow_private=True)):
        failed = await queue.finished(task.id)
    assert failed.status is TaskStatus.FAILED and failed.attempt == 1
    assert failed.message == "images[0] at 127.0.0.1 could not be fetched: no answer."


async def test_an_edit_of_a_shaping_model_takes_the_ratio_nearest_its_image(queue: Queue) -> None:
    wide = await add(queue, 1, [data_url(Image.new("RGB", (1600, 900)))], "shaped", 512)
    plain = await add(queue, 2, [], "shaped", 512)
    async with queue.worker():
        await queue.finished(wide.id), await queue.finished(plain.id)
    assert (seen[wide.id].width, seen[wide.id].height) == (704, 384)  # 16:9 at 512
    assert (seen[plain.id].width, seen[plain.id].height) == (512, 512)  # the task's own
