"""Reading request bodies and turning every problem into code 3 with `issues`.

Bodies are read by hand rather than by FastAPI's body parameters so that a wrong content type,
an oversized body or malformed JSON are answered in the spec's envelope, with words a person
can act on.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from darkroom.api.errors import Issue, invalid, issue
from darkroom.errors import InvalidRequest
from darkroom.ids import is_task_id

MAX_PROMPT = 4000
MAX_SEED = 2**32 - 1

# What each field must be, in the words the `expected` of an issue carries.
EXPECTED = {
    "model": "string: a model id",
    "prompt": f"string of 1 to {MAX_PROMPT} characters",
    "ar": "string: an aspect ratio such as 1:1",
    "images": "array of http(s) URLs",
    "seed": f"integer from 0 to {MAX_SEED}",
    "negative_prompt": f"string of at most {MAX_PROMPT} characters",
    "task_id": "string of 24 hexadecimal characters",
}


class CreateRequest(BaseModel):
    """Body of POST /v1/media/create. Unknown fields are ignored, as the hosted service does."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr = Field(description="A model id this server serves")
    prompt: StrictStr = Field(description="1 to 4,000 characters after trimming")
    ar: StrictStr | None = Field(None, description="Aspect ratio, e.g. 1:1, 16:9, 9:21")
    images: list[StrictStr] | None = Field(None, description="Reference image URLs")
    seed: StrictInt | None = Field(None, ge=0, le=MAX_SEED, description="Extension: fixed seed")
    negative_prompt: StrictStr | None = Field(
        None, max_length=MAX_PROMPT, description="Extension: what to keep out of the image"
    )


class ResultRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task_id: StrictStr = Field(description="The id returned by /v1/media/create")


async def read_json_body(request: Request, max_bytes: int) -> dict[str, Any]:
    """The JSON object in the body; {} for an empty body."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit():
        raise InvalidRequest("The Content-Length header is not a number.")
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
        raise InvalidRequest(
            f"Send the body as JSON with the header Content-Type: application/json "
            f"(this request said {media_type})."
        )
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}.") from exc
    except RecursionError as exc:
        raise InvalidRequest("The request body nests JSON too deeply.") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return data


def _too_large(max_bytes: int) -> InvalidRequest:
    return InvalidRequest(f"The request body is larger than the limit of {max_bytes} bytes.")


def parse_create(data: dict[str, Any]) -> CreateRequest:
    try:
        request = CreateRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid(_issues(exc)) from exc
    problems = []
    if not 1 <= len(request.prompt.strip()) <= MAX_PROMPT:
        problems.append(
            issue(
                ["prompt"],
                EXPECTED["prompt"],
                f"prompt must be 1 to {MAX_PROMPT} characters after trimming spaces; "
                f"it has {len(request.prompt.strip())}",
            )
        )
    if not _storable(request.prompt):
        message = "prompt must be text without NUL characters (\\u0000) or lone surrogates"
        problems.append(issue(["prompt"], EXPECTED["prompt"], message))
    for index, url in enumerate(request.images or []):
        if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
            problems.append(
                issue(["images", index], "an http(s) URL", f"{url[:100]!r} is not an http(s) URL")
            )
    if problems:
        raise invalid(problems)
    return request


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
        raise invalid(_issues(exc)) from exc
    if not is_task_id(task_id):
        raise invalid(
            [
                issue(
                    ["task_id"],
                    EXPECTED["task_id"],
                    f"task_id must be the 24 lowercase hexadecimal characters that "
                    f"/v1/media/create returned; got {task_id[:40]!r}",
                )
            ]
        )
    return task_id


def _issues(exc: ValidationError) -> list[Issue]:
    found = []
    for error in exc.errors(include_url=False):
        path = list(error["loc"])
        field = str(path[0]) if path else ""
        message = error["msg"]
        if error["type"] == "missing":
            message = f"{field} is required"
        elif path:
            message = f"{'.'.join(map(str, path))}: {message}"
        found.append(issue(path, EXPECTED.get(field, error["type"]), message))
    return found
