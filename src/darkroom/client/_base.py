"""What the sync and the async client share: their settings and how a step becomes a request."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from darkroom.client.config import USER_AGENT, resolve_api_key, resolve_base_url
from darkroom.client.flows import Call, Reply, create_body
from darkroom.client.models import Task
from darkroom.client.policy import DEFAULT_POLLS, Backoff, RetryPolicy

DEFAULT_WAIT = 600.0
"""Seconds `wait` and `generate` wait for a task by default."""


class ClientBase:
    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        *,
        timeout: float,
        retry: RetryPolicy | None,
        polls: Backoff | None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self.api_key = resolve_api_key(api_key)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.polls = polls or DEFAULT_POLLS

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"  # never the key

    def _http_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "headers": {"User-Agent": USER_AGENT},
            "follow_redirects": True,
        }

    def _request_options(self, call: Call) -> dict[str, Any]:
        # The raw key, as the hosted service's own examples send it; image links get none.
        headers = {"Authorization": self.api_key} if call.authorized else {}
        return {"json": call.json, "params": call.params, "headers": headers}

    @staticmethod
    def _body(
        prompt: str,
        model: str,
        ar: str | None,
        seed: int | None,
        negative_prompt: str | None,
        images: list[str] | None,
        extras: Mapping[str, Any],
    ) -> dict[str, Any]:
        return create_body(prompt, model, ar, seed, negative_prompt, images, extras)


def task_id_of(task: Task | str) -> str:
    return task if isinstance(task, str) else task.id


def reply_of(response: httpx.Response) -> Reply:
    return Reply(response.status_code, response.headers, response.content)


def raw_call(method: str, path: str, json: Any, params: dict[str, str] | None) -> Call:
    # Only methods that cannot change anything are retried after a broken connection.
    return Call(method.upper(), path, json, params, idempotent=method.upper() in ("GET", "HEAD"))


def saved_paths(path: str | Path, extensions: list[str]) -> list[Path]:
    """Where each file of a task is saved: `path` with the extension its file's content type
    names (`-o clip` of a video saves clip.mp4; `-o song.mp3` of two tracks saves song.mp3 and
    song_2.mp3). A path whose extension is already right is kept as it is."""
    target = Path(path)
    paths = []
    for index, extension in enumerate(extensions):
        named = target if not extension or target.suffix.lower() == extension else None
        named = named or target.with_suffix(extension)
        if index:
            named = named.with_name(f"{named.stem}_{index + 1}{named.suffix}")
        paths.append(named)
    return paths
