"""A video model's two pipelines: one for text-only tasks, one for tasks that start from a
reference image (the clip's first frame), derived from whichever the folder loads so that both
share its weights (diffusers' `from_pipe` hands the same modules to the other class).

- LTX-Video: LTXPipeline and LTXImageToVideoPipeline take the same components; the first
  frame's latents are kept as the clip's first latent frame. Either folder serves both kinds.
- Wan 2.x: WanImageToVideoPipeline derives from a WanPipeline only where the transformer reads
  the first frame in place of the first latent frame (`expand_timesteps`: Wan 2.2 TI2V-5B),
  and the other way round. Wan 2.1/2.2 text-to-video transformers read noise alone (16
  channels) and Wan 2.1/2.2 I2V ones noise beside the frame's latents (36), so such a folder
  serves one kind only, and the other is refused with a message a person can act on.

Wan's image-to-video call takes one picture for the whole call (diffusers 0.42 checks so), so
its tasks with an image go one per call (`Family.one_first_frame_per_call`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps


@dataclass(frozen=True)
class VideoPipelines:
    text: Any | None
    """For tasks without images; None where the model cannot draw from text alone."""
    first_frame: Any | None
    """For tasks with a reference image; None where the model cannot start from one."""
    text_refusal: str = ""
    first_frame_refusal: str = ""

    def pipeline_for(self, with_images: bool) -> Any | None:
        """The pipeline for tasks with (or without) a first frame."""
        return self.first_frame if with_images else self.text

    def refusal(self, with_images: bool) -> str:
        """Why tasks with (or without) a first frame cannot be served; "" when they can."""
        if self.pipeline_for(with_images) is not None:
            return ""
        return self.first_frame_refusal if with_images else self.text_refusal


def video_pipelines(loaded: Any, model: str) -> VideoPipelines:
    """The loaded video pipeline and the one derived from it for the other kind of task."""
    from diffusers import (
        LTXImageToVideoPipeline,
        LTXPipeline,
        WanImageToVideoPipeline,
        WanPipeline,
    )

    if isinstance(loaded, LTXPipeline):
        return VideoPipelines(loaded, _derived(LTXImageToVideoPipeline, loaded))
    if isinstance(loaded, LTXImageToVideoPipeline):
        return VideoPipelines(_derived(LTXPipeline, loaded), loaded)
    both = bool(loaded.config.get("expand_timesteps", False))
    if isinstance(loaded, WanPipeline):
        if both:
            return VideoPipelines(loaded, _derived(WanImageToVideoPipeline, loaded))
        return VideoPipelines(
            loaded,
            None,
            first_frame_refusal=(
                f"The model {model} makes videos from text only (a Wan text-to-video "
                "checkpoint cannot start from a picture); leave out images."
            ),
        )
    if isinstance(loaded, WanImageToVideoPipeline):
        if both:
            return VideoPipelines(_derived(WanPipeline, loaded), loaded)
        return VideoPipelines(
            None,
            loaded,
            text_refusal=(
                f"The model {model} starts every video from a picture (a Wan image-to-video "
                "checkpoint); send one reference image in `image` or `images`."
            ),
        )
    raise TypeError(f"{type(loaded).__name__} is not a video pipeline")  # families.py stops it


def first_frame(image: Image.Image, width: int, height: int) -> Image.Image:
    """The reference scaled to cover the clip's size and cropped to it about its centre, so
    that a picture of another shape is not stretched."""
    return ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.BICUBIC)


def _derived(cls: Any, loaded: Any) -> Any:
    pipeline = cls.from_pipe(loaded)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
