"""A worker's process paused (SIGSTOP) past its lease, then resumed (SIGCONT) after another
worker took its task over and finished it: the fence keeps the late result out. The late
worker's completion is refused, the stored result stays the one of the attempt that holds
the task, and the task is done once."""

from __future__ import annotations

import collections
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.faults.load import completed_task_ids, create, wait_for_log, warm_up
from tests.support.servers import Darkroom, wait_for_status

REFUSED = "lease lost before completion; result discarded"


def slow_catalog(folder: Path, model_folder: Path) -> Path:
    """Slow enough on the CPU that a worker can be caught in the middle of a task."""
    path = folder / "slow.toml"
    path.write_text(
        '[models."tiny-256"]\nengine = "tiny"\nnative_size = 256\nratios = ["1:1"]\n'
        f'steps = 16\nfolder = "{model_folder}"\n'
    )
    return path


@pytest.mark.slow
def test_a_worker_paused_past_its_lease_cannot_store_over_the_take_over(tiny_model, tmp_path):
    darkroom = Darkroom(tmp_path, slow_catalog(tmp_path, tiny_model), lease_seconds=4)
    try:
        darkroom.start_server("--workers", "0")
        key = darkroom.create_key()
        paused = darkroom.start_worker()
        warm_up(darkroom, key)
        with httpx.Client(base_url=darkroom.base_url, headers={"Authorization": key}) as client:
            task_id = create(client, "paused")
            wait_for_status(client, task_id, ("processing",))
            paused.send_signal(signal.SIGSTOP)
            try:
                darkroom.start_worker()  # takes the task over once the lease has run out
                done = wait_for_status(client, task_id)
                assert done["status"] == "done"
                stored = tmp_path / "files" / link_key(done["url"])
                before = os.stat(stored)
            finally:
                paused.send_signal(signal.SIGCONT)
            wait_for_log(darkroom, REFUSED)  # the late worker finished, and was refused
            after = client.get("/v1/media/result", params={"task_id": task_id}).json()
        assert (after["status"], after["url"]) == ("done", done["url"])
        # The file is the one the taking-over worker stored, not replaced by the late one.
        assert os.stat(stored).st_ino == before.st_ino
        assert httpx.get(done["url"]).status_code == 200
        assert collections.Counter(completed_task_ids(darkroom.logs()))[task_id] == 1
        assert sorted(p.name for p in stored.parent.iterdir() if task_id in p.name) == [
            stored.name
        ]  # the late worker's file was not kept either
    finally:
        darkroom.stop()


def link_key(url: str) -> str:
    """The storage key of a local link: `<base>/files/<key>?expires=..&sig=..`."""
    return url.split("/files/", 1)[1].split("?", 1)[0]
