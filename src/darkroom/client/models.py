"""The task object as the API answers it, with the extension fields when a server sends them;
and the answers of the listing extensions: a model with its rules, a page of tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Statuses after which a task never changes. "error" is not sent by Darkroom but the hosted
# service's clients treat it as final, so this client does too.
DONE = "done"
FAILED_STATUSES = ("failed", "error")


@dataclass(frozen=True)
class Track:
    """One track of an audio model's result (the hosted service's audio shape)."""

    id: str
    audio_url: str
    duration: float | None = None
    title: str = ""

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Track:
        return cls(
            id=str(data.get("id", "")),
            audio_url=str(data["audio_url"]),
            duration=_number(data.get("duration")),
            title=str(data.get("title") or ""),
        )


@dataclass(frozen=True)
class Task:
    id: str
    model: str
    prompt: str
    created_at: int
    status: str
    url: str | None = None
    cost: float | None = None
    """What the task charges the key, when the server reports it."""
    message: str | None = None
    progress: float | None = None
    """0 to 100 while processing, when the server reports it."""
    queue_position: int | None = None
    """Tasks ahead of this one while idle, when the server reports it."""
    tracks: tuple[Track, ...] = ()
    """An audio model's tracks once done (its `result` array; such a task has no `url`)."""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The answer as received, every field included."""

    @property
    def links(self) -> tuple[str, ...]:
        """Every file of a done task: its `url`, or its tracks' `audio_url`s."""
        if isinstance(self.url, str) and self.url:
            return (self.url,)
        return tuple(track.audio_url for track in self.tracks)

    @property
    def done(self) -> bool:
        return self.status == DONE

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES

    @property
    def finished(self) -> bool:
        return self.done or self.failed

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Task:
        """Raises KeyError, TypeError or ValueError for an answer that is not a task."""
        return cls(
            id=str(data["id"]),
            model=str(data.get("model", "")),
            prompt=str(data.get("prompt") or (data.get("input") or {}).get("prompt", "")),
            created_at=int(data.get("created_at") or 0),
            status=str(data["status"]),
            url=data.get("url"),
            cost=_number(data.get("cost")),
            message=data.get("message") or data.get("error"),
            progress=_number(data.get("progress")),
            queue_position=_integer(data.get("queue_position")),
            tracks=_tracks(data.get("result")),
            raw=dict(data),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


@dataclass(frozen=True)
class Model:
    """A model the key may use, as GET /v1/media/models describes it (a Darkroom extension)."""

    id: str
    kind: str
    ratios: tuple[str, ...]
    default_ratio: str
    max_images: int
    """Reference images a request may send (0: it takes none)."""
    max_prompt: int
    """The most characters of a prompt, after trimming."""
    price: float
    """What one task charges the key (0: free)."""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Model:
        """Raises KeyError, TypeError or ValueError for an entry that is not a model."""
        return cls(
            id=str(data["id"]),
            kind=str(data.get("kind", "image")),
            ratios=tuple(str(ratio) for ratio in data["ratios"]),
            default_ratio=str(data["default_ratio"]),
            max_images=int(data.get("max_images") or 0),
            max_prompt=int(data["max_prompt"]),
            price=float(data.get("price") or 0),
            raw=dict(data),
        )


@dataclass(frozen=True)
class TaskPage:
    """One page of GET /v1/media/tasks (a Darkroom extension): the key's tasks, newest first."""

    tasks: list[Task]
    next_cursor: str | None
    """The `cursor` of the next page; None: this is the last one."""


def _tracks(result: Any) -> tuple[Track, ...]:
    """The audio shape's `result`: a list of tracks with an `audio_url` (a string `result`,
    as generate answers, is a link and not tracks)."""
    if not isinstance(result, list):
        return ()
    return tuple(
        Track.from_payload(item)
        for item in result
        if isinstance(item, dict) and isinstance(item.get("audio_url"), str)
    )


def _number(value: Any) -> float | None:
    # bool is an int: keep it out, a stray true is not 1 %.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _integer(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None
