"""The hosted service's own examples (Python requests, curl, axios), with only the base URL and
key changed, run against the real server: each creates a task, polls it to done and downloads a
WebP of the size its ratio asks for. `make test` installs curl, Node.js and axios."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from pathlib import Path

import requests
from PIL import Image

JS = Path(__file__).resolve().parents[1] / "js"
PROMPT = (
    "Cinematic, high-quality photo of Thanos in a serene Japanese forest, clad in a "
    "traditional samurai armor made of white porcelain, adorned with intricate blue paintings"
    " that evoke the art of ancient Japanese ceramics. The armor's delicate, hand-painted "
    "designs seem to shimmer in the soft, dappled light filtering through the forest canopy. "
    "Thanos wields a heavy, curved katana with a worn, wooden scabbard, its blade gleaming "
    "with a subtle, deadly sheen. The scene is captured in a dramatic, close-up angle, with "
    "the misty forest atmosphere and the soft, golden light of dawn or dusk accentuating the "
    "armor's ethereal beauty, while the weight and power of the katana seem to anchor Thanos "
    "to the earth, ready to unleash his fury upon the world."
)
SEED_SIZE_9_21 = (640, 1536)


def assert_seed_created(task: dict) -> None:
    assert task["code"] == 0 and task["status"] == "idle" and task["url"] is None
    assert task["prompt"] == PROMPT + " --ar 9:21"
    assert list(task) == ["code", "id", "model", "prompt", "created_at", "status", "url", "cost"]


def assert_webp_of_size(data: bytes, size: tuple[int, int]) -> None:
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP" and image.size == size


def test_seed_python_requests_example(darkroom, api_key):
    base = darkroom.base_url
    YOUR_API_KEY = api_key  # noqa: N806 - the seed's own name
    response = requests.post(
        f"{base}/v1/media/create",
        headers={"Authorization": YOUR_API_KEY, "Content-Type": "application/json"},
        json={"model": "google-imagen-3", "ar": "9:21", "prompt": PROMPT},
    )
    created = response.json()
    assert_seed_created(created)
    task = created
    for _ in range(600):
        response = requests.post(
            f"{base}/v1/media/result",
            headers={"Authorization": YOUR_API_KEY, "Content-Type": "application/json"},
            json={"task_id": created["id"]},
        )
        task = response.json()
        if task["status"] in ("done", "failed", "error"):
            break
        time.sleep(0.2)
    assert task["status"] == "done", task
    assert_webp_of_size(requests.get(task["url"]).content, SEED_SIZE_9_21)


def curl(*args: str) -> str:
    return subprocess.run(
        ["curl", "--silent", "--show-error", *args], check=True, capture_output=True, text=True
    ).stdout


def test_seed_curl_example(darkroom, api_key, tmp_path):
    body = json.dumps({"model": "google-imagen-3", "ar": "9:21", "prompt": PROMPT})
    created = json.loads(
        curl(
            "--request", "POST",
            "--url", f"{darkroom.base_url}/v1/media/create",
            "--header", f"Authorization: {api_key}",
            "--header", "Content-Type: application/json",
            "--data", body,
        )
    )  # fmt: skip
    assert_seed_created(created)
    for _ in range(600):
        task = json.loads(
            curl(
                "--request", "POST",
                "--url", f"{darkroom.base_url}/v1/media/result",
                "--header", f"Authorization: {api_key}",
                "--header", "Content-Type: application/json",
                "--data", json.dumps({"task_id": created["id"]}),
            )
        )  # fmt: skip
        if task["status"] in ("done", "failed", "error"):
            break
        time.sleep(0.2)
    assert task["status"] == "done", task
    target = tmp_path / "result.webp"
    curl("--fail", "--output", str(target), task["url"])
    assert_webp_of_size(target.read_bytes(), SEED_SIZE_9_21)


def test_seed_axios_example(darkroom, api_key, tmp_path):
    target = tmp_path / "result.webp"
    run = subprocess.run(
        ["node", str(JS / "seed_example.js"), str(target)],
        env={**os.environ, "DARKROOM_BASE_URL": darkroom.base_url, "DARKROOM_API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    created, finished = (json.loads(line) for line in run.stdout.splitlines()[:2])
    assert_seed_created(created)
    assert finished["status"] == "done"
    assert_webp_of_size(target.read_bytes(), SEED_SIZE_9_21)
