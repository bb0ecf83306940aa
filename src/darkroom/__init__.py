"""Darkroom: self-hosted asynchronous image generation behind a media API."""

__version__ = "0.1.0"
