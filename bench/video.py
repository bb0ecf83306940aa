"""Video throughput on the real worker path: frames of output per second, tiny text-to-video
and image-to-video pipelines (LTX-Video and Wan architectures at a few channels, random weights).

    .venv/bin/python bench/video.py                       # CPU, text to video
    .venv/bin/python bench/video.py --first-frame --families ltx,wan-ti2v,wan-i2v
                                                          # each clip starts from an image
    .venv/bin/python bench/video.py --device cuda         # a CUDA machine

Each family gets its own installation (a temporary SQLite database, local storage, the
diffusers engine loading the saved folder with from_pretrained). The tasks are queued first;
then one worker claims them one at a time (a video model's max_batch is 1), denoises each clip,
encodes it as MP4 (H.264, PyAV) in a thread, stores it and completes the task. The clock runs
from the worker's start to the last task done; the model is loaded and warmed up with one clip
beforehand. The figure is frames of output per second (tasks x frames / seconds), and, apart,
what encoding alone takes per frame, so the two costs can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from PIL import Image  # noqa: E402

from darkroom import logs  # noqa: E402
from darkroom.app import App  # noqa: E402
from darkroom.config import Settings  # noqa: E402
from darkroom.engines import BatchMonitor, Job  # noqa: E402
from darkroom.engines.encoding import encode_mp4  # noqa: E402
from darkroom.engines.local.random_video import (  # noqa: E402
    FIRST_FRAME_VARIANTS,
    VIDEO_FAMILIES,
    build_video,
)
from darkroom.tasks import NewTask, TaskParams  # noqa: E402
from darkroom.worker import EnginePool, Worker  # noqa: E402

PROMPTS = ["a fox runs through snow", "waves on a beach", "a city at night", "rain on a window"]


def first_frame(side: int) -> tuple[Image.Image, str]:
    """A gradient picture, as an image and as the `data:` URL a task carries."""
    picture = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return picture, "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def run_family(workdir: Path, family: str, args: argparse.Namespace) -> tuple[float, float]:
    """(seconds for the tasks on the worker path, seconds to encode one clip alone)."""
    data_dir = workdir / family
    data_dir.mkdir(parents=True)
    folder = build_video(family, data_dir / "model")
    entry = {
        "engine": "diffusers",
        "source": str(folder),
        "kind": "video",
        "frames": args.frames,
        "fps": args.fps,
        "steps": args.steps,
        "native_size": args.size,
        "device": args.device,
    }
    config = data_dir / "models.toml"
    lines = ['[models."bench"]'] + [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
    config.write_text("\n".join(lines) + "\n")
    app = App.from_settings(Settings(data_dir=data_dir, config=config, log_level="warning"))
    await app.migrate()
    _raw, key = await app.keys.create("bench")
    width, height = app.catalog["bench"].size_for("1:1")
    pool = EnginePool(app.catalog, data_dir)
    engine = await pool.get("bench")
    picture, data_url = first_frame(width)
    images = (picture,) if args.first_frame else ()
    warm_up = Job("0" * 24, PROMPTS[0], width, height, 0, images=images)
    [clip] = await engine.generate([warm_up], BatchMonitor())
    encode_started = time.perf_counter()
    await asyncio.to_thread(encode_mp4, clip)
    encode_seconds = time.perf_counter() - encode_started
    for index in range(args.tasks):
        new = NewTask.build(
            key_id=key.id,
            model="bench",
            prompt=PROMPTS[index % len(PROMPTS)],
            size=(width, height),
            params=TaskParams(seed=index, images=(data_url,) if args.first_frame else ()),
            max_attempts=1,
            kind="video",
            clip=(args.frames, args.fps),
        )
        await app.store.create(new, key, max_queue=args.tasks + 1)
    worker = Worker(
        app.store,
        app.storage,
        app.catalog,
        pool,
        retention_hours=1,
        lease_seconds=600,
        poll_seconds=0.01,
        models=["bench"],
    )
    started = time.perf_counter()
    running = asyncio.create_task(worker.run())
    while True:
        counts = await app.store.count_by_status()
        if counts["done"] + counts["failed"] >= args.tasks:
            break
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - started
    worker.stop()
    await running
    if counts["failed"]:
        print(f"  warning: {counts['failed']} tasks failed", file=sys.stderr)
    await pool.close()
    await app.close()
    return seconds, encode_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--families",
        default=",".join(VIDEO_FAMILIES),
        help=f"of {', '.join(dict.fromkeys(VIDEO_FAMILIES + FIRST_FRAME_VARIANTS))}",
    )
    parser.add_argument(
        "--first-frame", action="store_true", help="every clip starts from a reference image"
    )
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--fps", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="native side: 1:1 is size x size")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    logs.configure("warning")

    import av
    import torch

    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor()
    print(
        f"bench/video.py: {args.tasks} tasks of {args.frames} frames at {args.size}x{args.size}, "
        f"{args.steps} steps, {'from a first frame' if args.first_frame else 'from text'}, "
        f"on {args.device} ({where or platform.machine()}; torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; PyAV {av.__version__})"
    )
    with tempfile.TemporaryDirectory() as workdir:
        for family in args.families.split(","):
            seconds, encode_seconds = asyncio.run(run_family(Path(workdir), family, args))
            frames = args.tasks * args.frames
            print(
                f"  {family}: {frames} frames in {seconds:6.2f} s = {frames / seconds:7.2f} "
                f"frames/s of output ({args.tasks / seconds:.2f} clips/s); encoding alone "
                f"{1000 * encode_seconds / args.frames:.2f} ms/frame"
            )


if __name__ == "__main__":
    main()
