"""The `diffusers` engine: any supported Hugging Face diffusers text-to-image, text-to-video or
image-to-video model, from a hub id or a local folder, kept loaded for the worker process's
life.

    [models."sdxl"]
    engine = "diffusers"
    source = "stabilityai/stable-diffusion-xl-base-1.0"   # hub id or folder
    native_size = 1024
    steps = 30            # default: the family's (see families.py)
    guidance = 6.0        # default: the family's
    dtype = "auto"        # auto | float16 | bfloat16 | float32
    device = "auto"       # auto: cuda when present, else cpu
    compile = false       # torch.compile the UNet or transformer (CUDA; slow first batches)
    max_batch = 8
    batch_wait_ms = 75
    max_images = 1        # take a reference image (default: 1 for video, else 0: text only)
    strength = 0.6        # image-to-image: how far from the reference the result may go

A batch of compatible tasks (same size, steps, guidance) is one pipeline call with one
generator per task, so a task's image depends on its own seed only, alone or in a batch. Images
are generated at the task's size (the spec's ratios scaled to the model's native area); an
engine built on this one may draw smaller and resize (the `tiny` engine, tiny.py).

A task with a reference image is drawn from it: by the model's own pipeline when that takes an
`image` (FLUX Kontext-style edit models), else by image-to-image
(`AutoPipelineForImage2Image.from_pipe`, which shares the loaded weights) from the first image,
resized to the drawn size, at the entry's `strength`. Tasks with and without images never share
a pipeline call.

A video model (`kind = "video"`, with `frames` and `fps`: LTX-Video's LTXPipeline or
LTXImageToVideoPipeline, Wan's WanPipeline or WanImageToVideoPipeline) loads the class its
model_index.json names and answers each job with a `Clip` of `frames` frames at the task's
size, which the worker encodes as MP4; progress and cancel work per denoising step as for
images, and a clip's batch is one task unless the entry says otherwise (a clip fills a GPU
alone). A task with a reference image starts its clip from it: the image, scaled and cropped
to the task's size, is the first frame, drawn by the model's image-to-video pipeline, which
shares the loaded one's weights (video.py says which checkpoints serve which tasks; a task a
model cannot serve fails with a message saying what to send instead).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import warnings
from pathlib import Path
from typing import Any

import structlog
from PIL import Image

from darkroom.engines.base import BatchMonitor, Engine, GenerationError, Job, Outcome
from darkroom.engines.catalog import ModelSpec
from darkroom.engines.local.families import Family, UnsupportedPipeline, check_kind, family_of
from darkroom.engines.local.memory import folder_weight_bytes, pipeline_bytes
from darkroom.engines.local.options import DTYPES, DiffusersOptions
from darkroom.engines.local.steps import StepCallback, release_cached_memory, run_jobs
from darkroom.engines.local.video import VideoPipelines, first_frame, video_pipelines
from darkroom.engines.media import Clip, Media

log = structlog.get_logger("darkroom.engines")


def open_engine(spec: ModelSpec, data_dir: Path) -> DiffusersEngine:
    options = DiffusersOptions.of(spec)
    return DiffusersEngine(spec, options, _resolve_source(options.source, data_dir))


class DiffusersEngine(Engine):
    holds_weights = True

    def __init__(self, spec: ModelSpec, options: DiffusersOptions, source: str) -> None:
        """`source` is the entry's, resolved: a folder with a model_index.json, or a hub id."""
        self.spec = spec
        self.options = options
        self.source = source
        self.variant: str | None = None  # a weights variant to load ("fp16"), where one is had
        self.dtype_name = options.dtype
        self.device_name = options.device
        self._steps = options.steps
        self._guidance = options.guidance
        self.family: Family | None = None
        self._device: str | None = None  # resolved from `device_name` when first asked
        self._pipeline: Any = None
        self._image_to_image: Any = None  # built from the pipeline when a task first needs it
        self._video: VideoPipelines | None = None  # a video model's text and first-frame ones
        self._lock = threading.Lock()  # one call at a time per pipeline, across workers

    # -- loading -------------------------------------------------------------------------

    async def load(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                self._pipeline = self._from_pretrained()
            return self._pipeline

    def _from_pretrained(self) -> Any:
        import torch
        from diffusers import AutoPipelineForText2Image, DiffusionPipeline

        # AutoPipeline knows only image tasks; a video folder loads the class it names.
        loader = DiffusionPipeline if self.spec.kind == "video" else AutoPipelineForText2Image
        dtype = getattr(torch, _dtype_name(self.dtype_name, self.device))
        with warnings.catch_warnings():
            # Recent diffusers prefer `dtype=`; `torch_dtype=` works on every supported version.
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            variant = {"variant": self.variant} if self.variant else {}
            try:
                pipeline = loader.from_pretrained(self.source, torch_dtype=dtype, **variant)
            except ValueError as exc:
                if "AutoPipeline can't find" not in str(exc):
                    raise
                # A video folder under an image entry: say so, as family_of would.
                raise UnsupportedPipeline(
                    f"{self.source} is not a text-to-image pipeline ({exc}); a video model's "
                    'catalog entry says kind = "video"'
                ) from None
        pipeline.to(self.device)
        pipeline.set_progress_bar_config(disable=True)
        self._tune(pipeline)
        self.family = family_of(pipeline, self.source)
        check_kind(self.family, self.spec.kind, self.source)
        self._check_native_size(self.family)
        if self.family.video:
            self._video = video_pipelines(pipeline, self.spec.id)
            self._check_first_frames(self._video)
        log.info(
            "model loaded",
            model=self.spec.id,
            source=self.source,
            pipeline=type(pipeline).__name__,
            family=self.family.name,
            device=self.device,
            dtype=str(dtype),
            steps=self.steps,
            guidance=self.guidance,
        )
        return pipeline

    def _check_native_size(self, family: Family) -> None:
        if self.spec.native_size != family.native_size:
            log.warning(
                "native size differs from the family's",
                model=self.spec.id,
                native_size=self.spec.native_size,
                family_native_size=family.native_size,
            )

    def _check_first_frames(self, video: VideoPipelines) -> None:
        """A video entry takes a reference image unless it says `max_images = 0`; a text-only
        checkpoint would fail every such task, so the operator is told at load."""
        if self.spec.max_images and video.first_frame is None:
            log.warning(
                "model cannot start a video from an image; set max_images = 0",
                model=self.spec.id,
                source=self.source,
            )

    def _tune(self, pipeline: Any) -> None:
        """GPU speed-ups that change no result: channels-last convolutions for UNets (faster
        cuDNN kernels); torch.compile of the denoiser when the entry asks (`compile = true`;
        the first batch of each size then takes minutes)."""
        import torch

        denoiser = getattr(pipeline, "unet", None) or getattr(pipeline, "transformer", None)
        if denoiser is None or not self.device.startswith("cuda"):
            return
        if hasattr(pipeline, "unet") and self.options.channels_last:
            denoiser.to(memory_format=torch.channels_last)
        if self.options.compile:
            denoiser.compile(mode="max-autotune-no-cudagraphs")

    @property
    def device(self) -> str:
        """The entry's `device`, with "auto" resolved: cuda when present, else cpu."""
        if self._device is None:
            self._device = _device(self.device_name)
        return self._device

    @property
    def steps(self) -> int:
        """The entry's `steps`, else (once loaded) the family's."""
        if self._steps is not None:
            return self._steps
        assert self.family is not None
        return self.family.steps

    @property
    def guidance(self) -> float:
        """The entry's `guidance`, else (once loaded) the family's."""
        if self._guidance is not None:
            return self._guidance
        assert self.family is not None
        return self.family.guidance

    def memory_bytes(self) -> int:
        """What the loaded pipeline holds; before loading, what its weights take on disk."""
        if self._pipeline is not None:
            return pipeline_bytes(self._pipeline)
        return folder_weight_bytes(Path(self.source))

    async def close(self) -> None:
        with self._lock:
            self._pipeline = self._image_to_image = self._video = None
        release_cached_memory()

    # -- generating ----------------------------------------------------------------------

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        return await asyncio.to_thread(self._generate, jobs, monitor)

    def _generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        import torch

        pipeline = self._load()
        groups = self._call_groups(jobs)
        outcomes: dict[str, Outcome] = {}
        with self._lock, torch.inference_mode():
            for index, group in enumerate(groups):
                span = 1 / len(groups)
                refusal = self._refusal(group)
                if refusal:  # the other jobs of the batch still run
                    done: list[Outcome] = [GenerationError(refusal) for _ in group]
                else:
                    done = run_jobs(
                        lambda part, callback: self._call(pipeline, part, callback),
                        group,
                        monitor,
                        start=index * span,
                        span=span,
                    )
                outcomes.update(zip((job.task_id for job in group), done, strict=True))
        return [outcomes[job.task_id] for job in jobs]

    def _call_groups(self, jobs: list[Job]) -> list[list[Job]]:
        """Jobs that can share a pipeline call: the same size (an edit may take its image's),
        all with reference images or all without. SDXL also splits on negative prompts: there,
        a job without one gets zero embeddings, which only a call without any can give. Wan
        starts one clip per call from a first frame."""
        assert self.family is not None
        splits_negative = self.family.zeros_for_empty_negative
        alone = self.family.one_first_frame_per_call
        groups: dict[tuple[int, int, bool, bool, str], list[Job]] = {}
        for job in jobs:
            negative = bool(job.negative_prompt) and splits_negative
            own = job.task_id if alone and job.images else ""
            key = (job.width, job.height, bool(job.images), negative, own)
            groups.setdefault(key, []).append(job)
        return list(groups.values())

    def _refusal(self, jobs: list[Job]) -> str:
        """Why a video model cannot serve these jobs (all with images or all without), or ""."""
        return self._video.refusal(bool(jobs[0].images)) if self._video else ""

    def _call(self, pipeline: Any, jobs: list[Job], callback: StepCallback) -> list[Media]:
        import torch

        assert self.family is not None
        if self.family.video:
            return self._call_video(jobs, callback)
        width, height = jobs[0].width, jobs[0].height
        drawn_width, drawn_height = self._drawn_size(width, height)
        arguments: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs],
            "width": drawn_width,
            "height": drawn_height,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "generator": [torch.Generator(self.device).manual_seed(job.seed) for job in jobs],
            "callback_on_step_end": callback,
            **self.family.call_arguments,
        }
        if self.family.negative_prompt and any(job.negative_prompt for job in jobs):
            arguments["negative_prompt"] = [job.negative_prompt or "" for job in jobs]
        if jobs[0].images:
            pipeline = self._from_reference(pipeline, jobs, arguments)
        images = pipeline(**arguments).images
        return [
            self._result(_sized(image, width, height), job)
            for image, job in zip(images, jobs, strict=True)
        ]

    def _call_video(self, jobs: list[Job], callback: StepCallback) -> list[Media]:
        """One video call: a clip of the entry's frames per job, at the task's size, from text
        or from each job's first reference image (`_refusal` has kept out what cannot be)."""
        import torch

        assert self.family is not None and self._video is not None
        pipeline = self._video.pipeline_for(bool(jobs[0].images))
        assert pipeline is not None
        width, height = jobs[0].width, jobs[0].height
        arguments: dict[str, Any] = {
            "prompt": [job.prompt for job in jobs],
            "width": width,
            "height": height,
            "num_frames": self.spec.frames,
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "generator": [torch.Generator(self.device).manual_seed(job.seed) for job in jobs],
            "callback_on_step_end": callback,
            "output_type": "pil",
            **self.family.call_arguments,
        }
        if _takes(pipeline, "frame_rate"):  # LTX-Video conditions its positions on the rate
            arguments["frame_rate"] = self.spec.fps
        if any(job.negative_prompt for job in jobs):
            arguments["negative_prompt"] = [job.negative_prompt or "" for job in jobs]
        if jobs[0].images:
            starts = [first_frame(job.images[0], width, height) for job in jobs]
            # Wan's call takes one picture, not a list of one (one_first_frame_per_call).
            arguments["image"] = starts[0] if len(starts) == 1 else starts
        clips = pipeline(**arguments).frames
        return [
            Clip(tuple(_sized(frame, width, height) for frame in frames), self.spec.fps)
            for frames in clips
        ]

    def _result(self, image: Image.Image, job: Job) -> Image.Image:
        """The job's image as the pipeline drew it, at the task's size."""
        return image

    def _from_reference(self, pipeline: Any, jobs: list[Job], arguments: dict[str, Any]) -> Any:
        """The pipeline that draws from the jobs' first reference images, with `arguments`
        completed for it: the model's own when it takes an image, else image-to-image."""
        size = (arguments["width"], arguments["height"])
        arguments["image"] = [_sized(job.images[0], *size) for job in jobs]
        if _takes(pipeline, "image"):
            return pipeline
        if self._image_to_image is None:
            self._image_to_image = _image_to_image(pipeline, self.spec.id)
        arguments["strength"] = self.options.strength
        for name in ("width", "height"):  # SD and SDXL draw at the image's size
            if not _takes(self._image_to_image, name):
                del arguments[name]
        return self._image_to_image

    def _drawn_size(self, width: int, height: int) -> tuple[int, int]:
        """The size the pipeline draws a width x height task at: that size itself."""
        return width, height


def _takes(pipeline: Any, name: str) -> bool:
    """Whether the pipeline's call names this argument (beyond a catch-all **kwargs)."""
    try:
        return name in inspect.signature(pipeline.__call__).parameters
    except (TypeError, ValueError):
        return False


def _image_to_image(pipeline: Any, model: str) -> Any:
    """The image-to-image pipeline of the loaded one's family, sharing its components."""
    from diffusers import AutoPipelineForImage2Image

    try:
        derived = AutoPipelineForImage2Image.from_pipe(pipeline)
    except ValueError as exc:
        raise GenerationError(
            f"The model {model} cannot draw from a reference image on this server "
            f"({type(pipeline).__name__} has no image-to-image pipeline); leave out images."
        ) from exc
    derived.set_progress_bar_config(disable=True)
    return derived


def _sized(image: Image.Image, width: int, height: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def _resolve_source(source: str, data_dir: Path) -> str:
    """A folder (absolute, or relative to the data directory) or else a hub id."""
    for candidate in (Path(source).expanduser(), data_dir / source):
        if (candidate / "model_index.json").exists():
            return str(candidate)
    return source


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _dtype_name(name: str, device: str) -> str:
    import torch

    if name != "auto":
        return DTYPES[name]
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"  # CPUs are slow at half precision and some kernels lack it
