"""Video throughput on the real worker path: frames of output per second, tiny text-to-video
pipelines (LTX-Video and Wan architectures at a few channels, random weights).

    .venv/bin/python bench/video.py                       # CPU
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
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from darkroom import logs  # noqa: E402
from darkroom.app import App  # noqa: E402
from darkroom.config import Settings  # noqa: E402
from darkroom.engines import BatchMonitor, Job  # noqa: E402
from darkroom.engines.encoding import encode_mp4  # noqa: E402
from darkroom.engines.local.random_video import VIDEO_FAMILIES, build_video  # noqa: E402
from darkroom.tasks import NewTask, TaskParams  # noqa: E402
from darkroom.worker import EnginePool, Worker  # noqa: E402

PROMPTS = ["a fox runs through snow", "waves on a beach", "a city at night", "rain on a window"]


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
    [clip] = await engine.generate([Job("0" * 24, PROMPTS[0], width, height, 0)], BatchMonitor())
    encode_started = time.perf_counter()
    await asyncio.to_thread(encode_mp4, clip)
    encode_seconds = time.perf_counter() - encode_started
    for index in range(args.tasks):
        new = NewTask.build(
            key_id=key.id,
            model="bench",
            prompt=PROMPTS[index % len(PROMPTS)],
            size=(width, height),
            params=TaskParams(seed=index),
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
    parser.add_argument("--families", default=",".join(VIDEO_FAMILIES))
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
        f"{args.steps} steps, on {args.device} ({where or platform.machine()}; torch "
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
