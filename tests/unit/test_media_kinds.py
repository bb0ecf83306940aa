"""A model's kind in memory: the catalog reads it, batch keys split on it and on a clip's
shape, results get their container's key and content type, and an audio task answers in the
hosted service's audio shape."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from darkroom.api.presenters import TaskObject
from darkroom.engines.catalog import Catalog
from darkroom.errors import CatalogError
from darkroom.storage import content_type_of, result_key
from darkroom.storage.local import LocalStorage
from darkroom.tasks import Task, TaskParams, TaskStatus
from darkroom.tasks.model import ResultFile, batch_key

AUDIO = Task(
    id="6880f043e6060500018821de",
    key_id=1,
    model="suno",
    prompt="a sea shanty",
    ar=None,
    width=1024,
    height=1024,
    params=TaskParams(seed=7),
    batch_key="b",
    status=TaskStatus.IDLE,
    created_at=1753280579,
    enqueued_at=1753280579.0,
    attempt=0,
    max_attempts=3,
    kind="audio",
)


def test_a_video_entry_has_its_kind_clip_shape_and_a_batch_of_one_by_default() -> None:
    catalog = Catalog.from_dict(
        {
            "ltx": {"engine": "diffusers", "source": "x", "kind": "video", "frames": 9, "fps": 8},
            "sdxl": {"engine": "diffusers", "source": "y"},
        }
    )
    video, image = catalog["ltx"], catalog["sdxl"]
    assert (video.kind, video.frames, video.fps, video.max_batch) == ("video", 9, 8, 1)
    assert video.clip_shape == (9, 8)
    assert (image.kind, image.clip_shape, image.max_batch) == ("image", None, 4)


@pytest.mark.parametrize("entry", [{"kind": "hologram"}, {"kind": "video", "frames": 0}])
def test_a_wrong_kind_or_clip_shape_stops_the_catalog(entry: dict) -> None:
    with pytest.raises(CatalogError, match="kind|frames"):
        Catalog.from_dict({"m": {"engine": "tiny", **entry}})


def test_batch_keys_split_on_kind_and_clip_shape_and_keep_an_images_old_form() -> None:
    assert batch_key("m", 64, 64) == "m|64x64"
    keys = {
        batch_key("m", 64, 64),
        batch_key("m", 64, 64, "video", (9, 8)),
        batch_key("m", 64, 64, "video", (17, 8)),
        batch_key("m", 64, 64, "video", (9, 24)),
        batch_key("m", 64, 64, "audio"),
    }
    assert len(keys) == 5


def test_result_keys_name_their_container_and_links_serve_its_content_type() -> None:
    assert result_key("abc", 48) == "exp48h/abc_result.webp"
    assert result_key("abc", 48, extension="mp4") == "exp48h/abc_result.mp4"
    assert result_key("abc", 48, extension="mp3", index=1) == "exp48h/abc_result_2.mp3"
    types = [
        content_type_of(result_key("abc", 48, extension=ext)) for ext in ("webp", "mp4", "mp3")
    ]
    assert types == ["image/webp", "video/mp4", "audio/mpeg"]


def answer(task: Task, tmp_path: Path) -> dict:
    storage = LocalStorage(tmp_path, "http://darkroom.test", b"secret")
    return TaskObject.of(task, storage, 3600).model_dump(mode="json", exclude_unset=True)


def test_an_audio_task_answers_input_and_null_result_until_done(tmp_path: Path) -> None:
    body = answer(AUDIO, tmp_path)
    assert "url" not in body and "prompt" not in body
    assert body["input"] == {"prompt": "a sea shanty"}
    assert body["result"] is None


def test_a_done_audio_task_lists_each_track_with_its_own_link(tmp_path: Path) -> None:
    files = (
        ResultFile("exp1h/a_result.mp3", 2.5, "Shanty"),
        ResultFile("exp1h/a_result_2.mp3", 3.0, "Shanty (reprise)"),
    )
    done = dataclasses.replace(
        AUDIO,
        status=TaskStatus.DONE,
        result_key=files[0].key,
        result_files=files,
        finished_at=1753280600.0,
    )
    tracks = answer(done, tmp_path)["result"]
    assert [(t["status"], t["duration"], t["title"]) for t in tracks] == [
        ("succeeded", 2.5, "Shanty"),
        ("succeeded", 3.0, "Shanty (reprise)"),
    ]
    assert "a_result.mp3" in tracks[0]["audio_url"] and "a_result_2.mp3" in tracks[1]["audio_url"]
    assert len({t["id"] for t in tracks}) == 2
