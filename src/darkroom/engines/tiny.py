"""The `tiny` engine: a real diffusers StableDiffusionPipeline with random weights, small enough
to run on a CPU in a fraction of a second. It exercises the path a hub model takes (built once,
`save_pretrained` to a folder, `from_pretrained` back) so the service can be run and tested
anywhere; its images are noise-like, and it says so in the demo catalog.

It denoises at a quarter of the output's side and resizes to the requested size, since its
output carries no detail worth the extra time. Like the diffusers engine, it reports progress
and stops at the next denoising step once its whole batch is canceled (see callbacks.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from darkroom.engines.base import BatchMonitor, Job, Outcome
from darkroom.engines.callbacks import StepCallback, release_cached_memory, run_jobs
from darkroom.engines.catalog import ModelSpec
from darkroom.engines.memory import folder_weight_bytes, pipeline_bytes

BUILD_SEED = 0
DEFAULT_STEPS = 4


def open_engine(spec: ModelSpec, data_dir: Path) -> TinyEngine:
    return TinyEngine(spec, data_dir / "models")


class TinyEngine:
    def __init__(self, spec: ModelSpec, models_dir: Path) -> None:
        self.spec = spec
        self.folder = Path(spec.options.get("folder") or models_dir / "tiny-sd")
        self.steps = int(spec.options.get("steps", DEFAULT_STEPS))
        self.guidance = float(spec.options.get("guidance", 5.0))
        self.scale = int(spec.options.get("scale", 4))
        self._pipeline: Any = None
        self._lock = threading.Lock()

    async def load(self) -> None:
        await asyncio.to_thread(self._load)

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        return await asyncio.to_thread(self._generate, jobs, monitor)

    def memory_bytes(self) -> int:
        """What the loaded pipeline holds; before loading, what its weights take on disk."""
        if self._pipeline is not None:
            return pipeline_bytes(self._pipeline)
        return folder_weight_bytes(self.folder)

    async def close(self) -> None:
        with self._lock:
            self._pipeline = None
        release_cached_memory()

    def _generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        import torch

        pipeline = self._load()
        with self._lock, torch.inference_mode():
            return run_jobs(
                lambda part, callback: self._call(pipeline, part, callback), jobs, monitor
            )

    def _call(self, pipeline: Any, jobs: list[Job], callback: StepCallback) -> list[Image.Image]:
        import torch

        width, height = jobs[0].width, jobs[0].height
        result = pipeline(
            prompt=[job.prompt for job in jobs],
            negative_prompt=[job.negative_prompt or "" for job in jobs],
            width=_generation_side(width, self.scale),
            height=_generation_side(height, self.scale),
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=[torch.Generator().manual_seed(job.seed) for job in jobs],
            callback_on_step_end=callback,
        )
        return [image.resize((width, height), Image.Resampling.BICUBIC) for image in result.images]

    def _load(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                from diffusers import AutoPipelineForText2Image

                if not (self.folder / "model_index.json").exists():
                    build_tiny_pipeline(self.folder)
                pipeline = AutoPipelineForText2Image.from_pretrained(self.folder)
                pipeline.set_progress_bar_config(disable=True)
                self._pipeline = pipeline
            return self._pipeline


def _generation_side(side: int, scale: int) -> int:
    return max(64, side // scale // 8 * 8)


def build_tiny_pipeline(folder: Path) -> None:
    """Builds the pipeline from small configurations with a fixed seed and saves it to `folder`.

    Several processes may start at once: each builds aside and the first rename wins.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(BUILD_SEED)
    tokenizer = CLIPTokenizer(
        vocab=_byte_vocab(ByteLevel.alphabet()), merges=[], model_max_length=77
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=32,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    # Four blocks: the VAE downsamples by 8 like Stable Diffusion's, so latents stay small.
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=256,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="trailing",
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    draft = folder.with_name(f".{folder.name}-{os.getpid()}-{threading.get_ident()}")
    pipeline.save_pretrained(draft)
    (draft / "DEMO.json").write_text(
        json.dumps({"note": "Random weights built by Darkroom for demos and tests."})
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        draft.rename(folder)
    except OSError:
        shutil.rmtree(draft, ignore_errors=True)  # another process finished first


def _byte_vocab(alphabet: list[str]) -> dict[str, int]:
    """A CLIP vocabulary with no merges: every byte alone, and as a word's last byte."""
    symbols = sorted(alphabet)
    tokens = symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}
