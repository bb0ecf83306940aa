"""The bodies of /v1/images/generations (JSON) and /v1/images/edits (multipart), read into one
`ImageOrder`, and turned into the media API's create body, which is then checked exactly as
/v1/media/create checks it (prompt, model, ratio, images, content policy).

How OpenAI's fields map onto a task:
- `size` (`WxH` or `auto`) picks the model's nearest ratio (darkroom.engines.sizes); the image
  comes at the model's own size for that ratio. `auto` is the model's default ratio, or, for an
  edit, the ratio nearest the first image's.
- an edit's files become `data:` URLs in `images`, the media API's own form for uploaded
  pictures: the worker reads them like any other reference image (worker/references.py).
- `quality`, `style`, `moderation`, `user`, `input_fidelity` and `partial_images` are checked
  and not used (docs/openai.md says why); `background: transparent`, `stream: true` and the
  formats Darkroom cannot write are refused, rather than answered with something else.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Request
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from darkroom.api.openai.errors import invalid, model_not_found
from darkroom.api.requests import Choices, CreateRequest, parse_create
from darkroom.engines import Catalog, ModelSpec
from darkroom.engines.sizes import nearest_ratio
from darkroom.keys import ApiKey

MAX_IMAGES_PER_REQUEST = 10  # OpenAI's own bound on `n`
_SIZE = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")
# Form fields an edit may repeat: the SDKs send a list of files as `image[]`.
IMAGE_FIELDS = ("image", "image[]")


# Every `quality` OpenAI's models take (gpt-image's, then DALL-E 3's); none changes the image.
Quality = Literal["auto", "low", "medium", "high", "xhigh", "max", "standard", "hd"]


class ImageOrder(BaseModel):
    """What an OpenAI images request asks for. Unknown fields are ignored (newer SDKs send
    more), as the media API ignores them."""

    model_config = ConfigDict(extra="ignore")

    prompt: StrictStr
    model: StrictStr | None = None
    n: int | None = Field(None, ge=1, le=MAX_IMAGES_PER_REQUEST)
    size: StrictStr | None = None
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = None
    output_compression: int | None = Field(None, ge=0, le=100)
    quality: Quality | None = None
    background: Literal["auto", "opaque"] | None = None
    style: Literal["vivid", "natural"] | None = None
    moderation: Literal["low", "auto"] | None = None
    input_fidelity: Literal["low", "high"] | None = None
    stream: bool | None = None
    partial_images: int | None = Field(None, ge=0, le=3)
    user: StrictStr | None = None

    @property
    def count(self) -> int:
        return self.n or 1


# Why a value is refused, for the fields whose refused values Darkroom knows it cannot serve.
UNSUPPORTED = {
    "background": "Darkroom's models make opaque images; background `transparent` is not "
    "supported (send `auto` or `opaque`).",
    "stream": "Streaming (partial images) is not supported; leave out `stream`.",
    "output_format": "Darkroom writes png, jpeg or webp.",
}


def parse_order(data: dict[str, Any]) -> ImageOrder:
    """The order, or a 400 naming the first field that is wrong."""
    try:
        order = ImageOrder.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        reason = UNSUPPORTED.get(param or "", "")
        raise invalid(f"{param}: {first['msg']}. {reason}".strip(), param) from exc
    if order.stream:
        raise invalid(UNSUPPORTED["stream"], "stream")
    return order


def model_for(catalog: Catalog, key: ApiKey, order: ImageOrder, *, edit: bool = False) -> ModelSpec:
    """The model asked for, or the key's first image model (that takes images, for an edit),
    since OpenAI's SDKs may leave `model` out; an unknown model and one the key may not use are
    both 404, as OpenAI answers them. A video or audio model is a 400 that sends the client to
    the media API: these routes answer images only."""
    if order.model is None:
        usable = [
            model_id
            for model_id in image_models(catalog, key)
            if catalog[model_id].takes_images or not edit
        ]
        if not usable:
            raise invalid("This API key may not use any image model.", "model")
        return catalog[usable[0]]
    if order.model not in catalog or not key.may_use(order.model):
        raise model_not_found(order.model)
    spec = catalog[order.model]
    if spec.kind != "image":
        raise invalid(not_an_image_model(spec), "model")
    return spec


def image_models(catalog: Catalog, key: ApiKey) -> list[str]:
    """The models of the key's that these routes serve: those that make images."""
    return [
        model_id
        for model_id in catalog.ids()
        if key.may_use(model_id) and catalog[model_id].kind == "image"
    ]


def not_an_image_model(spec: ModelSpec) -> str:
    return (
        f"The model `{spec.id}` makes {spec.kind}, not images: OpenAI's Images API serves "
        "image models only. Use POST /v1/media/create (and /v1/media/result) for it."
    )


def ratio_for(spec: ModelSpec, size: str | None, first_image: Image.Image | None) -> str | None:
    """The model's ratio nearest the size asked for; None (the model's default) for `auto`,
    unless an edit's first image gives the shape."""
    if size is None or size == "auto":
        if first_image is None:
            return None
        return nearest_ratio(*first_image.size, spec.ratios)
    match = _SIZE.match(size)
    if match is None:
        message = f"size must be WIDTHxHEIGHT (such as 1024x1024) or auto; got {size[:40]!r}."
        raise invalid(message, "size")
    return nearest_ratio(int(match[1]), int(match[2]), spec.ratios)


def create_body(
    order: ImageOrder, spec: ModelSpec, choices: Choices, ar: str | None, images: list[str]
) -> CreateRequest:
    """The media API's create body for this order, checked as create checks it."""
    data: dict[str, Any] = {"model": spec.id, "prompt": order.prompt}
    if ar is not None:
        data["ar"] = ar
    if images:
        data["images"] = images
    return parse_create(data, choices)


# -- edits: the multipart form --------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One uploaded picture: its bytes as a data: URL, and its header (size, format)."""

    data_url: str
    image: Image.Image


async def read_form(request: Request, max_bytes: int) -> FormData:
    """The multipart form, its whole body capped at `max_bytes` (the same cap as JSON bodies)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise invalid("Send the edit as multipart/form-data with the image files.", None)
    parser = MultiPartParser(
        request.headers, _capped(request, max_bytes), max_files=2 * MAX_IMAGES_PER_REQUEST
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise invalid(f"The multipart body cannot be read: {exc.message}", None) from exc


async def _capped(request: Request, max_bytes: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > max_bytes:
            raise invalid(f"The request body is larger than the limit of {max_bytes} bytes.", None)
        yield chunk


def form_fields(form: FormData) -> dict[str, Any]:
    """The form's text fields (files left out), as an order reads them."""
    return {
        name: value
        for name, value in form.multi_items()
        if isinstance(value, str) and name not in (*IMAGE_FIELDS, "mask")
    }


async def uploads(form: FormData) -> list[Upload]:
    """The `image` (or `image[]`) files, each checked to be a picture; a `mask`, if sent, is
    checked too and then left out (docs/openai.md, "Masks")."""
    files = [
        value
        for name, value in form.multi_items()
        if name in IMAGE_FIELDS and isinstance(value, UploadFile)
    ]
    if not files:
        raise invalid("image: send one or more image files.", "image")
    mask = form.get("mask")
    if isinstance(mask, UploadFile):
        await _upload(mask, "mask")
    return [await _upload(file, f"image[{index}]") for index, file in enumerate(files)]


async def _upload(file: UploadFile, what: str) -> Upload:
    data = await file.read()
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only: the worker decodes it
    except Image.DecompressionBombError as exc:
        raise invalid(f"{what} has too many pixels to be read.", what) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise invalid(f"{what} is not a PNG, JPEG or WebP image.", what) from exc
    mime = Image.MIME.get(image.format or "", "")
    if not mime.startswith("image/"):
        raise invalid(f"{what} is not a PNG, JPEG or WebP image.", what)
    return Upload(f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", image)
