"""Veo on Vertex AI as its REST reference documents it (the google-genai SDK serves Veo there;
its Gemini API path is refused by the SDK itself), long-running operations included. Signing
in is FakeGoogle's (the service account's token exchange at `/token`):

- `POST /v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}:predictLongRunning`
  (`Authorization: Bearer <token>`): `{"instances": [{"prompt", "image"?: {"bytesBase64Encoded",
  "mimeType"}}], "parameters": {"aspectRatio", "sampleCount", "negativePrompt"?}}` answered with
  an operation, `{"name": "projects/.../models/{m}/operations/{id}"}`.
- `POST .../models/{m}:fetchPredictOperation` with `{"operationName"}`: `{"name", "done":
  false}` for `polls_before_done` reads, then `{"name", "done": true, "response": {"videos":
  [{"bytesBase64Encoded", "mimeType": "video/mp4"}]}}` (a real H.264 clip of CLIP_FRAMES); a
  prompt with BLOCKED_WORD is filtered (`raiMediaFilteredCount`, `raiMediaFilteredReasons`, no
  videos); one with FAILED_WORD ends with `"error": {"code", "message"}`.

Each operation's create body is kept in `created`; `polls` counts operation reads;
`outstanding` counts the operations started and not yet answered done, and `most_outstanding`
the most there ever were at once (as Vertex AI counts them against a project's quota)."""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

from tests.support.fakes.base import Answer, Request
from tests.support.fakes.google_ai import LOCATION, PROJECT, FakeGoogle, _error
from tests.support.fakes.media_files import mp4

BLOCKED_WORD = "forbidden"
FAILED_WORD = "impossible"
CLIP_FRAMES, CLIP_FPS = 24, 24
VEO_RATIOS = ("16:9", "9:16")

_VEO = re.compile(
    r"^/v1(?:beta1)?/(?P<model>projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<id>[^/:]+)):(?P<method>predictLongRunning|fetchPredictOperation)$"
)


class FakeVeo(FakeGoogle):
    def __init__(self, polls_before_done: int = 1) -> None:
        super().__init__()
        self.polls_before_done = polls_before_done
        self.operations: dict[str, dict[str, Any]] = {}
        self.polls = 0
        self.outstanding = 0
        self.most_outstanding = 0

    @property
    def created(self) -> list[dict[str, Any]]:
        return [operation["body"] for operation in self.operations.values()]

    def answer(self, request: Request) -> Answer:
        match = _VEO.match(request.path.split("?")[0])
        if match is None:
            return super().answer(request)
        if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
            return Answer.json(401, _error(401, "Request had invalid authentication credentials."))
        if (match["project"], match["location"]) != (PROJECT, LOCATION):
            return Answer.json(403, _error(403, "Permission denied on the project."))
        body = request.json() or {}
        if match["method"] == "predictLongRunning":
            return self._create(match["model"], match["id"], body)
        return self._operation(str(body.get("operationName", "")))

    def _create(self, model: str, model_id: str, body: dict[str, Any]) -> Answer:
        if not model_id.startswith("veo-"):
            return Answer.json(404, _error(404, f"Publisher Model {model_id} was not found."))
        ratio = body.get("parameters", {}).get("aspectRatio", "16:9")
        if ratio not in VEO_RATIOS:
            return Answer.json(400, _error(400, f"Unsupported aspect ratio: {ratio}"))
        name = f"{model}/operations/{secrets.token_hex(6)}"
        with self._lock:
            self.operations[name] = {"body": body, "polls": 0, "done": False}
            self.outstanding += 1
            self.most_outstanding = max(self.most_outstanding, self.outstanding)
        return Answer.json(200, {"name": name})

    def _operation(self, name: str) -> Answer:
        operation = self.operations.get(name)
        if operation is None:
            return Answer.json(404, _error(404, f"Operation {name} not found."))
        self.polls += 1
        operation["polls"] += 1
        if operation["polls"] <= self.polls_before_done:
            return Answer.json(200, {"name": name, "done": False})
        with self._lock:
            if not operation["done"]:
                operation["done"] = True
                self.outstanding -= 1
        prompt = operation["body"]["instances"][0]["prompt"]
        if FAILED_WORD in prompt:
            error = {"code": 13, "message": "Video generation failed."}
            return Answer.json(200, {"name": name, "done": True, "error": error})
        if BLOCKED_WORD in prompt:
            filtered = {
                "raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": ["The prompt violates the usage guidelines."],
            }
            return Answer.json(200, {"name": name, "done": True, "response": filtered})
        clip = base64.b64encode(mp4(CLIP_FRAMES, CLIP_FPS, (64, 36))).decode()
        videos = {"videos": [{"bytesBase64Encoded": clip, "mimeType": "video/mp4"}]}
        return Answer.json(200, {"name": name, "done": True, "response": videos})
