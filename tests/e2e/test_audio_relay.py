"""An audio model through the relay and the real server: the upstream (a fake of the hosted
service's media API answering Suno's audio shape) makes two MP3 tracks; Darkroom answers in
the same shape, each track re-stored in its own storage under its own key and link, served as
audio/mpeg, its `duration` read from the file (tests/integration/test_video_retention.py: the
sweep deletes every track)."""

from __future__ import annotations

import io

import av
import httpx

from darkroom.client import Client
from tests.support.fakes.media_api import API_KEY, FakeMediaAPI
from tests.support.fakes.serving import client_for, serving
from tests.support.servers import wait_for_status

KEY_ENV = "DARKROOM_TEST_RELAY_KEY"


def catalog(base_url: str) -> str:
    return f"""
[models."suno"]
engine = "relay"
kind = "audio"
base_url = "{base_url}"
api_key_env = "{KEY_ENV}"
upstream_model = "suno-v4"
poll_seconds = 1
"""


def seconds_of(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        assert container.format.name == "mp3"
        return container.duration / av.time_base


def test_an_audio_task_answers_its_tracks_each_restored_with_its_own_link(tmp_path) -> None:
    with (
        FakeMediaAPI(polls_before_done=1, kinds={"suno-v4": "audio"}) as fake,
        serving(tmp_path, catalog(fake.base_url), {KEY_ENV: API_KEY}) as front,
        client_for(front) as client,
    ):
        created = client.post("/v1/media/create", json={"model": "suno", "prompt": "a shanty"})
        made = created.json()
        assert "url" not in made and made["result"] is None
        assert made["input"] == {"prompt": "a shanty"}
        done = wait_for_status(client, made["id"])
        assert done["status"] == "done", done
        assert "ar" not in fake.created[0]  # audio goes upstream without a ratio
        tracks = done["result"]
        assert [t["title"] for t in tracks] == ["a shanty (take 1)", "a shanty (take 2)"]
        assert len({t["audio_url"] for t in tracks}) == 2
        durations = []
        for track in tracks:
            assert track["audio_url"].startswith(front.base_url)  # re-stored here
            assert track["status"] == "succeeded"
            response = httpx.get(track["audio_url"], timeout=30)
            assert response.headers["content-type"] == "audio/mpeg"
            assert abs(seconds_of(response.content) - track["duration"]) < 0.1
            durations.append(track["duration"])
        assert durations[0] < durations[1]  # read from each file: 2 s and 3 s upstream


def test_generate_and_the_client_answer_and_save_every_track(tmp_path) -> None:
    with (
        FakeMediaAPI(polls_before_done=0, kinds={"suno-v4": "audio"}) as fake,
        serving(tmp_path / "front", catalog(fake.base_url), {KEY_ENV: API_KEY}) as front,
    ):
        key = front.create_key()
        with Client(front.base_url, key) as client:
            answer = client.request(
                "POST", "/v1/media/generate", json={"model": "suno", "prompt": "a reel"}
            )
            task = client.result(answer["id"])
            saved = client.save(task, tmp_path / "song")
        assert answer["status"] == "done" and answer["result"] == answer["url"]
        assert answer["url"] == task.tracks[0].audio_url  # the first track's link
        assert [len(t.title) > 0 for t in task.tracks] == [True, True]
        assert saved == [tmp_path / "song.mp3", tmp_path / "song_2.mp3"]
        assert [round(seconds_of(p.read_bytes())) for p in saved] == [2, 3]
