"""What an engine makes for one job, by the model's kind: an image (a PIL image), a video (a
`Clip` of frames, or an `EncodedVideo` another server already encoded), or audio (`Tracks`).
The worker turns each into stored files (engines/encoding.py), in a thread."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class Clip:
    """A video as its frames, all of one size, to be encoded as MP4 (H.264)."""

    frames: tuple[Image.Image, ...]
    fps: int


@dataclass(frozen=True)
class EncodedVideo:
    """An MP4 as an upstream server made it: stored as it came."""

    data: bytes


@dataclass(frozen=True)
class Track:
    """One MP3 of an audio model's answer; its duration is read from the file."""

    data: bytes
    title: str = ""


@dataclass(frozen=True)
class Tracks:
    """An audio model's answer to one job: one or more tracks, in order."""

    tracks: tuple[Track, ...]


# The result of one job, whatever the model's kind.
Media = Image.Image | Clip | EncodedVideo | Tracks
