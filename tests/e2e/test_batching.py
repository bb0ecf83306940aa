"""Dynamic batching over the real path: tasks queued while no worker runs are claimed together
by a worker that starts later (up to the model's max_batch), run as one pipeline call, observed
in the `darkroom_batch_size` histogram; seeds and negative prompts reach the engine."""

from __future__ import annotations

import io
import json
import re

import httpx
import numpy as np
from PIL import Image

from tests.support.catalogs import tiny_folder, write_catalog
from tests.support.servers import Darkroom, free_port, wait_for_status

MAX_BATCH = 4


def _image(url: str) -> np.ndarray:
    response = httpx.get(url)
    assert response.status_code == 200
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"), dtype=np.int16)


def _batch_sizes(logs: str) -> list[int]:
    return [json.loads(line)["size"] for line in logs.splitlines() if '"event": "batch"' in line]


def test_queued_tasks_run_in_batches_up_to_max_batch_and_seeds_reach_the_engine(tmp_path):
    folder = tiny_folder("sd15", tmp_path / "models")
    entry = {
        "engine": "diffusers",
        "source": str(folder),
        "native_size": 128,
        "steps": 2,
        "guidance": 7.0,
        "max_batch": MAX_BATCH,
        "batch_wait_ms": 50,
    }
    config = write_catalog(tmp_path / "models.toml", {"tiny-sd": entry})
    server = Darkroom(tmp_path, config)
    server.start_server("--workers", "0")
    try:
        key = server.create_key()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": key}) as client:

            def create(**fields: object) -> str:
                body = {"model": "tiny-sd", "prompt": "a lighthouse", **fields}
                task = client.post("/v1/media/create", json=body).json()
                assert task["code"] == 0, task
                return task["id"]

            same_a, same_b = create(seed=42), create(seed=42)
            other_seed = create(seed=43)
            negative = create(seed=42, negative_prompt="green trees")
            rest = [create(seed=i) for i in range(4)]
            # A worker on another node of the same installation: a second server process.
            port = free_port()
            server.start_server("--workers", "1", port=port)
            tasks = {
                task_id: wait_for_status(client, task_id)
                for task_id in [same_a, same_b, other_seed, negative, *rest]
            }
            assert {t["status"] for t in tasks.values()} == {"done"}
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            images = {task_id: _image(task["url"]) for task_id, task in tasks.items()}
        sizes = _batch_sizes(server.logs())
        assert sum(sizes) == 8 and max(sizes) > 1 and max(sizes) <= MAX_BATCH
        count = float(re.search(r'darkroom_batch_size_count\{model="tiny-sd"\} (\S+)', metrics)[1])
        single = float(
            re.search(r'darkroom_batch_size_bucket\{le="1.0",model="tiny-sd"\} (\S+)', metrics)[1]
        )
        assert count == len(sizes) and single < count  # some engine call had several tasks
        assert np.abs(images[same_a] - images[same_b]).mean() < 0.5  # same seed, same image
        assert np.abs(images[same_a] - images[other_seed]).mean() > 1
        assert np.abs(images[same_a] - images[negative]).mean() > 1  # the negative prompt counts
    finally:
        server.stop()
