"""Tables copied from the spec (../shared/spec/media-api.md), for tests to check against."""

import json

# "Balance": the answer to a missing or wrong key, as the spec writes it.
UNAUTHORIZED_BODY = json.loads(
    '{"error": {"message": "Unauthorized", "type": "unauthorized_request_error", "param": null,'
    ' "code": null}}'
)

SPEC_TABLE = {
    "1:1": (1024, 1024),
    "4:3": (1280, 896),
    "3:4": (896, 1280),
    "16:9": (1408, 768),
    "9:16": (768, 1408),
    "21:9": (1536, 640),
    "9:21": (640, 1536),
}
