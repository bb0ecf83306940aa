"""The google engine over HTTP against a local server speaking Vertex AI's `:predict` (with the
service-account token exchange) and the Gemini API's `:generateContent`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from darkroom.config import SettingsFile
from darkroom.engines import BatchMonitor, CatalogError, GenerationError, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.sizes import RATIOS
from tests.support.fakes.base import bomb_png
from tests.support.fakes.google_ai import API_KEY, LOCATION, PROJECT, FakeGoogle
from tests.support.fakes.serving import client_for, download, serving
from tests.support.servers import free_port, wait_for_status

FAST = {"retry_initial_seconds": 0.01, "retry_max_seconds": 0.05, "attempts": 3}
GOOGLE_ENV = (
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
)


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in GOOGLE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud credentials of the machine's user


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    with FakeGoogle() as server:
        yield server


def vertex(fake: FakeGoogle, tmp_path: Path, **options: Any):
    entry = {
        "engine": "google",
        "base_url": fake.base_url,
        "project": PROJECT,
        "location": LOCATION,
        "credentials_file": str(fake.service_account_file(tmp_path)),
        **FAST,
        **options,
    }
    spec = Catalog.from_dict({"google-imagen-3": entry})["google-imagen-3"]
    return load_engine(spec, tmp_path), spec


def gemini_api(fake: FakeGoogle, tmp_path: Path, **options: Any):
    entry = {
        "engine": "google",
        "backend": "gemini",
        "upstream_model": "gemini-2.5-flash-image",
        "base_url": fake.base_url,
        **FAST,
        **options,
    }
    spec = Catalog.from_dict({"nano": entry})["nano"]
    return load_engine(spec, tmp_path), spec


def job(spec, ratio: str = "1:1", prompt: str = "a heron in the reeds", n: int = 0) -> Job:
    width, height = spec.size_for(ratio)
    return Job(task_id=f"task{n}", prompt=prompt, width=width, height=height, seed=7)


async def generate(engine, *jobs: Job) -> list:
    try:
        return await engine.generate(list(jobs), BatchMonitor())
    finally:
        await engine.close()


def predictions(fake: FakeGoogle) -> list[dict]:
    return [r.json() for r in fake.requests if r.path.endswith(":predict")]


async def test_vertex_every_ratio_comes_back_at_the_spec_size(fake, tmp_path):
    engine, spec = vertex(fake, tmp_path)
    jobs = [job(spec, ratio, n=i) for i, ratio in enumerate(RATIOS)]
    outcomes = await generate(engine, *jobs)
    for ratio, image, asked in zip(RATIOS, outcomes, jobs, strict=True):
        assert not isinstance(image, GenerationError), (ratio, image)
        assert image.size == (asked.width, asked.height), ratio
    asked = {b["parameters"]["aspectRatio"] for b in predictions(fake)}
    assert asked == {"1:1", "16:9", "9:16", "4:3", "3:4"}  # 21:9 and 9:21 drawn at 16:9, 9:16
    assert len([r for r in fake.requests if r.path == "/token"]) == 1  # one token, reused


async def test_a_wide_ratio_is_center_cropped_not_stretched(fake, tmp_path):
    engine, spec = vertex(fake, tmp_path)
    [image] = await generate(engine, job(spec, "21:9"))
    assert image.size == (1536, 640)
    assert predictions(fake)[0]["parameters"]["aspectRatio"] == "16:9"
    # The fake draws a white band over the middle third of its 1408x768 picture. Scaled to
    # cover 1536 wide and cropped top and bottom, the band fills 279 of 640 rows; stretched,
    # it would fill a third (213).
    column = [image.getpixel((768, y)) for y in range(640)]
    white = sum(1 for pixel in column if min(pixel) > 200)
    assert white / 640 > 0.4


async def test_vertex_application_default_credentials(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake.service_account_file(tmp_path)))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", LOCATION)
    spec = Catalog.from_dict({"g": {"engine": "google", "base_url": fake.base_url}})["g"]
    [image] = await generate(load_engine(spec, tmp_path), job(spec, "4:3"))
    assert image.size == (1280, 896)


async def test_vertex_blocked_prompt_and_filtered_image(fake, tmp_path):
    engine, spec = vertex(fake, tmp_path)
    blocked, filtered = await generate(
        engine, job(spec, prompt="a forbidden thing"), job(spec, prompt="a filtered thing", n=1)
    )
    assert isinstance(blocked, GenerationError) and isinstance(filtered, GenerationError)
    assert "prompt was blocked" in str(blocked) and "1002" in str(blocked)
    assert "image was blocked" in str(filtered) and "1001" in str(filtered)
    assert len(predictions(fake)) == 2  # safety blocks are not retried


async def test_vertex_rate_limit_then_success(fake, tmp_path):
    engine, spec = vertex(fake, tmp_path)
    fake.fail_next(429)
    [image] = await generate(engine, job(spec))
    assert image.size == (1024, 1024)
    assert len(fake.requests) == 3  # the token, the 429, the image


async def test_vertex_server_errors_exhaust_the_retries(fake, tmp_path):
    engine, spec = vertex(fake, tmp_path)
    fake.fail_next(503, times=5)
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "not available" in str(failure) and "tried 3 times" in str(failure)
    assert len(predictions(fake)) == 3


async def test_vertex_timeout(fake, tmp_path):
    engine, spec = vertex(fake, tmp_path, timeout_seconds=0.5, attempts=2)
    fake.stall_next(1.5, times=3)
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "did not answer" in str(failure)


async def test_vertex_wrong_project_is_a_credentials_message(fake, tmp_path):
    engine, spec = vertex(fake, tmp_path, project="someone-else")
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "HTTP 403" in str(failure) and "operator" in str(failure)
    assert "ya29" not in str(failure)


async def test_gemini_api_every_ratio_comes_back_at_the_spec_size(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    engine, spec = gemini_api(fake, tmp_path)
    jobs = [job(spec, ratio, n=i) for i, ratio in enumerate(RATIOS)]
    outcomes = await generate(engine, *jobs)
    for ratio, image, asked in zip(RATIOS, outcomes, jobs, strict=True):
        assert not isinstance(image, GenerationError), (ratio, image)
        assert image.size == (asked.width, asked.height), ratio
    asked = {r.json()["generationConfig"]["imageConfig"]["aspectRatio"] for r in fake.requests}
    assert asked == {"1:1", "16:9", "9:16", "4:3", "3:4", "21:9"}  # 9:21 drawn at 9:16
    assert all(r.headers["x-goog-api-key"] == API_KEY for r in fake.requests)


async def test_gemini_api_safety_blocks(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", API_KEY)
    engine, spec = gemini_api(fake, tmp_path)
    blocked, filtered, fine = await generate(
        engine,
        job(spec, prompt="forbidden"),
        job(spec, prompt="filtered", n=1),
        job(spec, n=2),
    )
    assert "1002" in str(blocked) and "PROHIBITED_CONTENT" in str(blocked)
    assert "1001" in str(filtered) and "IMAGE_SAFETY" in str(filtered)
    assert fine.size == (1024, 1024)


async def test_gemini_api_wrong_key_is_not_retried_nor_shown(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaWrongKeyWrongKeyWrongKey0000")
    engine, spec = gemini_api(fake, tmp_path)
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "API key not valid" in str(failure) and "AIzaWrong" not in str(failure)
    assert len(fake.requests) == 1


def test_imagen_needs_vertex_and_a_key_is_needed_at_all(fake, tmp_path, monkeypatch):
    with pytest.raises(CatalogError, match="GEMINI_API_KEY"):
        gemini_api(fake, tmp_path)
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    with pytest.raises(CatalogError, match="Vertex AI only"):
        gemini_api(fake, tmp_path, upstream_model="imagen-3.0-generate-002")


def test_default_catalog_follows_the_google_credentials(tmp_path, monkeypatch):
    assert SettingsFile.load(None).catalog["google-imagen-3"].engine == "tiny"
    monkeypatch.setenv("GEMINI_API_KEY", "x")
    gemini = SettingsFile.load(None).catalog["google-imagen-3"]
    assert (gemini.engine, gemini.options["backend"]) == ("google", "gemini")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    assert SettingsFile.load(None).catalog["google-imagen-3"].options["backend"] == "gemini"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa.json"))
    on_vertex = SettingsFile.load(None).catalog["google-imagen-3"]
    assert on_vertex.engine == "google"
    assert on_vertex.options["upstream_model"] == "imagen-3.0-generate-002"


def test_end_to_end_default_catalog_on_vertex(tmp_path, fake):
    """No settings file: Google credentials in the environment route the seed's model to
    Vertex AI (here the fake, through the SDK's own base-URL variable)."""
    env = {
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        "GOOGLE_CLOUD_LOCATION": LOCATION,
        "GOOGLE_APPLICATION_CREDENTIALS": str(fake.service_account_file(tmp_path)),
        "GOOGLE_VERTEX_BASE_URL": fake.base_url,
        "HOME": str(tmp_path),
    }
    darkroom_dir = tmp_path / "darkroom"
    darkroom_dir.mkdir()
    from tests.support.servers import Darkroom

    darkroom = Darkroom(darkroom_dir)
    darkroom.env.update(env)
    darkroom.env.pop("DARKROOM_CONFIG", None)
    try:
        darkroom.start_server()
        with client_for(darkroom) as client:
            body = {"model": "google-imagen-3", "prompt": "Cinematic photo", "ar": "9:21"}
            made = client.post("/v1/media/create", json=body).json()
            blocked = client.post(
                "/v1/media/create", json={"model": "google-imagen-3", "prompt": "forbidden"}
            ).json()
            done = wait_for_status(client, made["id"])
            assert done["status"] == "done", done
            assert download(done["url"]).size == (640, 1536)
            failed = wait_for_status(client, blocked["id"])
            assert failed["status"] == "failed" and "1002" in failed["message"]
    finally:
        darkroom.stop()
    assert predictions(fake), "the server did not call Vertex AI"


def test_end_to_end_catalog_entry(tmp_path, fake):
    catalog = f"""
[models."imagen"]
engine = "google"
upstream_model = "imagen-3.0-generate-002"
base_url = "{fake.base_url}"
project = "{PROJECT}"
location = "{LOCATION}"
credentials_file = "{fake.service_account_file(tmp_path)}"
max_batch = 4
"""
    with (
        serving(tmp_path / "darkroom", catalog, {"HOME": str(tmp_path)}) as darkroom,
        client_for(darkroom) as client,
    ):
        ids = [
            client.post(
                "/v1/media/create", json={"model": "imagen", "prompt": "a kite", "ar": ratio}
            ).json()["id"]
            for ratio in ("16:9", "21:9")
        ]
        sizes = [download(wait_for_status(client, i)["url"]).size for i in ids]
        assert sizes == [(1408, 768), (1536, 640)]


async def test_an_unreachable_server_fails_after_the_retries(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    engine, spec = gemini_api(fake, tmp_path, base_url=f"http://127.0.0.1:{free_port()}")
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "could not be reached" in str(failure) and "tried 3 times" in str(failure)


async def test_vertex_gemini_image_model(fake, tmp_path):
    engine, spec = vertex(fake, tmp_path, upstream_model="gemini-2.5-flash-image")
    [image] = await generate(engine, job(spec, "21:9"))
    assert image.size == (1536, 640)
    [call] = [r for r in fake.requests if r.path.endswith(":generateContent")]
    assert "/projects/darkroom-test/locations/us-central1/" in call.path
    assert call.json()["generationConfig"]["imageConfig"]["aspectRatio"] == "21:9"


async def test_gemini_takes_reference_images_as_inline_parts(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    engine, spec = gemini_api(fake, tmp_path)
    assert spec.max_images == 3
    red, blue = Image.new("RGB", (40, 30), "red"), Image.new("RGB", (8, 8), "blue")
    [image, plain] = await generate(engine, replace(job(spec), images=(red, blue)), job(spec, n=1))
    assert not isinstance(image, GenerationError), image
    with_images, without = sorted(fake.references, key=len, reverse=True)
    pictures = [Image.open(io.BytesIO(data)) for data in with_images]
    assert [(p.format, p.size) for p in pictures] == [("PNG", (40, 30)), ("PNG", (8, 8))]
    assert pictures[0].convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert without == []
    texts = [[part.get("text") for part in r.json()["contents"][0]["parts"]] for r in fake.requests]
    assert ["a heron in the reeds"] in texts and [None, None, "a heron in the reeds"] in texts


def test_imagen_takes_no_reference_images(fake, tmp_path):
    engine, spec = vertex(fake, tmp_path)
    assert spec.max_images == 0
    with pytest.raises(CatalogError, match="takes no reference images"):
        vertex(fake, tmp_path, max_images=1)


# -- a hostile provider: a decompression bomb ------------------------------------------------

# Past Pillow's own limit (its error was not caught: the task was retried as a server error),
# and past our cap yet under Pillow's limit (it would be decoded, some 150 MB).
BOMBS = [(100_000, 100_000), (7_000, 7_000)]


@pytest.mark.parametrize(("width", "height"), BOMBS)
@pytest.mark.parametrize("backend", ["vertex", "gemini"])
async def test_a_decompression_bomb_fails_the_task_once_undecoded(
    backend, width, height, fake, tmp_path, monkeypatch
):
    monkeypatch.setenv("GOOGLE_API_KEY", API_KEY)
    fake.image = bomb_png(width, height)
    engine, spec = vertex(fake, tmp_path) if backend == "vertex" else gemini_api(fake, tmp_path)
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    # Told from the header alone (by our count, or past twice its own limit by Pillow's at
    # open): decoding would have failed on the missing pixel data instead.
    assert str(failure).startswith("The image Google returned is ")
    assert str(failure).endswith(" over the limit of 40,000,000 pixels.")
    assert len([r for r in fake.requests if r.path != "/token"]) == 1  # not retried
