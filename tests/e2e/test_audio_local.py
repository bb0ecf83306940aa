"""A local audio model through the real server: a tiny random-weight MusicGen behind `darkroom
serve` answers in the hosted service's audio shape, each track a real MP3 in Darkroom's
storage with its own link and its duration read from the file."""

from __future__ import annotations

import io
from pathlib import Path

import av
import httpx

from darkroom.engines.local.random_audio import build_musicgen
from tests.support.catalogs import write_catalog
from tests.support.media import client_for
from tests.support.servers import running, wait_for_status


def test_a_local_audio_task_answers_its_tracks_as_mp3s(tmp_path: Path) -> None:
    folder = str(build_musicgen(tmp_path / "models" / "tiny-musicgen"))
    entry = {"engine": "musicgen", "source": folder, "seconds": 1.0, "tracks": 2}
    catalog = write_catalog(tmp_path / "models.toml", {"tiny-musicgen": entry})
    with running(tmp_path, catalog) as darkroom:
        client = client_for(darkroom, darkroom.create_key())
        listed = client.get("/v1/media/models").json()["data"]
        assert [(m["id"], m["kind"]) for m in listed] == [("tiny-musicgen", "audio")]
        made = client.post(
            "/v1/media/create", json={"model": "tiny-musicgen", "prompt": "a shanty"}
        ).json()
        done = wait_for_status(client, made["id"])
        assert done["status"] == "done", done
        assert [t["title"] for t in done["result"]] == ["a shanty (1)", "a shanty (2)"]
        for track in done["result"]:
            response = httpx.get(track["audio_url"], timeout=30)
            assert response.headers["content-type"] == "audio/mpeg"
            with av.open(io.BytesIO(response.content)) as container:
                seconds = container.duration / av.time_base
            assert abs(seconds - track["duration"]) < 0.1 and 0.8 < seconds < 1.3
