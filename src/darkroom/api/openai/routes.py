"""OpenAI's Images API on Darkroom's queue: POST /v1/images/generations, POST
/v1/images/edits, GET /v1/models and /v1/models/{model}, for the official SDKs unchanged.

Each request goes the media API's way: the same keys (api/auth.py), the same create checks and
charge per image, the same queue, batching, workers and storage; only the answer's shape (and
its errors', errors.py) is OpenAI's. Any other path or method under /v1/images/ and /v1/models
is a 404 in OpenAI's shape (variations among them: docs/openai.md).

Video and audio models are the media API's alone: generations and edits refuse them with a 400
that names /v1/media/create, and /v1/models lists only the image models (retrieving another is
a 404 that says what it makes), so that every model listed here works here.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from darkroom.api.deps import CurrentApp
from darkroom.api.media import AuthorizedKey, _body_doc, _choices
from darkroom.api.openai import requests
from darkroom.api.openai.batch import accept_tasks, wait_for_all
from darkroom.api.openai.errors import (
    ERROR_RESPONSES,
    OpenAIError,
    OpenAIRoute,
    model_not_found,
)
from darkroom.api.openai.presenters import ImagesResponse, Model, ModelList, images_response
from darkroom.api.openai.presenters import model_list as listed
from darkroom.api.requests import CreateRequest, read_json_body
from darkroom.app import App
from darkroom.engines import ModelSpec
from darkroom.keys import ApiKey

router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)
ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.post(
    "/images/generations",
    openapi_extra=_body_doc(requests.ImageOrder),
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
)
async def generations(request: Request, app: CurrentApp, key: AuthorizedKey) -> ImagesResponse:
    """Makes `n` images of a prompt, and answers when all have ended."""
    order = requests.parse_order(await read_json_body(request, app.settings.max_body_bytes))
    spec = requests.model_for(app.catalog, key, order)
    ar = requests.ratio_for(spec, order.size, None)
    body = requests.create_body(order, spec, _choices(app, key), ar, [])
    return await _made(request, app, key, order, spec, body)


@router.post("/images/edits", response_model_exclude_none=True, responses=ERROR_RESPONSES)
async def edits(request: Request, app: CurrentApp, key: AuthorizedKey) -> ImagesResponse:
    """Makes `n` images of a prompt from one or more uploaded images (the model's reference
    images), and answers when all have ended."""
    form = await requests.read_form(request, app.settings.max_body_bytes)
    try:
        order = requests.parse_order(requests.form_fields(form))
        pictures = await requests.uploads(form)
    finally:
        await form.close()  # the uploaded files' spooled copies: their bytes are read
    spec = requests.model_for(app.catalog, key, order, edit=True)
    ar = requests.ratio_for(spec, order.size, pictures[0].image)
    images = [picture.data_url for picture in pictures]
    body = requests.create_body(order, spec, _choices(app, key), ar, images)
    return await _made(request, app, key, order, spec, body)


async def _made(
    request: Request,
    app: App,
    key: ApiKey,
    order: requests.ImageOrder,
    spec: ModelSpec,
    body: CreateRequest,
) -> ImagesResponse:
    tasks = await accept_tasks(app, key, spec, body, order.count)
    ended = await wait_for_all(request, app, tasks)
    return await images_response(app, ended, order)


@router.get("/models", responses=ERROR_RESPONSES)
async def models(app: CurrentApp, key: AuthorizedKey) -> ModelList:
    """The models this key may use, in OpenAI's list shape."""
    return listed(requests.image_models(app.catalog, key))


@router.get("/models/{model_id:path}", responses=ERROR_RESPONSES)
async def model(model_id: str, app: CurrentApp, key: AuthorizedKey) -> Model:
    if model_id not in app.catalog or not key.may_use(model_id):
        raise model_not_found(model_id)
    spec = app.catalog[model_id]
    if spec.kind != "image":
        raise OpenAIError(
            404, requests.not_an_image_model(spec), param="model", code="model_not_found"
        )
    return Model(id=model_id)


@router.api_route("/images/{rest:path}", methods=ALL_METHODS, include_in_schema=False)
@router.api_route("/models/{rest:path}", methods=ALL_METHODS, include_in_schema=False)
@router.api_route("/models", methods=ALL_METHODS, include_in_schema=False)
async def unknown(request: Request) -> None:
    """Paths and methods of OpenAI's API that Darkroom does not serve (variations, ...)."""
    method = f"{request.method} {request.url.path}"
    raise OpenAIError(404, f"Darkroom does not serve {method}.", code="unknown_url")
