"""HTTP: the app factory, the media routes, auth, the error envelope, file links."""

from darkroom.api.app import create_app

__all__ = ["create_app"]
