"""The disk under SQLite and the local storage full (a small tmpfs), under load: creates are
refused with code 6 or 1 and words, never HTTP 500; nothing is left half-written (no partial
result file, no task row in a broken state); once space returns, creates and results work."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.faults.load import DONE, Load, assert_ended_well, catalog, wait_for_log, warm_up
from tests.support.servers import Darkroom


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Writes a file until the disk has no byte left."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as file:
        with contextlib.suppress(OSError):
            while True:
                file.write(b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                file.write(b"\0")
    assert filler.stat().st_size > 0
    return filler


def broken_rows(database: Path) -> list[tuple]:
    """Tasks that ended but not whole: done without a result file, failed without words."""
    with contextlib.closing(sqlite3.connect(database)) as conn:
        rows = conn.execute("SELECT id, status, result_key, message FROM tasks").fetchall()
    files = database.parent / "files"
    return [
        row
        for row in rows
        if row[1] not in ("done", "failed")
        or (row[1] == "done" and not (row[2] and (files / row[2]).is_file()))
        or (row[1] == "failed" and not row[3])
    ]


@pytest.mark.slow
def test_a_full_disk_refuses_work_in_words_and_recovers_when_space_returns(
    small_disk: Path, tiny_model, tmp_path
):
    # The logs stay on the test's own folder: only the data folder is on the small disk.
    darkroom = Darkroom(tmp_path, catalog(tmp_path, tiny_model), lease_seconds=3, max_attempts=10)
    darkroom.env["DARKROOM_DATA_DIR"] = str(small_disk)
    try:
        darkroom.start_server()  # with its worker
        key = darkroom.create_key()
        warm_up(darkroom, key)
        with Load(darkroom.base_url, key) as load:
            wait_for_log(darkroom, DONE, count=5)
            filler = fill(small_disk)
            load.wait_refused(3)
            filler.unlink()
            accepted = len(load.accepted)
            load.wait_accepted(accepted + 10)
        assert load.other == []  # never HTTP 500
        for answer in load.refused:
            assert answer["code"] in (1, 6) and len(answer["message"].split()) > 3, answer
        with httpx.Client(base_url=darkroom.base_url, headers={"Authorization": key}) as client:
            assert_ended_well(client, darkroom, load.accepted)
    finally:
        darkroom.stop()
    assert list(small_disk.rglob("*.part")) == []  # no half-written result
    assert broken_rows(small_disk / "darkroom.db") == []
