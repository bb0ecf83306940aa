"""A progress bar for a task on a terminal: its place in the queue while idle, then how far the
generation is. Pass its `update` as `on_progress` to `wait` or `generate`."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from darkroom.client.models import Task


class ProgressBar:
    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
        )
        self._bar = self._progress.add_task("submitting", total=None, detail="")

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, task: Task) -> None:
        description, total, completed, detail = describe(task)
        self._progress.update(
            self._bar, description=description, total=total, completed=completed, detail=detail
        )
        # Draw every state the server reported, even one that lasts less than a refresh tick.
        self._progress.refresh()


def describe(task: Task) -> tuple[str, float | None, float, str]:
    """(description, total, completed, detail) for the bar; a None total makes it pulse.
    `queue_position` and `progress` are extensions: without them the bar only pulses."""
    if task.status == "idle":
        return "queued", None, 0.0, _place(task.queue_position)
    if task.status == "processing":
        if task.progress is None:
            return "generating", None, 0.0, ""
        return "generating", 100.0, task.progress, f"{task.progress:3.0f}%"
    if task.done:
        return "done", 100.0, 100.0, "100%"
    return task.status, 100.0, 0.0, ""


def _place(ahead: int | None) -> str:
    """Words for `queue_position`, the number of tasks ahead of this one."""
    if ahead is None:
        return ""
    return "next in line" if ahead == 0 else f"{ahead} ahead in the queue"
