"""The demo engine against a local hub that speaks huggingface_hub's file protocol
(tests/support/fakes/hub.py): it downloads the model once into the cache given by HF_HOME and
draws with it; a file cut off midway is resumed from where it stopped; a start that could not
finish falls back to random weights and the next start fetches only the rest; offline
(HF_HUB_OFFLINE=1, an unreachable endpoint, a hub answering errors) it uses the cache, else
falls back after one request, never failing the task; DARKROOM_DEMO_MODEL chooses."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError

from darkroom.config import Settings
from darkroom.engines import BatchMonitor, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.local.demo import DemoEngine, HubModelEngine
from darkroom.engines.local.demo_status import read_status
from darkroom.engines.local.tiny import TinyEngine
from tests.support.fakes.hub import FakeHub, hub_folder
from tests.support.servers import free_port

SD_TURBO = "stabilityai/sd-turbo"
OTHER = "acme/tiny-sd"
UNET = "unet/diffusion_pytorch_model.fp16.safetensors"
SPEC = Catalog.from_dict({"demo": {"engine": "demo", "native_size": 256, "draw_size": 64}})["demo"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub")
    return {SD_TURBO: hub_folder(root), OTHER: hub_folder(root, variant=None)}


@pytest.fixture
def hub(folders: dict[str, Path]) -> Iterator[FakeHub]:
    with FakeHub() as hub:
        for repo_id, folder in folders.items():
            hub.add(repo_id, folder)
        yield hub


@pytest.fixture
def data_dir(tmp_path: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder, and a cache of the test's own (read when a download starts)."""
    monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("HF_HUB_OFFLINE", "HF_HUB_CACHE", "DARKROOM_DEMO_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def start(data_dir: Path) -> DemoEngine:
    """A worker's first use of the demo model: opened, then loaded."""
    engine = load_engine(SPEC, data_dir)
    assert isinstance(engine, DemoEngine)
    asyncio.run(engine.load())
    return engine


def draw(engine: DemoEngine) -> Image.Image:
    job = Job(task_id="t" * 24, prompt="a lighthouse at dusk", width=256, height=256, seed=3)
    [image] = asyncio.run(engine.generate([job], BatchMonitor()))
    assert isinstance(image, Image.Image)
    return image


def gets(hub: FakeHub) -> list[str]:
    return [
        r.path.rsplit("/resolve/", 1)[1].split("/", 1)[1]
        for r in hub.requests
        if r.method == "GET" and "/resolve/" in r.path
    ]


def test_auto_downloads_sd_turbo_into_the_cache_and_draws_with_it(data_dir: Path, hub: FakeHub):
    engine = start(data_dir)
    assert isinstance(engine.inner, HubModelEngine)
    folder = Path(engine.inner.source)
    assert folder.is_relative_to(data_dir.parent / "hf" / "hub" / "models--stabilityai--sd-turbo")
    assert engine.inner.variant == "fp16" and engine.inner.steps == 1  # SD-Turbo's one step
    # What from_pretrained reads, each file once; not the single-file checkpoint beside it.
    fetched = gets(hub)
    assert sorted(fetched) == sorted(set(fetched)) and UNET in fetched
    assert "single_file_checkpoint.safetensors" not in fetched
    assert draw(engine).size == (256, 256)  # drawn at 64 x 64, resized to the task's size
    assert read_status(data_dir, "demo") is not None
    assert read_status(data_dir, "demo").note is None  # type: ignore[union-attr]


def test_a_file_cut_off_midway_is_resumed_from_where_it_stopped(data_dir: Path, hub: FakeHub):
    hub.cut_next(UNET)
    engine = start(data_dir)
    assert isinstance(engine.inner, HubModelEngine)
    first, resumed = hub.downloads(UNET)
    assert first.range is None
    assert resumed.range is not None and resumed.range.startswith("bytes=")
    assert int(resumed.range.removeprefix("bytes=").rstrip("-")) > 0
    draw(engine)


def test_a_start_that_could_not_finish_falls_back_and_the_next_start_fetches_the_rest(
    data_dir: Path, hub: FakeHub
):
    hub.cut_next(UNET)
    hub.refuse_after_cut = True  # the resumption is refused: this start cannot finish
    engine = start(data_dir)
    assert isinstance(engine.inner, TinyEngine)
    assert draw(engine).size == (256, 256)  # the task is still done, on random weights
    assert read_status(data_dir, "demo").note == "random weights"  # type: ignore[union-attr]
    completed = [path for path in gets(hub) if path != UNET]

    hub.refuse_after_cut = False
    asyncio.run(engine.close())
    engine = start(data_dir)  # the next start, with the hub back
    assert isinstance(engine.inner, HubModelEngine)
    again = [path for path in gets(hub) if path != UNET]
    assert completed and sorted(again) == sorted(completed)  # no file fetched twice
    assert read_status(data_dir, "demo").note is None  # type: ignore[union-attr]


def test_later_starts_use_the_cache_even_offline(
    data_dir: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
):
    start(data_dir)
    downloaded = len(gets(hub))
    start(data_dir)  # online: the hub is asked what changed, nothing is downloaded again
    assert len(gets(hub)) == downloaded
    asked = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert isinstance(start(data_dir).inner, HubModelEngine)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens
    assert isinstance(start(data_dir).inner, HubModelEngine)
    assert len(hub.requests) == asked


@pytest.mark.parametrize("cut_off", ["HF_HUB_OFFLINE=1", "unreachable endpoint", "hub down"])
def test_without_the_hub_or_a_cache_it_falls_back_to_random_weights_at_once(
    data_dir: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch, cut_off: str
):
    if cut_off == "HF_HUB_OFFLINE=1":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    elif cut_off == "unreachable endpoint":
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    else:
        hub.down = True  # as a refusing proxy: every request answered with an error
    engine = start(data_dir)
    assert isinstance(engine.inner, TinyEngine)
    assert draw(engine).size == (256, 256)
    status = read_status(data_dir, "demo")
    assert status is not None and status.note == "random weights" and status.source == "tiny"
    assert SD_TURBO in status.reason
    # One short question at most, no retry loop before the first task.
    assert len(hub.requests) == (1 if cut_off == "hub down" else 0)


def test_tiny_never_asks_the_hub_and_says_so_before_loading(
    data_dir: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DARKROOM_DEMO_MODEL", "tiny")
    load_engine(SPEC, data_dir)
    assert read_status(data_dir, "demo").note == "random weights"  # type: ignore[union-attr]
    engine = start(data_dir)
    assert isinstance(engine.inner, TinyEngine)
    assert hub.requests == []


def test_a_hub_id_chooses_another_model(
    data_dir: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DARKROOM_DEMO_MODEL", OTHER)
    engine = start(data_dir)
    assert isinstance(engine.inner, HubModelEngine)
    assert "models--acme--tiny-sd" in engine.inner.source and engine.inner.variant is None
    assert all(OTHER in r.path for r in hub.requests)
    assert read_status(data_dir, "demo").source == OTHER  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["auto", "tiny", "stabilityai/sd-turbo"])
def test_the_setting_takes_auto_tiny_or_a_hub_id(value: str):
    assert Settings(demo_model=value).demo_model == value


@pytest.mark.parametrize("value", ["", "sd turbo", "http://example.com/x", "a/b/c"])
def test_the_setting_refuses_anything_else(value: str):
    with pytest.raises(ValidationError):
        Settings(demo_model=value)
