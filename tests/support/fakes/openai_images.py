"""OpenAI's Images API as its API reference documents it: `POST /v1/images/generations` with
`Authorization: Bearer <key>` and a JSON body (`model`, `prompt`, `n`, `size`, ...), answered
`{"created": ..., "data": [{"b64_json": ...}], "usage": {...}}`; errors are
`{"error": {"message", "type", "param", "code"}}`, a refused prompt being HTTP 400 with code
`moderation_blocked`. gpt-image-1 draws 1024x1024, 1536x1024 and 1024x1536 (or `auto`).

`POST /v1/images/edits` takes the same fields as a multipart form, the images as files named
`image[]` (one file may be named `image`), up to 16 PNG, WebP or JPEG files; each edit is
recorded in `edits` (its fields and the images' bytes) and answered like a generation. A hostile
answer sets `image` (the bytes every answer carries instead of a drawn picture)."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.fakes.base import Answer, FakeServer, Request, png

API_KEY = "sk-test-fake-openai-key-0123456789"
SIZES = {"gpt-image-1": {"1024x1024", "1536x1024", "1024x1536", "auto"}}
BLOCKED_WORD = "forbidden"


MAX_EDIT_IMAGES = 16
IMAGE_TYPES = {"image/png", "image/webp", "image/jpeg"}


@dataclass
class Edit:
    fields: dict[str, str]
    images: list[bytes] = field(default_factory=list)


class FakeOpenAI(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.edits: list[Edit] = []
        self.image: bytes | None = None

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    def error(self, status: int) -> Any:
        kinds = {429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}
        return _error(f"fake error {status}", kinds.get(status, "invalid_request_error"))

    def answer(self, request: Request) -> Answer:
        paths = ("/v1/images/generations", "/v1/images/edits")
        if request.method != "POST" or request.path not in paths:
            return Answer.json(404, _error("Invalid URL", "invalid_request_error"))
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            key = request.headers.get("authorization", "")[-4:]
            return Answer.json(
                401,
                _error(
                    f"Incorrect API key provided: {request.headers.get('authorization')}. "
                    f"(ends in {key})",
                    "invalid_request_error",
                    code="invalid_api_key",
                ),
            )
        if request.path == "/v1/images/edits":
            edit = _edit_form(request)
            if isinstance(edit, Answer):
                return edit
            self.edits.append(edit)
            body: dict[str, Any] = dict(edit.fields)
        else:
            body = request.json()
        model, size = body.get("model"), body.get("size", "auto")
        if model not in SIZES:
            return Answer.json(
                404,
                _error(
                    f"The model '{model}' does not exist",
                    "invalid_request_error",
                    code="model_not_found",
                ),
            )
        if size not in SIZES[model]:
            return Answer.json(
                400,
                _error(
                    f"Invalid value: '{size}'.",
                    "invalid_request_error",
                    param="size",
                    code="invalid_value",
                ),
            )
        if BLOCKED_WORD in body.get("prompt", ""):
            return Answer.json(
                400,
                _error(
                    "Your request was rejected as a result of our safety system.",
                    "image_generation_user_error",
                    code="moderation_blocked",
                ),
            )
        width, height = (1024, 1024) if size == "auto" else map(int, size.split("x"))
        image = base64.b64encode(self.image or png(width, height)).decode()
        return Answer.json(
            200,
            {
                "created": int(time.time()),
                "data": [{"b64_json": image}] * int(body.get("n", 1)),
                "usage": {"input_tokens": 10, "output_tokens": 4160, "total_tokens": 4170},
            },
        )


def _error(message: str, kind: str, *, param: str | None = None, code: str | None = None) -> Any:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _edit_form(request: Request) -> Edit | Answer:
    """The multipart form of an edit, or OpenAI's answer to a malformed one."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return Answer.json(400, _error("Expected a multipart form", "invalid_request_error"))
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body
    )
    edit = Edit({})
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if name in ("image", "image[]"):
            if part.get_content_type() not in IMAGE_TYPES:
                return Answer.json(400, _error("Invalid image file", "invalid_request_error"))
            edit.images.append(data)
        else:
            edit.fields[str(name)] = data.decode()
    if not edit.images or len(edit.images) > MAX_EDIT_IMAGES:
        message_text = f"Expected 1 to {MAX_EDIT_IMAGES} images, got {len(edit.images)}."
        return Answer.json(400, _error(message_text, "invalid_request_error", param="image"))
    edit.fields["n"] = edit.fields.get("n", "1")
    return edit
