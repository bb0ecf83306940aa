"""GET /files/<key>?expires=..&sig=..: result files of the local storage, by signed link only.

A link is a bearer capability until it expires (DARKROOM_RETENTION_HOURS after its image was
made), like an S3 presigned URL: revoking the key that was handed it stops new links, not this
one (docs/security.md). The access log shows its path with `sig=REDACTED` (cli/server.py)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, JSONResponse, Response

from darkroom.api.deps import CurrentApp
from darkroom.storage import content_type_of
from darkroom.storage.local import LocalStorage
from darkroom.storage.signing import verify

router = APIRouter(tags=["files"])


@router.get("/files/{key:path}", include_in_schema=False)
async def fetch_file(key: str, app: CurrentApp, expires: str = "", sig: str = "") -> Response:
    storage = app.storage
    if not isinstance(storage, LocalStorage):
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    refused = verify(storage.secret, key, expires, sig)
    if refused:
        return JSONResponse({"detail": f"This link is {refused}."}, status_code=403)
    path = storage.path(key)
    if path is None or not path.is_file():
        return JSONResponse({"detail": "This file no longer exists."}, status_code=404)
    return FileResponse(path, media_type=content_type_of(key))
