"""Engine throughput on the real worker path: images per second at max_batch 1 versus 8.

    .venv/bin/python bench/engine.py                  # CPU: a tiny SD 1.5 pipeline
    .venv/bin/python bench/engine.py --gpu            # CUDA: full-size SD 1.5 and SDXL

Each setting gets its own installation (a temporary SQLite database, local storage, the
diffusers engine loading the model folder with from_pretrained). The same tasks (same prompts,
seeds and size) are queued first; then one worker claims them in batches of up to max_batch,
runs each batch as one pipeline call, encodes WebP images, stores them and completes the tasks.
The clock runs from the worker's start to the last task done. The model is loaded and warmed up
with one full batch beforehand, so loading and first-call costs are not counted.

With --gpu, the models are full-size SD 1.5 and SDXL architectures built from their published
configurations with random weights (the same arithmetic as the real models), in bfloat16 (or
float16 where bfloat16 is missing). The script also prints the fraction of the GPU's peak dense
bf16 throughput achieved by the UNet: per-image UNet FLOPs (one UNet call counted with
torch.utils.flop_counter.FlopCounterMode, times steps, the classifier-free-guidance batch
included) times images per second, over the peak. The text encoders and VAE are left out of the
count, so the fraction understates the work the GPU does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from prometheus_client import REGISTRY  # noqa: E402

from darkroom import logs  # noqa: E402
from darkroom.app import App  # noqa: E402
from darkroom.config import Settings  # noqa: E402
from darkroom.engines import BatchMonitor, Job  # noqa: E402
from darkroom.engines.local.random_weights import build, clip_tokenizer, save_atomically  # noqa: E402
from darkroom.tasks import NewTask, TaskParams  # noqa: E402
from darkroom.worker import EnginePool, Worker  # noqa: E402

MODEL = "bench"
PROMPTS = ["a lighthouse at dusk", "a red fox in snow", "a bowl of ramen", "a city at night"]

# Peak dense (no sparsity) bf16 tensor throughput, FLOP/s, by device name.
PEAK_BF16 = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989.4e12),  # SXM
    ("H200", 989.4e12),
    ("GH200", 989.4e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362.05e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
]


@dataclass
class Result:
    max_batch: int
    tasks: int
    seconds: float
    mean_batch: float

    @property
    def images_per_second(self) -> float:
        return self.tasks / self.seconds


# -- the worker path -----------------------------------------------------------------------------


async def run_setting(
    workdir: Path, entry: dict[str, Any], max_batch: int, tasks: int, concurrency: int
) -> tuple[Result, Any]:
    """Queues `tasks` tasks, runs one worker until all are done; returns the timing and the
    engine (still loaded, for FLOP counting)."""
    model = f"{MODEL}-{max_batch}"
    data_dir = workdir / model
    data_dir.mkdir(parents=True)
    config = data_dir / "models.toml"
    config.write_text(_toml(model, {**entry, "max_batch": max_batch, "batch_wait_ms": 50}))
    app = App.from_settings(Settings(data_dir=data_dir, config=config, log_level="warning"))
    await app.migrate()
    _raw, key = await app.keys.create("bench")
    spec = app.catalog[model]
    width, height = spec.size_for("1:1")
    pool = EnginePool(app.catalog, data_dir)
    engine = await pool.get(model)
    warmup = [Job(f"{i:024x}", PROMPTS[0], width, height, seed=i) for i in range(max_batch)]
    await engine.generate(warmup, BatchMonitor())

    for index in range(tasks):
        new = NewTask.build(
            key_id=key.id,
            model=model,
            prompt=PROMPTS[index % len(PROMPTS)],
            ar="1:1",
            size=(width, height),
            params=TaskParams(seed=index),
            max_attempts=1,
        )
        await app.store.create(new, key, max_queue=tasks + 1)

    # Several workers share the pool's one pipeline: while one encodes and stores its batch's
    # images, the next batch is already being generated.
    workers = [
        Worker(
            app.store,
            app.storage,
            app.catalog,
            pool,
            retention_hours=1,
            lease_seconds=600,
            poll_seconds=0.01,
            models=[model],
            name=f"bench-{index}",
        )
        for index in range(concurrency)
    ]
    before = _batch_histogram(model)
    started = time.perf_counter()
    running = [asyncio.create_task(worker.run()) for worker in workers]
    while True:
        counts = await app.store.count_by_status()
        if counts["done"] + counts["failed"] >= tasks:
            break
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - started
    for worker in workers:
        worker.stop()
    await asyncio.gather(*running)
    if counts["failed"]:
        print(f"  warning: {counts['failed']} tasks failed", file=sys.stderr)
    batches, batched = _batch_histogram(model, before)
    await app.close()
    return Result(max_batch, tasks, seconds, batched / max(batches, 1)), (pool, engine)


def _batch_histogram(model: str, before: tuple[float, float] = (0, 0)) -> tuple[float, float]:
    """(engine calls, tasks) of the model's darkroom_batch_size histogram, less `before`."""
    labels = {"model": model}
    count = REGISTRY.get_sample_value("darkroom_batch_size_count", labels) or 0
    total = REGISTRY.get_sample_value("darkroom_batch_size_sum", labels) or 0
    return count - before[0], total - before[1]


def _toml(model: str, entry: dict[str, Any]) -> str:
    import json

    lines = [f'[models."{model}"]'] + [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


async def compare(
    workdir: Path, entry: dict[str, Any], args: argparse.Namespace
) -> tuple[list[Result], Any]:
    """Each setting `repeat` times, settings interleaved so that a busy spell on a shared
    machine hits both alike; the best run of each counts. Also returns the engine of the last
    run, still loaded."""
    best: dict[int, Result] = {}
    pool: EnginePool | None = None
    engine = None
    for round_ in range(args.repeat):
        for max_batch in args.batches:
            if pool is not None:
                await pool.close()  # one model in memory at a time
            result, (pool, engine) = await run_setting(
                workdir / f"round-{round_}", entry, max_batch, args.tasks, args.workers
            )
            if max_batch not in best or result.seconds < best[max_batch].seconds:
                best[max_batch] = result
    return [best[max_batch] for max_batch in args.batches], engine


def print_results(results: list[Result]) -> None:
    base = results[0].images_per_second
    for r in results:
        print(
            f"  max_batch {r.max_batch}: {r.tasks} images in {r.seconds:6.2f} s = "
            f"{r.images_per_second:7.2f} images/s (mean batch {r.mean_batch:.2f}, "
            f"gain x{r.images_per_second / base:.2f})"
        )


# -- CPU: tiny pipeline --------------------------------------------------------------------------


def cpu(args: argparse.Namespace, workdir: Path) -> None:
    import torch

    folder = build(args.family, workdir / f"tiny-{args.family}")
    entry = {
        "engine": "diffusers",
        "source": str(folder),
        "native_size": args.size,
        "steps": args.steps,
        "guidance": args.guidance,
        "device": "cpu",
    }
    print(
        f"CPU: tiny {args.family} pipeline (random weights), {args.size}x{args.size}, "
        f"{args.steps} steps, guidance {args.guidance}, {args.tasks} tasks, best of {args.repeat}, "
        f"{args.workers} worker(s), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}"
    )
    results, _engine = asyncio.run(compare(workdir, entry, args))
    print_results(results)


# -- GPU: full-size SD 1.5 and SDXL with random weights -------------------------------------------

# Published configurations (diffusers' unet/config.json, text_encoder*/config.json,
# vae/config.json of runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-xl-base-1.0).
SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
SDXL_UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280),
    "layers_per_block": 2,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
    "norm_num_groups": 32,
}
CLIP_L = {  # openai/clip-vit-large-patch14, the text tower
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
CLIP_BIGG = {  # laion/CLIP-ViT-bigG-14, the text tower (SDXL's text_encoder_2)
    "vocab_size": 49408,
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
}
GPU_MODELS = {
    "sd15": {"native_size": 512, "steps": 30, "guidance": 7.5},
    "sdxl": {"native_size": 1024, "steps": 30, "guidance": 6.0},
}


def build_full_size(family: str, folder: Path, dtype: Any) -> Path:
    """The family's full-size pipeline with random weights, saved like a hub model. Built on
    the GPU (random init of billions of parameters is slow on a CPU)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    if (folder / "model_index.json").exists():
        return folder
    torch.manual_seed(0)
    tokenizer = clip_tokenizer()  # byte-level, offline; its ids fit the 49408-entry tables
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    specials = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    with torch.device("cuda"):
        if family == "sd15":
            pipeline = StableDiffusionPipeline(
                vae=AutoencoderKL(**VAE, sample_size=512, scaling_factor=0.18215),
                text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L, **specials)),
                tokenizer=tokenizer,
                unet=UNet2DConditionModel(**SD15_UNET),
                scheduler=scheduler,
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        else:
            pipeline = StableDiffusionXLPipeline(
                vae=AutoencoderKL(**VAE, sample_size=1024, scaling_factor=0.13025),
                text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L, **specials)),
                text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG, **specials)),
                tokenizer=tokenizer,
                tokenizer_2=clip_tokenizer(),
                unet=UNet2DConditionModel(**SDXL_UNET),
                scheduler=scheduler,
            )
    pipeline.to(dtype)
    save_atomically(pipeline, folder)
    return folder


def unet_flops_per_image(engine: Any, width: int, height: int) -> float:
    """FLOPs of the UNet for one image: one call on the guidance batch, times the steps."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    pipeline = engine._pipeline
    unet = pipeline.unet
    guided = 2 if engine.guidance > 1 else 1  # classifier-free guidance runs each image twice
    device, dtype = unet.device, unet.dtype
    latents = torch.randn(guided, 4, height // 8, width // 8, device=device, dtype=dtype)
    text = torch.randn(guided, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    extra: dict[str, Any] = {}
    if unet.config.addition_embed_type == "text_time":
        pooled = pipeline.text_encoder_2.config.projection_dim
        extra["added_cond_kwargs"] = {
            "text_embeds": torch.randn(guided, pooled, device=device, dtype=dtype),
            "time_ids": torch.tensor([[height, width, 0, 0, height, width]] * guided).to(
                device, dtype
            ),
        }
    timestep = torch.tensor(500, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(latents, timestep, encoder_hidden_states=text, **extra)
    return counter.get_total_flops() * engine.steps


def peak_bf16(name: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    return next((peak for key, peak in PEAK_BF16 if key in name), None)


def gpu(args: argparse.Namespace, workdir: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs CUDA; none is available here")
    name = torch.cuda.get_device_name()
    dtype_name = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    dtype = getattr(torch, dtype_name)
    peak = peak_bf16(name, args.peak_tflops)
    print(
        f"GPU: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, {dtype_name}, "
        f"{args.tasks} tasks per setting, {args.workers} workers; peak dense bf16 "
        f"{f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown (pass --peak-tflops)'}"
    )
    models_dir = Path(args.models_dir) if args.models_dir else workdir
    for family in args.gpu_models:
        settings = GPU_MODELS[family]
        started = time.perf_counter()
        folder = build_full_size(family, models_dir / f"random-{family}", dtype)
        print(
            f"\n{family}: full-size architecture, random weights, {settings['native_size']}px, "
            f"{settings['steps']} steps, guidance {settings['guidance']} "
            f"(built and saved in {time.perf_counter() - started:.0f} s)"
        )
        entry = {"engine": "diffusers", "source": str(folder), "dtype": dtype_name, **settings}
        results, engine = asyncio.run(compare(workdir, entry, args))
        print_results(results)
        side = settings["native_size"]
        flops = unet_flops_per_image(engine, side, side)
        print(f"  UNet FLOPs per image: {flops / 1e12:.2f} TFLOP")
        for result in results:
            achieved = flops * result.images_per_second
            fraction = f" = {achieved / peak:.1%} of peak" if peak else ""
            print(f"  max_batch {result.max_batch}: UNet {achieved / 1e12:.1f} TFLOP/s{fraction}")
        torch.cuda.empty_cache()


def _quiet_progress_bars() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", action="store_true", help="full-size SD 1.5 and SDXL on CUDA")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per setting")
    parser.add_argument("--batches", default="1,8", help="max_batch settings to compare")
    parser.add_argument("--repeat", type=int, default=None, help="runs per setting; best counts")
    parser.add_argument("--workers", type=int, default=None, help="workers sharing the engine")
    parser.add_argument("--family", default="sd15", help="CPU: tiny family (sd15 sdxl sd3 flux)")
    parser.add_argument("--size", type=int, default=256, help="CPU: native size of the model")
    parser.add_argument("--steps", type=int, default=4, help="CPU: denoising steps")
    parser.add_argument("--guidance", type=float, default=7.5, help="CPU: guidance scale")
    parser.add_argument("--gpu-models", default="sd15,sdxl", help="GPU: families to run")
    parser.add_argument("--models-dir", default=None, help="GPU: keep built models here")
    parser.add_argument("--peak-tflops", type=float, default=None, help="GPU: peak bf16 TFLOP/s")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    args.gpu_models = [m.strip() for m in args.gpu_models.split(",") if m.strip()]
    args.tasks = args.tasks or (16 if args.gpu else 32)
    args.repeat = args.repeat or (1 if args.gpu else 3)
    args.workers = args.workers or (2 if args.gpu else 1)
    logs.configure("warning")
    _quiet_progress_bars()
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as tmp:
        (gpu if args.gpu else cpu)(args, Path(tmp))


if __name__ == "__main__":
    main()
