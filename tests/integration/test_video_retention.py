"""The retention sweep deletes every file of a task, on SQLite and PostgreSQL: an audio task's
tracks, not only its first file; its record keeps the list of files it had."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from darkroom.app import App
from darkroom.config import Settings
from darkroom.db import Database
from darkroom.retention import sweep_once
from darkroom.storage import result_key
from darkroom.tasks import TaskStore
from darkroom.tasks.model import ResultFile
from tests.support.tasks import DATABASES, migrated_database, new_task


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = await migrated_database(request, tmp_path)
    yield database
    await database.dispose()


async def test_the_sweep_deletes_every_track_of_an_audio_task(db: Database, tmp_path: Path):
    node = App.from_settings(Settings(data_dir=tmp_path, database_url=db.url))
    store = TaskStore(db)
    _, key = await node.keys.create("audio")
    await store.create(new_task(key, 0), key, max_queue=100)
    [running] = await store.claim("w", limit=1, lease_seconds=30)
    files = [
        ResultFile(result_key(running.id, 1, extension="mp3", index=n), 2.0 + n, f"take {n}")
        for n in range(3)
    ]
    for file in files:
        await node.storage.put(file.key, b"ID3", "audio/mpeg")
    assert await store.complete(running, "w", files[0].key, files)
    stored = await store.get(running.id)
    assert stored.result_files == tuple(files)
    assert await sweep_once(store, node.storage, 0.0) == 1
    assert [await node.storage.get(file.key) for file in files] == [None, None, None]
    assert (await store.get(running.id)).purged_at is not None
    await node.close()
