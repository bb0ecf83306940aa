"""Real media files for the fake servers to answer with: an MP4 (H.264) clip and an MP3 tone,
encoded with PyAV so that what Darkroom downloads is what a real upstream would send."""

from __future__ import annotations

import io
import math
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from darkroom.engines.encoding import encode_mp4
from darkroom.engines.media import Clip

SAMPLE_RATE = 44100


def mp4(frames: int = 12, fps: int = 6, size: tuple[int, int] = (64, 48)) -> bytes:
    shades = [Image.new("RGB", size, (20 * i % 256, 90, 160)) for i in range(frames)]
    return encode_mp4(Clip(tuple(shades), fps))


def mp3(seconds: float = 2.0, pitch: float = 440.0) -> bytes:
    """A mono sine tone of about `seconds` as an MP3."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=SAMPLE_RATE)
        stream.layout = "mono"
        samples = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
        tone = (0.3 * np.sin(2 * math.pi * pitch * samples)).astype(np.float32)
        step = 1152  # an MP3 frame's samples
        for start in range(0, len(tone), step):
            chunk = tone[start : start + step].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = start
            frame.time_base = Fraction(1, SAMPLE_RATE)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()
