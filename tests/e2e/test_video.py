"""A video model through the real server: a tiny random-weight LTX-Video pipeline behind
`darkroom serve`, on both backends. The task's `url` downloads a real MP4 (decoded here with
PyAV: H.264, the entry's frame count and fps, the ratio's size), stored as `<id>_result.mp4`
and served as video/mp4; the models listing names its kind; a task with a `data:` reference
image starts its clip from it (a real MP4 again, at the ratio's size, not the image's);
/generate answers its link and `darkroom generate -o clip` saves clip.mp4."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image, ImageDraw

from darkroom.engines.local.random_video import build_video
from tests.support.backends import Backend
from tests.support.catalogs import write_catalog
from tests.support.media import client_for
from tests.support.servers import running, wait_for_status

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


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_video_task_with_a_reference_image_starts_its_mp4_from_it(
    tmp_path: Path, video_catalog: Path
) -> None:
    """A square picture for a 16:9 clip: the first frame is cropped to the clip's size."""
    picture = Image.new("RGB", (96, 96), (120, 120, 120))
    ImageDraw.Draw(picture).rectangle((0, 0, 47, 47), fill=(250, 250, 40))
    with running(tmp_path, video_catalog) as darkroom:
        client = client_for(darkroom, darkroom.create_key())
        [listed] = client.get("/v1/media/models").json()["data"]
        assert listed["max_images"] == 1
        created = client.post(
            "/v1/media/create",
            json={"model": "tiny-ltx", "prompt": "a fox", "ar": "16:9", "image": data_url(picture)},
        ).json()
        task = wait_for_status(client, created["id"])
        assert task["status"] == "done", task
        download = httpx.get(task["url"], timeout=30)
        assert download.headers["content-type"] == "video/mp4"
        assert decoded(download.content) == ("h264", FRAMES, FPS, (192, 128))


def test_generate_and_the_cli_answer_and_save_a_video_as_mp4(
    tmp_path: Path, video_catalog: Path
) -> None:
    with running(tmp_path, video_catalog) as darkroom:
        key = darkroom.create_key()
        client = client_for(darkroom, key)
        answer = client.post(
            "/v1/media/generate", json={"model": "tiny-ltx", "prompt": "a fox"}, timeout=120
        ).json()
        assert answer["status"] == "done", answer
        assert answer["result"] == answer["url"] and "_result.mp4" in answer["url"]
        assert decoded(httpx.get(answer["url"]).content)[:3] == ("h264", FRAMES, FPS)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
        env |= {"DARKROOM_BASE_URL": darkroom.base_url, "DARKROOM_API_KEY": key}
        saved = subprocess.run(
            [sys.executable, "-m", "darkroom", "generate", "a fox", "-m", "tiny-ltx"]
            + ["-o", str(tmp_path / "clip")],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert saved.returncode == 0, saved.stderr
        assert saved.stdout.split() == [str(tmp_path / "clip.mp4")]
        clip = (tmp_path / "clip.mp4").read_bytes()
        assert decoded(clip) == ("h264", FRAMES, FPS, (128, 128))
