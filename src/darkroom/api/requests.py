"""Reading request bodies and turning every problem into code 3 with zod's `issues`.

Bodies are read by hand rather than by FastAPI's body parameters so that a wrong content type,
an oversized body or malformed JSON are answered in the spec's envelope, with words a person
can act on. Pydantic checks the fields' types; the values (a prompt's length after trimming, a
model id, an aspect ratio) are checked here against the request's `Choices`, and every problem
found is answered at once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from fastapi import Request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from darkroom.api.issues import (
    Issue,
    custom,
    from_pydantic,
    invalid,
    too_big,
    too_small,
    unknown_value,
    wrong_type,
)
from darkroom.engines.catalog import MAX_PROMPT
from darkroom.errors import InvalidRequest
from darkroom.fetch import Fetcher, FetchFailed
from darkroom.ids import is_task_id
from darkroom.webhooks.target import callback_problem

# Checks the form of data: URLs at create (no fetching: the worker reads every image).
DATA_URLS = Fetcher()

MAX_SEED = 2**32 - 1

# zod's type of each field, for the issue of a missing one.
TYPES = {"model": "string", "prompt": "string", "task_id": "string"}

# The fields read in place of another when it is absent (spec "Create").
ALIASES = {"ar": "aspect_ratio", "images": "image"}


@dataclass(frozen=True)
class Choices:
    """The fixed sets a create request's values are checked against: the model ids the key may
    use (the `options` of `model`), and the ratios of every model served (a model not in it is
    unknown; one in it that the key may not use is left to code 7); and the models' own caps
    on the prompt's length, where lower than the spec's 4,000."""

    models: Sequence[str]
    ratios: Mapping[str, Sequence[str]]
    max_prompts: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def ratios_for(self, model: Any) -> Sequence[str] | None:
        return self.ratios.get(model) if isinstance(model, str) else None

    def max_prompt_for(self, model: Any) -> int:
        return self.max_prompts.get(model, MAX_PROMPT) if isinstance(model, str) else MAX_PROMPT


class CreateRequest(BaseModel):
    """Body of POST /v1/media/create. Unknown fields are ignored, as the hosted service does.
    After validation `ar` and `images` hold what the client meant, whichever name it used."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr = Field(description="A model id this server serves")
    prompt: StrictStr = Field(description="1 to 4,000 characters after trimming")
    ar: StrictStr | None = Field(None, description="Aspect ratio, e.g. 1:1, 16:9, 9:21")
    aspect_ratio: StrictStr | None = Field(None, description="Read as `ar` when `ar` is absent")
    images: list[StrictStr] | None = Field(None, description="Reference image URLs")
    image: StrictStr | None = Field(None, description="One reference image: `images: [image]`")
    seed: StrictInt | None = Field(None, ge=0, le=MAX_SEED, description="Extension: fixed seed")
    negative_prompt: StrictStr | None = Field(
        None, max_length=MAX_PROMPT, description="Extension: what to keep out of the image"
    )
    callback_url: StrictStr | None = Field(
        None, description="Extension: an http(s) URL the task's end is posted to (webhooks)"
    )
    _aliased: set[str] = PrivateAttr(default_factory=set)

    @model_validator(mode="after")
    def _read_aliases(self) -> CreateRequest:
        for field, alias in ALIASES.items():
            value = getattr(self, alias)
            if getattr(self, field) is None and value is not None:
                setattr(self, field, [value] if field == "images" else value)
                self._aliased.add(field)
        return self

    def sent_as(self, field: str) -> str:
        """The name the client sent this field's value under (an alias, or its own)."""
        return ALIASES[field] if field in self._aliased else field


class ResultRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task_id: StrictStr = Field(description="The id returned by /v1/media/create")


async def read_json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """The JSON object in the body; {} for an empty body."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit():
        raise _body_problem("The Content-Length header is not a number.")
    if int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(max_bytes)
    if not body.strip():
        return {}
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type != "application/json" and not media_type.endswith("+json"):
        raise _body_problem(
            f"Send the body as JSON with the header Content-Type: application/json "
            f"(this request said {media_type})."
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _body_problem(f"The request body is not valid JSON: {exc}.") from exc
    except RecursionError as exc:
        raise _body_problem("The request body nests JSON too deeply.") from exc
    if not isinstance(data, dict):
        raise invalid([wrong_type([], "object", data)])
    return data


def _too_large(max_bytes: int) -> InvalidRequest:
    return _body_problem(f"The request body is larger than the limit of {max_bytes} bytes.")


def _body_problem(message: str) -> InvalidRequest:
    return invalid([custom([], message)])


def parse_create(data: dict[str, Any], choices: Choices) -> CreateRequest:
    """The request, or code 3 with every problem: wrong types, then the values of the fields
    whose type is right (prompt, model, ratio, image links)."""
    ratios = choices.ratios_for(data.get("model"))
    options = {"model": choices.models, "ar": ratios or [], "aspect_ratio": ratios or []}
    try:
        request = CreateRequest.model_validate(data)
    except ValidationError as exc:
        problems = from_pydantic(exc.errors(include_url=False), TYPES, options)
        raise invalid(problems + _value_issues(data, choices)) from exc
    problems = _value_issues(data, choices)
    if problems:
        raise invalid(problems)
    return request


def _value_issues(data: Mapping[str, Any], choices: Choices) -> list[Issue]:
    """The problems of the prompt, the model, the ratio and the image links, where each has the
    right type."""
    return [
        *_prompt_issues(data.get("prompt"), choices.max_prompt_for(data.get("model"))),
        *_choice_issues(data, choices),
        *_image_issues(data),
        *_callback_issues(data.get("callback_url")),
    ]


def _prompt_issues(prompt: Any, max_prompt: int) -> list[Issue]:
    """A prompt that cannot be stored, or whose length after trimming is not from 1 to the
    model's cap (the spec's 4,000, or the model's lower one)."""
    if not isinstance(prompt, str):
        return []
    if not _storable(prompt):
        message = "prompt must be text without NUL characters (\\u0000) or lone surrogates"
        return [custom(["prompt"], message)]
    length = len(prompt.strip())
    if length < 1:
        return [too_small(["prompt"], "string", 1)]
    if length > max_prompt:
        return [too_big(["prompt"], "string", max_prompt)]
    return []


def _choice_issues(data: Mapping[str, Any], choices: Choices) -> list[Issue]:
    """An unknown model, or a ratio the model lacks (under the name the client sent it)."""
    model = data.get("model")
    ratios = choices.ratios_for(model)
    if isinstance(model, str) and ratios is None:
        return [unknown_value(["model"], choices.models, model[:100])]
    field = "ar" if data.get("ar") is not None else "aspect_ratio"
    ratio = data.get(field)
    if ratios is not None and isinstance(ratio, str) and ratio not in ratios:
        return [unknown_value([field], ratios, ratio[:20])]
    return []


def _image_issues(data: Mapping[str, Any]) -> list[Issue]:
    """Image links that are not http(s) URLs, at the path the client sent them under."""
    images = data.get("images")
    sent: list[tuple[list[str | int], Any]] = []
    if images is None:
        sent = [(["image"], data.get("image"))]
    elif isinstance(images, list):
        sent = [(["images", i], url) for i, url in enumerate(images)]
    found = []
    for path, url in sent:
        problem = _image_problem(url, ".".join(map(str, path))) if isinstance(url, str) else None
        if problem:
            found.append(custom(path, problem))
    return found


def _image_problem(url: str, field: str) -> str | None:
    """Why a reference image cannot be used, judged by its form alone: an http(s) URL, or a
    base64 `data:` URL of an image type (what it holds is read, and judged, by the worker)."""
    if url[:5].lower() == "data:":
        try:
            DATA_URLS.decode_data_url(url, what=field)
        except FetchFailed as refused:
            return str(refused)
        return None
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return None
    return f"{url[:100]!r} is not an http(s) URL or a data:image/...;base64, URL"


def _callback_issues(url: Any) -> list[Issue]:
    """A callback URL that could never be posted to (its address is judged when posting); an
    empty one is taken as none, as an unset form field often arrives."""
    problem = callback_problem(url) if isinstance(url, str) and url else None
    return [custom(["callback_url"], problem)] if problem else []


def _storable(text: str) -> bool:
    """Whether the database can keep this text as it is: JSON may carry a NUL (which
    PostgreSQL's text refuses) or half of a surrogate pair (which is not UTF-8 at all)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_task_id(query: dict[str, str], body: dict[str, Any]) -> str:
    """task_id from the query string or the JSON body (both methods accept both)."""
    data = {"task_id": query["task_id"]} if "task_id" in query else body
    try:
        task_id = ResultRequest.model_validate(data).task_id
    except ValidationError as exc:
        raise invalid(from_pydantic(exc.errors(include_url=False), TYPES, {})) from exc
    if not is_task_id(task_id):
        message = (
            f"task_id must be the 24 lowercase hexadecimal characters that /v1/media/create "
            f"returned; got {task_id[:40]!r}"
        )
        raise invalid([custom(["task_id"], message)])
    return task_id
