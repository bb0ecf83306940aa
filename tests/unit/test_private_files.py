"""What the data folder holds (the link secret, the SQLite database, the results) is private to
the service's user from the moment it exists: the folder 0700, its files 0600, under the
usual umask 022 too (issue 14)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from darkroom.app import App
from darkroom.config import Settings
from darkroom.storage.local import LocalStorage


@pytest.fixture(autouse=True)
def usual_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_data_folder_and_database_are_private(tmp_path):
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    App.from_settings(settings)
    assert mode(data) == 0o700
    database = data / "darkroom.db"
    assert mode(database) == 0o600
    # SQLite gives its journal files the database file's mode.
    with sqlite3.connect(database) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        assert mode(data / "darkroom.db-wal") == 0o600
        assert mode(data / "darkroom.db-shm") == 0o600
    conn.close()


def test_the_secret_is_written_private_from_its_creation(tmp_path, monkeypatch):
    data = tmp_path / "data"
    created: list[int] = []
    real_open = os.open

    def watching_open(path, flags, mode=0o777, *args, **kwargs):  # type: ignore[no-untyped-def]
        fd = real_open(path, flags, mode, *args, **kwargs)
        if Path(path).name.startswith(".secret-"):
            created.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return fd

    monkeypatch.setattr(os, "open", watching_open)
    secret = Settings(data_dir=data).signing_secret
    assert created == [0o600]  # never readable by others, not even before a chmod
    assert mode(data) == 0o700
    assert mode(data / "secret") == 0o600
    assert (data / "secret").read_text().strip().encode() == secret
    assert [p.name for p in data.iterdir()] == ["secret"]


def test_a_stored_result_is_private(tmp_path):
    storage = LocalStorage(tmp_path / "files", "http://darkroom.test", b"s" * 32)
    storage._write("2026/12/01/abc/0.png", b"an image")
    path = tmp_path / "files" / "2026/12/01/abc/0.png"
    assert path.read_bytes() == b"an image"
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
