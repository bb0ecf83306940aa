"""Video jobs that run for many leases keep them: the worker's heartbeat runs on the event loop
while the clip is made in a thread, extending the lease every third of it, so the lease rescue
(maintenance, running beside the workers) never takes the task back and no second worker claims
it. With a lease of LEASE_SECONDS, a job held for several leases (tests/support/long_jobs.py, on
SQLite and PostgreSQL) and a tiny LTX-Video pipeline's denoise both end done after one attempt,
made once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from darkroom.app import App
from darkroom.config import Settings
from darkroom.db import Database
from darkroom.engines.local.random_video import build_video
from darkroom.tasks import Task, TaskParams, TaskStatus
from darkroom.tasks.model import NewTask
from tests.support import long_jobs
from tests.support.tasks import DATABASES, migrated_database

LEASE_SECONDS = 0.6  # heartbeats every 0.2 s
LEASES_HELD = 4  # how many leases the held job outlives before it is let go
WAIT_SECONDS = 120.0  # a bound for a hung test, not a measure
FINISHED = (TaskStatus.DONE, TaskStatus.FAILED)


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = await migrated_database(request, tmp_path)
    yield database
    await database.dispose()


@pytest.fixture
def held() -> Iterator[None]:
    long_jobs.release.clear()
    long_jobs.runs.clear()
    yield
    long_jobs.release.set()  # a failed test must not leave a thread spinning


def write_catalog(path: Path, model: str, entry: dict) -> Path:
    lines = [f'[models."{model}"]'] + [f"{k} = {json.dumps(v)}" for k, v in entry.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


async def app_with_workers(tmp_path: Path, db_url: str, catalog: Path) -> App:
    settings = Settings(
        data_dir=tmp_path, database_url=db_url, config=catalog, lease_seconds=LEASE_SECONDS
    )
    app = App.from_settings(settings)
    await app.migrate()
    return app


async def queue_video(app: App, model: str) -> Task:
    _raw, key = await app.keys.create("long-jobs")
    spec = app.catalog[model]
    new = NewTask.build(
        key_id=key.id,
        model=model,
        prompt="a fox runs",
        size=spec.size_for("1:1"),
        params=TaskParams(seed=1),
        max_attempts=3,
        kind="video",
        clip=(spec.frames, spec.fps),
    )
    return await app.store.create(new, key, max_queue=10)


async def watch(app: App, task_id: str, until: Callable[[Task], bool]) -> tuple[Task, set[float]]:
    """Reads the task until `until(task)`; answers it with every lease expiry it was seen with."""
    expiries: set[float] = set()
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        task = await app.store.get(task_id)
        assert task is not None
        if task.lease_expires_at is not None and task.status is TaskStatus.PROCESSING:
            expiries.add(task.lease_expires_at)
        if until(task):
            return task, expiries
        assert time.monotonic() < deadline, f"still waiting for task {task_id}: {task.status}"
        await asyncio.sleep(0.05)


async def test_a_job_held_for_several_leases_keeps_its_lease_and_runs_once(
    db: Database, tmp_path: Path, held: None
) -> None:
    entry = {"engine": "tests.support.long_jobs:open_engine", "kind": "video", "frames": 8}
    catalog = write_catalog(tmp_path / "models.toml", "held", entry)
    app = await app_with_workers(tmp_path, db.url, catalog)
    try:
        task = await queue_video(app, "held")
        app.start_workers(2)  # a second worker, idle, would claim the task if its lease lapsed
        running, _ = await watch(app, task.id, lambda t: t.status is TaskStatus.PROCESSING)
        first_expiry = running.lease_expires_at
        assert first_expiry is not None
        # Held until it has outlived LEASES_HELD leases from its claim, the rescue running.
        _, expiries = await watch(
            app, task.id, lambda t: time.time() > first_expiry + LEASES_HELD * LEASE_SECONDS
        )
        long_jobs.release.set()
        done, _ = await watch(app, task.id, lambda t: t.status in FINISHED)
    finally:
        await app.close()
    assert done.status is TaskStatus.DONE, done.error
    assert done.attempt == 1
    assert long_jobs.runs == [task.id]  # claimed and made once
    # Extended meanwhile: at least once per lease it outlived (every third of one, but the
    # reads above see only some of those on a loaded machine).
    assert len(expiries) >= LEASES_HELD


async def test_a_tiny_ltx_denoise_keeps_its_lease_and_ends_done_after_one_attempt(
    tmp_path: Path,
) -> None:
    folder = build_video("ltx", tmp_path / "tiny-ltx")
    entry = {
        "engine": "diffusers",
        "source": str(folder),
        "kind": "video",
        "native_size": 128,
        "frames": 9,
        "fps": 8,
        "steps": 12,  # seconds on a CPU, several leases of LEASE_SECONDS
    }
    catalog = write_catalog(tmp_path / "models.toml", "tiny-ltx", entry)
    app = await app_with_workers(tmp_path, f"sqlite:///{tmp_path / 'darkroom.db'}", catalog)
    try:
        task = await queue_video(app, "tiny-ltx")
        app.start_workers(2)
        done, expiries = await watch(app, task.id, lambda t: t.status in FINISHED)
    finally:
        await app.close()
    assert done.status is TaskStatus.DONE, done.error
    assert done.attempt == 1
    assert len(expiries) >= 2  # its lease was extended while the pipeline denoised
