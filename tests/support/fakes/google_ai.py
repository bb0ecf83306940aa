"""Google's image endpoints as their REST references document them, plus the OAuth 2.0 token
exchange a service account makes:

- `POST /token` (RFC 7523, Google's "Using OAuth 2.0 for Server to Server Applications"): a form
  with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and `assertion`, a JWT signed
  RS256 with the service account's key (`iss` = client_email, `aud` =
  https://oauth2.googleapis.com/token, `scope`, `exp`).
  Checked against the account's public key; answered `{"access_token", "expires_in",
  "token_type": "Bearer"}`.
- Vertex AI `POST /v1beta1/projects/{p}/locations/{l}/publishers/google/models/{m}:predict`
  (Imagen; `Authorization: Bearer <token>`): `{"instances": [{"prompt"}], "parameters":
  {"sampleCount", "aspectRatio", "includeRaiReason", ...}}` answered `{"predictions":
  [{"bytesBase64Encoded", "mimeType"}]}`, a filtered image as `{"raiFilteredReason"}` with no
  bytes, a refused prompt as HTTP 400 INVALID_ARGUMENT naming Responsible AI practices.
- `:generateContent` (Gemini image models) on Vertex AI and on the Gemini API
  (`/{version}/models/{m}:generateContent`, `x-goog-api-key`): `generationConfig.imageConfig
  .aspectRatio`; answered with `candidates[0].content.parts[].inlineData`, a refused prompt
  as `promptFeedback.blockReason`, a withheld image as `finishReason: IMAGE_SAFETY`. Reference
  images are `inlineData` parts (`mimeType`, base64 `data`; or snake_case) of the contents,
  beside the text part; each request's are kept in `references` (decoded bytes, in order).

Errors are Google's `{"error": {"code", "message", "status"}}`. Output sizes are the ones the
models document for each ratio; a hostile answer sets `image` (the bytes every image carries).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.fakes.base import Answer, FakeServer, Request, png

API_KEY = "AIzaFakeGeminiKey0123456789abcdefghijk"
PROJECT, LOCATION = "darkroom-test", "us-central1"
BLOCKED_WORD = "forbidden"  # a refused prompt
FILTERED_WORD = "filtered"  # an image withheld after generation
IMAGEN_SIZES = {
    "1:1": (1024, 1024),
    "3:4": (896, 1280),
    "4:3": (1280, 896),
    "9:16": (768, 1408),
    "16:9": (1408, 768),
}
GEMINI_SIZES = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_VERTEX = re.compile(
    r"^/v1(?:beta1)?/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/publishers/google/models/(?P<model>[^/:]+):(?P<method>predict|generateContent)$"
)
_GEMINI_API = re.compile(
    r"^/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):(?P<method>generateContent)$"
)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The JWT's audience is Google's token endpoint whichever token_uri the request is sent to.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


class FakeGoogle(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.tokens: set[str] = set()
        self.references: list[list[bytes]] = []  # per generateContent request
        self.image: bytes | None = None  # answered instead of a drawn picture

    def service_account_file(self, folder: Path) -> Path:
        """A service-account key file whose token_uri is this server."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        path = folder / "service-account.json"
        path.write_text(
            json.dumps(
                {
                    "type": "service_account",
                    "project_id": PROJECT,
                    "private_key_id": "fake-key-1",
                    "private_key": pem,
                    "client_email": f"darkroom@{PROJECT}.iam.gserviceaccount.com",
                    "client_id": "1234567890",
                    "auth_uri": f"{self.base_url}/auth",
                    "token_uri": self.token_uri,
                }
            )
        )
        return path

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def error(self, status: int) -> Any:
        return _error(status, f"fake error {status}")

    def takes_faults(self, request: Request) -> bool:
        return request.path != "/token"

    def answer(self, request: Request) -> Answer:
        if request.path == "/token":
            return self._token(request)
        if match := _VERTEX.match(request.path):
            if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
                return Answer.json(
                    401, _error(401, "Request had invalid authentication credentials.")
                )
            if (match["project"], match["location"]) != (PROJECT, LOCATION):
                return Answer.json(403, _error(403, "Permission denied on the project."))
            if match["method"] == "predict":
                return self._predict(match["model"], request.json())
            return self._generate_content(match["model"], request.json())
        if match := _GEMINI_API.match(request.path):
            if request.headers.get("x-goog-api-key") != API_KEY:
                return Answer.json(
                    400, _error(400, "API key not valid. Please pass a valid API key.")
                )
            return self._generate_content(match["model"], request.json())
        return Answer.json(404, _error(404, f"Not found: {request.path}"))

    # -- OAuth --------------------------------------------------------------------------

    def _token(self, request: Request) -> Answer:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != JWT_BEARER or not self._valid_assertion(
            form.get("assertion", "")
        ):
            return Answer.json(400, {"error": "invalid_grant", "error_description": "Invalid JWT."})
        token = f"ya29.fake-{secrets.token_hex(8)}"
        self.tokens.add(token)
        return Answer.json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _valid_assertion(self, assertion: str) -> bool:
        try:
            header, payload, signature = assertion.split(".")
            self._key.public_key().verify(
                _unb64(signature),
                f"{header}.{payload}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (ValueError, InvalidSignature):
            return False
        claims = json.loads(_unb64(payload))
        return (
            json.loads(_unb64(header)).get("alg") == "RS256"
            and claims.get("aud") == GOOGLE_TOKEN_AUDIENCE
            and claims.get("iss", "").endswith(".iam.gserviceaccount.com")
            and "cloud-platform" in claims.get("scope", "")
            and claims.get("exp", 0) > time.time()
        )

    # -- models -------------------------------------------------------------------------

    def _predict(self, model: str, body: dict[str, Any]) -> Answer:
        if not model.startswith("imagen-"):
            return Answer.json(404, _error(404, f"Publisher Model {model} was not found."))
        prompt = body["instances"][0]["prompt"]
        parameters = body.get("parameters", {})
        ratio = parameters.get("aspectRatio", "1:1")
        if ratio not in IMAGEN_SIZES:
            return Answer.json(400, _error(400, f"Unsupported aspect ratio: {ratio}"))
        if BLOCKED_WORD in prompt:
            return Answer.json(
                400,
                _error(
                    400,
                    "Image generation failed with the following error: The prompt could not be "
                    "submitted. This prompt contains sensitive words that violate Google's "
                    "Responsible AI practices. Try rephrasing the prompt. Support codes: 42876398",
                ),
            )
        if FILTERED_WORD in prompt:
            reason = (
                "Unable to show generated images. All images were filtered out because they "
                "violated Vertex AI's usage guidelines. Support codes: 56562880"
            )
            predictions = (
                [{"raiFilteredReason": reason}] if parameters.get("includeRaiReason") else []
            )
            return Answer.json(200, {"predictions": predictions} if predictions else {})
        image = base64.b64encode(self.image or png(*IMAGEN_SIZES[ratio])).decode()
        count = int(parameters.get("sampleCount", 1))
        return Answer.json(
            200, {"predictions": [{"bytesBase64Encoded": image, "mimeType": "image/png"}] * count}
        )

    def _generate_content(self, model: str, body: dict[str, Any]) -> Answer:
        config = body.get("generationConfig", {})
        ratio = config.get("imageConfig", {}).get("aspectRatio", "1:1")
        if ratio not in GEMINI_SIZES:
            return Answer.json(400, _error(400, f"Unsupported aspect ratio: {ratio}"))
        parts = [p for c in body.get("contents", []) for p in c.get("parts", [])]
        prompt = " ".join(p.get("text", "") for p in parts)
        # Protocol-buffer JSON: lowerCamelCase or the fields' own snake_case names.
        inline = [p.get("inlineData") or p["inline_data"] for p in parts if _is_inline(p)]
        if any(
            not (d.get("mimeType") or d.get("mime_type", "")).startswith("image/") for d in inline
        ):
            return Answer.json(400, _error(400, "Unsupported MIME type of an inline part."))
        # Bytes are base64, standard or (as the SDK sends them) URL-safe.
        self.references.append([_unb64(d["data"].translate(_URL_SAFE)) for d in inline])
        usage = {"promptTokenCount": 8, "totalTokenCount": 8}
        if BLOCKED_WORD in prompt:
            return Answer.json(
                200,
                {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": usage},
            )
        if FILTERED_WORD in prompt:
            candidate = {"finishReason": "IMAGE_SAFETY", "index": 0}
            return Answer.json(200, {"candidates": [candidate], "usageMetadata": usage})
        image = base64.b64encode(self.image or png(*GEMINI_SIZES[ratio])).decode()
        candidate = {
            "content": {
                "role": "model",
                "parts": [{"inlineData": {"mimeType": "image/png", "data": image}}],
            },
            "finishReason": "STOP",
            "index": 0,
        }
        return Answer.json(
            200, {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}
        )


def _error(status: int, message: str) -> Any:
    return {
        "error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    }


_URL_SAFE = str.maketrans("+/", "-_")


def _is_inline(part: dict[str, Any]) -> bool:
    return "inlineData" in part or "inline_data" in part


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
