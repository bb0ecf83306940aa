"""Pipeline families and their defaults.

A family is recognised from the class of the loaded pipeline (what `model_index.json` names),
never from the model id, so a local folder works like its hub original. Distilled checkpoints
(turbo, schnell) share their family's class but want far fewer steps and no guidance; they are
recognised from their configuration where it says so (FLUX.1-schnell has no guidance embedding)
and otherwise from the source's name. A catalog entry's `steps` and `guidance` always win.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from darkroom.errors import ConfigurationError


@dataclass(frozen=True)
class Family:
    name: str
    native_size: int  # the side the model was trained at; catalog entries should match it
    steps: int
    guidance: float
    negative_prompt: bool = True  # the pipeline takes a negative prompt
    # SDXL encodes "no negative prompt" as zeros rather than as the empty string, so a batch
    # must not mix tasks with and without one (see diffusers' force_zeros_for_empty_prompt).
    zeros_for_empty_negative: bool = False
    extra: tuple[tuple[str, Any], ...] = ()  # more pipeline call arguments
    video: bool = False  # a video pipeline: its answer is frames, not images
    # Wan's image-to-video pipeline takes one first frame per call (video.py).
    one_first_frame_per_call: bool = False

    @property
    def call_arguments(self) -> dict[str, Any]:
        return dict(self.extra)


SD15 = Family("sd15", native_size=512, steps=30, guidance=7.5)
SDXL = Family("sdxl", native_size=1024, steps=30, guidance=6.0, zeros_for_empty_negative=True)
SD3 = Family("sd3", native_size=1024, steps=28, guidance=4.0)
# FLUX.1-dev: guidance is embedded in the model (no second pass), hence no negative prompt.
FLUX = Family(
    "flux",
    native_size=1024,
    steps=28,
    guidance=3.5,
    negative_prompt=False,
    extra=(("max_sequence_length", 512),),
)

# Video, from text or from a first frame (video.py). LTX-Video (0.9.x) draws 8k + 1 frames at
# sides that are multiples of 32 and takes the clip's frame rate; Wan 2.1/2.2 draws 4k + 1
# frames at multiples of 16. Their native areas are about 768 x 512 and 832 x 480: a square of
# the same area.
LTX = Family("ltx", native_size=640, steps=50, guidance=3.0, video=True)
WAN = Family(
    "wan", native_size=640, steps=50, guidance=5.0, video=True, one_first_frame_per_call=True
)

# Pipeline class name -> family. AutoPipelineForText2Image picks an image folder's class;
# a video folder loads the class its model_index.json names.
_BY_CLASS = {
    "StableDiffusionPipeline": SD15,
    "StableDiffusionXLPipeline": SDXL,
    "StableDiffusion3Pipeline": SD3,
    "FluxPipeline": FLUX,
    "LTXPipeline": LTX,
    "LTXImageToVideoPipeline": LTX,
    "WanPipeline": WAN,
    "WanImageToVideoPipeline": WAN,  # Wan 2.1 I2V-14B, Wan 2.2 I2V-A14B
}
SUPPORTED = tuple(_BY_CLASS)


class UnsupportedPipeline(ConfigurationError):
    """The source loads as a pipeline class the diffusers engine does not support."""


def family_of(pipeline: Any, source: str = "") -> Family:
    """The family of a loaded pipeline, with its distilled variant's defaults where it is one."""
    name = type(pipeline).__name__
    family = _BY_CLASS.get(name)
    if family is None:
        raise UnsupportedPipeline(
            f"{source or 'the model'} loads as {name}; the diffusers engine supports "
            f"{', '.join(SUPPORTED)}"
        )
    return distilled(family, pipeline, source)


def check_kind(family: Family, kind: str, source: str) -> None:
    """A video model's entry must load a video pipeline, and an image model's an image one:
    otherwise every task would fail in the pipeline call."""
    if family.video != (kind == "video"):
        made = "video" if family.video else "images"
        raise UnsupportedPipeline(
            f"{source or 'the model'} is a {family.name} pipeline, which makes {made}; "
            f'its catalog entry says kind = "{kind}"'
        )


def distilled(family: Family, pipeline: Any, source: str) -> Family:
    lowered = source.lower()
    if family is FLUX:
        transformer = getattr(pipeline, "transformer", None)
        embeds_guidance = getattr(getattr(transformer, "config", None), "guidance_embeds", True)
        if not embeds_guidance or "schnell" in lowered:
            # FLUX.1-schnell: 4 steps, no guidance, prompts up to 256 T5 tokens.
            return replace(family, steps=4, guidance=0.0, extra=(("max_sequence_length", 256),))
        return family
    if "distilled" in lowered and family.video:  # LTX-Video 0.9.x distilled: 8 steps, no CFG
        return replace(family, steps=8, guidance=1.0)
    if "turbo" in lowered:
        if family is SD3:  # SD 3.5 Large Turbo
            return replace(family, steps=4, guidance=0.0)
        # sd-turbo and sdxl-turbo: one step at 512 pixels, no guidance.
        return replace(family, native_size=512, steps=1, guidance=0.0)
    return family
