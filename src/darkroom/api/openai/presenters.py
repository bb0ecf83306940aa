"""The OpenAI answers: `ImagesResponse` for generations and edits, the model list.

An image is given as `url`, the task's signed link (the stored WebP, valid for the retention
period, as /v1/media/result gives it), or as `b64_json`, the file in the `output_format` asked
for (PNG by default, as OpenAI's). A request that names no `response_format` gets both: older
programs (DALL-E's) read `url`, newer ones (gpt-image-1's, whose answers are always base64) read
`b64_json`, and neither sends the field.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time

from PIL import Image as PILImage
from pydantic import BaseModel

from darkroom.api.openai.requests import ImageOrder
from darkroom.api.presenters import TaskObject
from darkroom.app import App
from darkroom.errors import InternalError
from darkroom.images import WEBP_QUALITY
from darkroom.tasks import Task, TaskStatus

PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


class Image(BaseModel):
    url: str | None = None
    b64_json: str | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[Image]
    output_format: str | None = None


class Model(BaseModel):
    id: str
    object: str = "model"
    created: int = 0  # the catalog does not know when a model was made
    owned_by: str = "darkroom"


class ModelList(BaseModel):
    object: str = "list"
    data: list[Model]


async def images_response(app: App, tasks: list[Task], order: ImageOrder) -> ImagesResponse:
    """The answer for tasks that have ended. The images that were made are given (and paid
    for); failed tasks were refunded, and if none was made the answer is their error."""
    done = [task for task in tasks if task.status is TaskStatus.DONE]
    if not done:
        raise InternalError(tasks[0].message or "The image could not be made.")
    fmt = order.output_format or "png"
    data = [await _image(app, task, order, fmt) for task in done]
    wants_file = order.response_format != "url"
    return ImagesResponse(
        created=int(time.time()), data=data, output_format=fmt if wants_file else None
    )


async def _image(app: App, task: Task, order: ImageOrder, fmt: str) -> Image:
    image = Image()
    if order.response_format in (None, "url"):
        image.url = TaskObject.of(task, app.storage, app.settings.retention_seconds).url
    if order.response_format in (None, "b64_json"):
        stored = await app.storage.get(task.result_key) if task.result_key else None
        if stored is None:  # deleted between the task's end and this read
            raise InternalError(f"The result of task {task.id} could not be read back.")
        encoded = await asyncio.to_thread(_encoded, stored, fmt, order.output_compression)
        image.b64_json = base64.b64encode(encoded).decode("ascii")
    return image


def _encoded(stored: bytes, fmt: str, compression: int | None) -> bytes:
    """The stored WebP in the format asked for; as stored when that is WebP at our quality."""
    if fmt == "webp" and compression is None:
        return stored
    picture = PILImage.open(io.BytesIO(stored))
    if fmt == "jpeg" and picture.mode != "RGB":
        picture = picture.convert("RGB")
    buffer = io.BytesIO()
    quality = WEBP_QUALITY if compression is None else compression
    options = {} if fmt == "png" else {"quality": quality}
    picture.save(buffer, format=PIL_FORMATS[fmt], **options)
    return buffer.getvalue()


def model_list(ids: list[str]) -> ModelList:
    return ModelList(data=[Model(id=model_id) for model_id in ids])
