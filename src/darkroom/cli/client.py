"""`darkroom generate` and `darkroom result`: the Python client on the command line.

Exit codes, so that scripts can tell what went wrong:

    0  success
    2  usage: a bad option, or no API key
    3  the API refused the request (any error code: a wrong key, a bad input, no credits, ...),
       or the result's link no longer serves the file
    4  the task failed (the server's reason is printed)
    5  the task did not finish in time (--timeout), or `result -o` on a task not finished yet
    6  the server could not be reached, or did not answer as the media API does
  130  interrupted (Ctrl-C) while waiting; the task goes on, and the message says how to fetch it

Errors are one line on stderr. A progress bar is drawn on stderr only when it is a terminal;
stdout carries only the result (JSON, a task id, or the saved files' paths, one a line).

`-o` saves every file of the task with the extension of what it is, read from the link's
content type: `-o clip` (or `-o clip.webp`) of a video model saves clip.mp4, of an image model
clip.webp; an audio model's tracks are song.mp3, song_2.mp3, ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from darkroom.client import (
    DEFAULT_MODEL,
    ApiError,
    AuthenticationError,
    Client,
    ConfigurationError,
    ConnectionFailed,
    DarkroomError,
    DownloadError,
    Task,
    TaskFailed,
    WaitTimeout,
)
from darkroom.client.config import API_KEY_VARIABLE
from darkroom.client.progress import ProgressBar

EXIT_USAGE = 2
EXIT_API = 3
EXIT_FAILED = 4
EXIT_TIMEOUT = 5
EXIT_UNREACHABLE = 6

BaseUrlOption = Annotated[
    str | None,
    typer.Option("--base-url", help="The server (DARKROOM_BASE_URL; http://127.0.0.1:8000)"),
]
KeyOption = Annotated[str | None, typer.Option("--key", help="The API key (DARKROOM_API_KEY)")]
OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Save the result here; the extension follows its kind (.webp, .mp4, .mp3)",
    ),
]


def generate(
    prompt: Annotated[str, typer.Argument(help="What the image should show")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model id")] = DEFAULT_MODEL,
    ar: Annotated[str | None, typer.Option("--ar", help="Aspect ratio, e.g. 16:9")] = None,
    output: OutputOption = None,
    seed: Annotated[int | None, typer.Option(help="Fixed seed, for a repeatable image")] = None,
    negative_prompt: Annotated[
        str | None, typer.Option("--negative-prompt", help="What to keep out of the image")
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the task id at once; do not wait")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the image")] = 600.0,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Generate an image, a video or audio: print the finished task as JSON, or save its
    file (every track of an audio model) with -o."""
    if no_wait and output is not None:
        _fail("--no-wait returns before the image exists; drop -o or --no-wait", EXIT_USAGE)
    if timeout <= 0:
        _fail("--timeout must be a number of seconds above 0", EXIT_USAGE)
    with _reported_errors(), _client(base_url, key) as client:
        if no_wait:
            created = client.create(prompt, model, ar, seed=seed, negative_prompt=negative_prompt)
            typer.echo(created.id)
            return
        console = Console(stderr=True)
        latest: list[Task] = []

        def on_progress(task: Task) -> None:
            latest[:] = [task]
            if bar is not None:
                bar.update(task)

        # A bar only for a person watching: in a pipe or a log file it would be noise.
        with ProgressBar(console) if console.is_terminal else nullcontext() as bar:
            try:
                task = client.generate(
                    prompt,
                    model,
                    ar,
                    seed=seed,
                    negative_prompt=negative_prompt,
                    timeout=timeout,
                    on_progress=on_progress,
                )
            except KeyboardInterrupt:
                if not latest:
                    raise
                # The task goes on (and may be paid for): say how to collect it.
                task_id = latest[-1].id
                _fail(f"interrupted; task {task_id} goes on: darkroom result {task_id}", 130)
        _emit(client, task, output)


def result(
    task_id: Annotated[str, typer.Argument(help="The task id that generate --no-wait printed")],
    output: OutputOption = None,
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Print a task's current state as JSON, or save its image with -o once it is done."""
    with _reported_errors(), _client(base_url, key) as client:
        task = client.result(task_id)
        if output is not None and task.failed:
            raise TaskFailed(task)
        if output is not None and not task.done:
            _fail(f"task {task.id} is still {task.status}; try again later", EXIT_TIMEOUT)
        _emit(client, task, output)


def cancel(
    task_id: Annotated[str, typer.Argument(help="The id of the task to cancel")],
    base_url: BaseUrlOption = None,
    key: KeyOption = None,
) -> None:
    """Cancel a task and print it as JSON: an idle one fails at once with the message
    "canceled", a processing one stops at its next step, a finished one stays as it is."""
    with _reported_errors(), _client(base_url, key) as client:
        _emit(client, client.cancel(task_id), None)


def _client(base_url: str | None, key: str | None) -> Client:
    if not (key or os.environ.get(API_KEY_VARIABLE)):
        _fail(
            f"No API key: pass --key or set {API_KEY_VARIABLE} "
            f"(an operator creates one with `darkroom keys create`)",
            EXIT_USAGE,
        )
    return Client(base_url, key)


def _emit(client: Client, task: Task, output: Path | None) -> None:
    if output is None:
        typer.echo(json.dumps(task.to_dict()))
    else:
        for path in client.save(task, output):
            typer.echo(path)


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Each error of the client becomes one line on stderr and its exit code."""
    try:
        yield
    except ConfigurationError as exc:
        _fail(exc.message, EXIT_USAGE)
    except AuthenticationError as exc:
        _fail(f"{exc.message} (code 2; pass --key or set DARKROOM_API_KEY)", EXIT_API)
    except ApiError as exc:
        _fail(f"{exc.message} (code {exc.code})", EXIT_API)
    except DownloadError as exc:
        _fail(exc.message, EXIT_API)
    except TaskFailed as exc:
        _fail(f"task {exc.task.id} failed: {exc.message}", EXIT_FAILED)
    except WaitTimeout as exc:
        _fail(f"{exc.message} (darkroom result {exc.task.id})", EXIT_TIMEOUT)
    except ConnectionFailed as exc:
        _fail(f"{exc.message} Is the server running? Check --base-url.", EXIT_UNREACHABLE)
    except DarkroomError as exc:
        _fail(exc.message, EXIT_UNREACHABLE)


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


EXIT_CODES_HELP = (
    "Exit codes: 0 done; 2 usage or no key; 3 the API refused the request; 4 the task failed; "
    "5 not finished in time; 6 server unreachable."
)


def register(app: typer.Typer) -> None:
    app.command(epilog=EXIT_CODES_HELP)(generate)
    app.command(epilog=EXIT_CODES_HELP)(result)
    app.command(epilog=EXIT_CODES_HELP)(cancel)
