"""The options of the local engines (`diffusers`, `tiny`), checked when the catalog loads.

Kept apart from the engines, which import torch and diffusers, since API nodes load the catalog.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from darkroom.engines.options import EngineOptions

# Image-to-image keeps the reference's layout and colours and redraws its detail.
DEFAULT_STRENGTH = 0.6

# The names a catalog entry may give `dtype`, and torch's name for each.
DTYPES = {
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float32": "float32",
    "fp32": "float32",
}


class DiffusersOptions(EngineOptions):
    """A diffusers text-to-image or video model (engines/local/pipeline.py)."""

    source: str = Field(min_length=1)
    """A hub id, or a folder (absolute, or relative to the data directory)."""
    steps: int | None = Field(None, ge=1)
    """Default: the family's (families.py)."""
    guidance: float | None = Field(None, ge=0)
    """Default: the family's."""
    dtype: str = "auto"
    """auto (bfloat16 or float16 on CUDA, float32 on a CPU), or one of DTYPES."""
    device: str = Field("auto", pattern=r"^(auto|[a-z]+(:\d+)?)$")
    """auto: cuda when present, else cpu."""
    compile: bool = False
    """torch.compile the UNet or transformer (CUDA; the first batch of each size is slow)."""
    channels_last: bool = True
    """Channels-last memory format for UNets on CUDA."""
    strength: float = Field(DEFAULT_STRENGTH, gt=0, le=1)
    """Image-to-image: how much of the reference is redrawn (1: all of it)."""

    def max_images_for(self, kind: str) -> int:
        """A video model takes one reference image, its clip's first frame (LTX-Video and Wan
        image-to-video; pipeline.py); an image model draws from text unless its entry says."""
        return 1 if kind == "video" else 0

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        value = value.lower()
        if value != "auto" and value not in DTYPES:
            raise ValueError(f"dtype must be auto or one of {list(DTYPES)}")
        return value


class TinyOptions(EngineOptions):
    """The demo engine's random-weight pipeline (engines/local/tiny.py)."""

    folder: str | None = None
    """Where the pipeline is built; default: the data directory's models/tiny-sd."""
    steps: int = Field(4, ge=1)
    guidance: float = Field(5.0, ge=0)
    scale: int = Field(4, ge=1)
    """Denoise at 1/scale of the output's side, then resize."""
    strength: float = Field(DEFAULT_STRENGTH, gt=0, le=1)
    show_reference: float = Field(0.5, ge=0, le=1)
    """Demo: how much of a reference image is blended into the result (0: none)."""


class MusicgenOptions(EngineOptions):
    """A MusicGen text-to-music model through transformers (engines/local/audio.py)."""

    source: str = Field(min_length=1)
    """A hub id (facebook/musicgen-small, ...), or a folder."""
    seconds: float = Field(8.0, gt=0, le=30)
    """Length of each track."""
    tracks: int = Field(1, ge=1, le=4)
    """Tracks per task, each from its own draw."""
    guidance: float = Field(3.0, ge=0)
    """Classifier-free guidance scale (MusicGen's default 3)."""
    device: str = Field("auto", pattern=r"^(auto|[a-z]+(:\d+)?)$")
