"""The musicgen engine on a tiny random-weight MusicGen built here and loaded back from its
folder: each task's tracks as real MP3s of the entry's length, progress per token, and cancel
ending the call."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from darkroom.engines import BatchMonitor, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.encoding import duration_of
from darkroom.engines.local.random_audio import build_musicgen
from darkroom.engines.media import Tracks
from darkroom.errors import CatalogError, TaskCanceled


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = build_musicgen(tmp_path_factory.mktemp("audio") / "tiny-musicgen")
    entry = {"engine": "musicgen", "source": str(folder), "seconds": 1.0, "tracks": 2}
    spec = Catalog.from_dict({"m": entry})["m"]
    assert spec.kind == "audio"
    made = load_engine(spec, folder.parent)
    asyncio.run(made.load())
    return made


def job(task: str, seed: int = 7) -> Job:
    return Job(task_id=task * 24, prompt="a sea shanty", width=1024, height=1024, seed=seed)


def test_each_task_gets_its_tracks_as_mp3s_of_the_entrys_length(engine: Any) -> None:
    monitor = BatchMonitor()
    [tracks] = asyncio.run(engine.generate([job("a")], monitor))
    assert isinstance(tracks, Tracks)
    assert [t.title for t in tracks.tracks] == ["a sea shanty (1)", "a sea shanty (2)"]
    durations = [duration_of(t.data) for t in tracks.tracks]
    assert all(d is not None and 0.8 <= d <= 1.3 for d in durations), durations
    assert monitor.progress == 1.0


def test_a_canceled_task_ends_its_call(engine: Any) -> None:
    monitor = BatchMonitor()
    calls: list[float] = []

    def report(fraction: float) -> None:
        calls.append(fraction)
        monitor.canceled.add("a" * 24)  # canceled during its first token

    monitor.report = report  # type: ignore[method-assign]
    [outcome] = asyncio.run(engine.generate([job("a")], monitor))
    assert isinstance(outcome, TaskCanceled)
    assert len(calls) < 10  # of 50 tokens


def test_a_musicgen_entry_of_another_kind_is_refused(tmp_path: Path) -> None:
    entry = {"engine": "musicgen", "source": "x", "kind": "image"}
    with pytest.raises(CatalogError, match="makes audio"):
        load_engine(Catalog.from_dict({"m": entry})["m"], tmp_path)
