"""A video model through the relay and the real server: the upstream (a fake of the hosted
service's media API answering as its Veo models do) links an MP4; Darkroom re-stores it in its
own storage as `<id>_result.mp4`, served as video/mp4, and refuses a "video" that is not one.
Tasks beyond `max_in_flight` (2 by default for video) wait on their workers, leases kept, and
are created upstream as places free: never more than that many outstanding there at once."""

from __future__ import annotations

import io

import av
import httpx

from tests.support.fakes.media_api import API_KEY, FakeMediaAPI
from tests.support.fakes.serving import client_for, serving
from tests.support.servers import wait_for_status

KEY_ENV = "DARKROOM_TEST_RELAY_KEY"


def catalog(base_url: str) -> str:
    return f"""
[models."veo-3"]
engine = "relay"
kind = "video"
base_url = "{base_url}"
api_key_env = "{KEY_ENV}"
upstream_model = "veo3"
poll_seconds = 1
"""


def test_a_video_task_answers_the_upstreams_mp4_restored_here(tmp_path) -> None:
    with (
        FakeMediaAPI(polls_before_done=1, kinds={"veo3": "video"}) as fake,
        serving(tmp_path, catalog(fake.base_url), {KEY_ENV: API_KEY}) as front,
        client_for(front) as client,
    ):
        made = client.post(
            "/v1/media/create", json={"model": "veo-3", "prompt": "waves", "ar": "16:9"}
        ).json()
        done = wait_for_status(client, made["id"])
        assert done["status"] == "done", done
        assert done["url"].startswith(front.base_url)
        assert f"{made['id']}_result.mp4" in done["url"]
        response = httpx.get(done["url"], timeout=30)
        assert response.headers["content-type"] == "video/mp4"
        with av.open(io.BytesIO(response.content)) as container:
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
        assert (stream.codec_context.name, frames, stream.width) == ("h264", 12, 64)


def test_a_video_link_that_is_not_a_video_fails_the_task(tmp_path) -> None:
    with (
        FakeMediaAPI(polls_before_done=0, kinds={"veo3": "video"}) as fake,
        serving(tmp_path, catalog(fake.base_url), {KEY_ENV: API_KEY}) as front,
        client_for(front) as client,
    ):
        fake.result_url = f"{fake.base_url}/files/not-a-video.png"
        made = client.post("/v1/media/create", json={"model": "veo-3", "prompt": "waves"}).json()
        failed = wait_for_status(client, made["id"])
        assert failed["status"] == "failed"
        assert "is not video that can be read" in failed["message"]


def test_video_tasks_beyond_max_in_flight_wait_their_turn_and_all_finish(tmp_path) -> None:
    # Four workers each take a task at once (a video batch is one task); a lease of 1 s that
    # only the heartbeat keeps over the tasks that wait for a place upstream.
    env = {KEY_ENV: API_KEY, "DARKROOM_WORKERS": "4", "DARKROOM_LEASE_SECONDS": "1"}
    with (
        FakeMediaAPI(polls_before_done=2, kinds={"veo3": "video"}) as fake,
        serving(tmp_path, catalog(fake.base_url), env) as front,
        client_for(front) as client,
    ):
        made = [
            client.post("/v1/media/create", json={"model": "veo-3", "prompt": f"waves {n}"}).json()
            for n in range(4)
        ]
        ended = [wait_for_status(client, task["id"]) for task in made]
        assert [task["status"] for task in ended] == ["done"] * 4, ended
        assert fake.most_outstanding == 2  # the default max_in_flight of a video model
        assert len(fake.created) == 4  # each task created upstream once: none lost or rerun
