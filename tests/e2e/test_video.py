"""A video model through the real server: a tiny random-weight LTX-Video pipeline behind
`darkroom serve`, on both backends. The task's `url` downloads a real MP4 (decoded here with
PyAV: H.264, the entry's frame count and fps, the ratio's size), stored as `<id>_result.mp4`
and served as video/mp4; the models listing names its kind."""

from __future__ import annotations

import io
from pathlib import Path

import av
import httpx
import pytest

from darkroom.engines.local.random_video import build_video
from tests.support.backends import Backend
from tests.support.catalogs import write_catalog
from tests.support.media import client_for
from tests.support.servers import wait_for_status

FRAMES, FPS = 9, 8
ENTRY = {"engine": "diffusers", "kind": "video", "frames": FRAMES, "fps": FPS, "steps": 2}


@pytest.fixture(scope="module")
def video_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("video")
    folder = str(build_video("ltx", root / "models" / "tiny-ltx"))
    entry = {**ENTRY, "source": folder, "native_size": 128}
    return write_catalog(root / "models.toml", {"tiny-ltx": entry})


def decoded(data: bytes) -> tuple[str, int, float, tuple[int, int]]:
    """Codec, frames, fps and size of an MP4."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return (
            stream.codec_context.name,
            frames,
            float(stream.average_rate),
            (
                stream.width,
                stream.height,
            ),
        )


def test_a_video_task_answers_a_real_mp4_of_its_frames_fps_and_size(
    backend: Backend, tmp_path: Path, video_catalog: Path
) -> None:
    with backend.running(tmp_path, video_catalog) as darkroom:
        client = client_for(darkroom, darkroom.create_key())
        listed = client.get("/v1/media/models").json()["data"]
        assert [(m["id"], m["kind"]) for m in listed] == [("tiny-ltx", "video")]
        created = client.post(
            "/v1/media/create", json={"model": "tiny-ltx", "prompt": "a fox", "ar": "16:9"}
        ).json()
        task = wait_for_status(client, created["id"])
        assert task["status"] == "done", task
        assert f"{created['id']}_result.mp4" in task["url"]
        download = httpx.get(task["url"], timeout=30)
        assert download.status_code == 200
        assert download.headers["content-type"] == "video/mp4"
        assert decoded(download.content) == ("h264", FRAMES, FPS, (192, 128))
