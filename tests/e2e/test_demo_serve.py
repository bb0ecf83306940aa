"""`darkroom serve --config config/demo.toml`, as `make serve` runs it: with the hub reachable
(a local hub serving a tiny pipeline as stabilityai/sd-turbo) the demo model downloads it once,
with progress on the console, and draws with it; offline it falls back to random weights, says
so once in the log and on /v1/media/models, and its tasks are done all the same. The API node
imports neither torch nor huggingface_hub."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from darkroom.engines.sizes import size_for
from tests.support.fakes.hub import FakeHub, hub_folder
from tests.support.fakes.serving import client_for, download
from tests.support.servers import ROOT, Darkroom, wait_for_status

DEMO = ROOT / "config" / "demo.toml"
MODEL = "google-imagen-3"


@contextmanager
def demo_server(tmp_path: Path, **env: str) -> Iterator[Darkroom]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    darkroom = Darkroom(data_dir, DEMO)
    darkroom.env.update({"HF_HOME": str(tmp_path / "hf"), **env})
    for name in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HUB_CACHE", "DARKROOM_DEMO_MODEL"):
        if name not in env:
            darkroom.env.pop(name, None)
    try:
        darkroom.start_server()
        yield darkroom
    finally:
        darkroom.stop()


def make_pictures(client: httpx.Client, count: int) -> list[dict]:
    tasks = [
        client.post(
            "/v1/media/create", json={"model": MODEL, "ar": "16:9", "prompt": "a kite"}
        ).json()
        for _ in range(count)
    ]
    return [wait_for_status(client, task["id"]) for task in tasks]


def listed(client: httpx.Client) -> dict:
    [entry] = [m for m in client.get("/v1/media/models").json()["data"] if m["id"] == MODEL]
    return entry


def test_offline_the_demo_falls_back_to_random_weights_and_says_so_once(tmp_path: Path):
    with demo_server(tmp_path, HF_HUB_OFFLINE="1") as darkroom, client_for(darkroom) as client:
        done = make_pictures(client, 2)
        assert [task["status"] for task in done] == ["done", "done"]
        assert download(done[0]["url"]).size == size_for("16:9", 1024)
        assert listed(client)["demo"] == "random weights"
        logs = darkroom.logs()
    assert logs.count("RANDOM WEIGHTS") == 1


def test_with_the_hub_reachable_the_demo_downloads_the_model_once_and_draws_with_it(
    tmp_path: Path,
):
    with FakeHub() as hub:
        hub.add("stabilityai/sd-turbo", hub_folder(tmp_path / "hub"))
        with demo_server(tmp_path, HF_ENDPOINT=hub.base_url) as darkroom:
            with client_for(darkroom) as client:
                [task] = make_pictures(client, 1)
                assert task["status"] == "done"
                assert download(task["url"]).size == size_for("16:9", 1024)
                assert "demo" not in listed(client)
            logs = darkroom.logs()
        assert len(hub.downloads("unet/diffusion_pytorch_model.fp16.safetensors")) == 1
    assert "Fetching" in logs  # huggingface_hub's progress, on the console
    assert "draws with real weights" in logs and "RANDOM WEIGHTS" not in logs


PROBE = """
import json, sys
from pathlib import Path
import darkroom.api.listing, darkroom.app
from darkroom.config import SettingsFile
catalog = SettingsFile.load(Path(sys.argv[1])).catalog
print(json.dumps({
    "engine": catalog["google-imagen-3"].engine,
    "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"torch", "huggingface_hub"}),
}))
"""


def test_the_api_node_reads_the_demo_catalog_without_torch_or_the_hub():
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(DEMO)], capture_output=True, text=True, check=True
    )
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == {"engine": "demo", "loaded": []}
