"""OpenAI's Images API as its API reference documents it: `POST /v1/images/generations` with
`Authorization: Bearer <key>` and a JSON body (`model`, `prompt`, `n`, `size`, ...), answered
`{"created": ..., "data": [{"b64_json": ...}], "usage": {...}}`; errors are
`{"error": {"message", "type", "param", "code"}}`, a refused prompt being HTTP 400 with code
`moderation_blocked`. gpt-image-1 draws 1024x1024, 1536x1024 and 1024x1536 (or `auto`)."""

from __future__ import annotations

import base64
import time
from typing import Any

from tests.support.fakes.base import Answer, FakeServer, Request, png

API_KEY = "sk-test-fake-openai-key-0123456789"
SIZES = {"gpt-image-1": {"1024x1024", "1536x1024", "1024x1536", "auto"}}
BLOCKED_WORD = "forbidden"


class FakeOpenAI(FakeServer):
    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    def error(self, status: int) -> Any:
        kinds = {429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}
        return _error(f"fake error {status}", kinds.get(status, "invalid_request_error"))

    def answer(self, request: Request) -> Answer:
        if request.method != "POST" or request.path != "/v1/images/generations":
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
        image = base64.b64encode(png(width, height)).decode()
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
