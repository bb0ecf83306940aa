"""A job's media as the files that are stored: WebP for an image, MP4 (H.264, yuv420p, which
every browser and player decodes) for a clip, MP3 for each track (a local audio engine encodes
its waveforms with `encode_mp3`), with the duration of clips
and tracks read from the encoded file. Blocking (PyAV and Pillow): the worker runs it in a
thread, never on the event loop. PyAV is imported only when a clip or a track is stored, so
image-only workers do not need it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from PIL import Image

from darkroom.engines.media import Clip, EncodedVideo, Media, Tracks
from darkroom.images import encode_webp

# x264's constant rate factor: 18 to 23 look alike to most eyes; 20 keeps clips small.
H264_CRF = 20
MP3_FRAME = 1152  # samples in one MP3 frame


@dataclass(frozen=True)
class EncodedFile:
    extension: str
    data: bytes
    duration: float | None = None
    title: str | None = None


def encode(media: Media) -> list[EncodedFile]:
    """The files to store for one job's media, in order (more than one only for tracks)."""
    if isinstance(media, Clip):
        data = encode_mp4(media)
        return [EncodedFile("mp4", data, duration_of(data))]
    if isinstance(media, EncodedVideo):
        return [EncodedFile("mp4", media.data, duration_of(media.data))]
    if isinstance(media, Tracks):
        return [
            EncodedFile("mp3", track.data, duration_of(track.data), track.title)
            for track in media.tracks
        ]
    return [EncodedFile("webp", encode_webp(media))]


def encode_mp4(clip: Clip) -> bytes:
    """The clip as an MP4 with one H.264 stream at the clip's fps."""
    import av

    width, height = _even(clip.frames[0].size)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(clip.fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(H264_CRF)}
        for image in clip.frames:
            frame = av.VideoFrame.from_image(_sized(image.convert("RGB"), width, height))
            container.mux(stream.encode(frame))
        container.mux(stream.encode())  # flush the encoder's delayed frames
    return buffer.getvalue()


def encode_mp3(samples: Any, sampling_rate: int) -> bytes:
    """Float samples in [-1, 1], shaped (channels, samples), as an MP3 (LAME)."""
    import av
    import numpy as np

    audio = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    audio = audio.reshape(1, -1) if audio.ndim == 1 else audio[:2]
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sampling_rate)
        stream.layout = layout
        for start in range(0, audio.shape[1], MP3_FRAME):
            chunk = np.ascontiguousarray(audio[:, start : start + MP3_FRAME])
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = sampling_rate
            frame.pts = start
            frame.time_base = Fraction(1, sampling_rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def duration_of(data: bytes) -> float | None:
    """Seconds of an MP4 or an MP3, as its container says; None for a file PyAV cannot read."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if container.duration is not None:
                return round(container.duration / av.time_base, 3)
            stream = container.streams[0]
            if stream.duration is not None and stream.time_base is not None:
                return round(float(stream.duration * stream.time_base), 3)
    except (av.FFmpegError, IndexError):
        return None
    return None


def _even(size: tuple[int, int]) -> tuple[int, int]:
    """yuv420p halves the colour planes, so H.264 wants even sides."""
    width, height = size
    return max(width - width % 2, 2), max(height - height % 2, 2)


def _sized(image: Image.Image, width: int, height: int) -> Image.Image:
    return image if image.size == (width, height) else image.resize((width, height))
