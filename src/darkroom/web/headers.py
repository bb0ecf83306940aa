"""The security headers of the pages and their static files: a Content-Security-Policy that
lets only this origin's own scripts and styles run (no inline script or style, no eval: the
vendored Alpine.js is its CSP build), no framing, no referrer, no MIME sniffing.

Images and videos may come from elsewhere: a result link may be a presigned object-storage
URL on another origin. Only the pages and /static/ get these; the API's answers are left as
they are (and /docs keeps the scripts it loads).
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob: http: https:",
        "media-src 'self' data: blob: http: https:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


class SecuredStaticFiles(StaticFiles):
    """Static files with the pages' security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        return secured(await super().get_response(path, scope))
