"""`darkroom generate` and `darkroom result` run as real processes against the real server:
images saved, JSON printed, one-line errors with distinct exit codes, the progress bar drawn
in a pseudo-terminal and nothing but the result in a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from darkroom.cli.client import EXIT_API, EXIT_FAILED, EXIT_TIMEOUT, EXIT_UNREACHABLE, EXIT_USAGE
from tests.support.catalogs import CONFIGS
from tests.support.servers import (
    Darkroom,
    broken_model_catalog,
    free_port,
    running,
    wait_for_status,
)

TASK_ID = re.compile(r"^[0-9a-f]{24}$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


@dataclass
class Target:
    """A server and a key: what the command is pointed at through its environment."""

    base_url: str
    key: str

    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
        return {**clean, "DARKROOM_BASE_URL": self.base_url, "DARKROOM_API_KEY": self.key}

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """The command in a pipe: stdout and stderr are not terminals."""
        return subprocess.run(
            [sys.executable, "-m", "darkroom", *args],
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=180,
        )

    def run_in_terminal(
        self, *args: str, stdout: Path, interrupt_on: str | None = None
    ) -> tuple[int, str]:
        """The command with stderr on a pseudo-terminal: the exit code and what it drew.
        With `interrupt_on`, Ctrl-C (SIGINT) is sent once that text has been drawn."""
        argv = [sys.executable, "-m", "darkroom", *args]
        return run_in_pty(argv, self.env(), stdout, interrupt_on)


def run_in_pty(
    argv: list[str], env: dict[str, str], stdout: Path, interrupt_on: str | None
) -> tuple[int, str]:
    master, slave = pty.openpty()
    # A terminal of a usual size, so that the bar has room to be drawn.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    with open(stdout, "wb") as out:
        process = subprocess.Popen(
            argv, stdin=slave, stdout=out, stderr=slave, env={**env, "TERM": "xterm"}
        )
    os.close(slave)
    drawn = bytearray()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
        if interrupt_on and interrupt_on.encode() in drawn:
            process.send_signal(signal.SIGINT)
            interrupt_on = None
    os.close(master)
    returncode = process.wait(timeout=30)
    return returncode, ANSI.sub("", drawn.decode(errors="replace"))


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error a person reads: one line on stderr, nothing on stdout."""
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


@pytest.fixture
def target(darkroom: Darkroom, api_key: str) -> Target:
    return Target(darkroom.base_url, api_key)


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A server whose only model cannot load: every task fails, on its first attempt."""
    folder = tmp_path_factory.mktemp("broken")
    with running(folder, broken_model_catalog(folder), max_attempts=1) as server:
        yield Target(server.base_url, server.create_key())


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A server without workers: its tasks stay idle."""
    folder = tmp_path_factory.mktemp("idle")
    with running(folder, CONFIGS / "test.toml", "--workers", "0") as server:
        yield Target(server.base_url, server.create_key())


# -- success ------------------------------------------------------------------------------------


def test_generate_saves_the_image_and_prints_its_path_quietly_in_a_pipe(target, tmp_path):
    path = tmp_path / "lighthouse.webp"
    result = target.run("generate", "a lighthouse at dusk", "--ar", "16:9", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}\n"
    assert result.stderr == ""  # no progress bar in a pipe
    with Image.open(path) as image:
        assert image.format == "WEBP" and image.size == (1408, 768)


def test_generate_without_output_prints_the_finished_task_as_json(target):
    result = target.run(
        "generate", "a fox", "--model", "tiny-512", "--seed", "5", "--negative-prompt", "blur"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    task = json.loads(result.stdout)
    assert task["status"] == "done" and task["model"] == "tiny-512"
    assert task["url"].startswith(target.base_url) and TASK_ID.match(task["id"])


def test_no_wait_prints_the_task_id_and_result_prints_then_saves_it(target, client, tmp_path):
    created = target.run("generate", "a harbour", "--model", "tiny-512", "--no-wait")
    assert created.returncode == 0, created.stderr
    task_id = created.stdout.strip()
    assert TASK_ID.match(task_id) and created.stdout == f"{task_id}\n"
    shown = target.run("result", task_id)
    assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == task_id
    wait_for_status(client, task_id)
    path = tmp_path / "harbour.webp"
    saved = target.run("result", task_id, "-o", str(path))
    assert saved.returncode == 0, saved.stderr
    with Image.open(path) as image:
        assert image.size == (512, 512)


def test_cancel_fails_an_idle_task_and_prints_it(idle):
    created = idle.run("generate", "a harbour", "--no-wait")
    task_id = created.stdout.strip()
    canceled = idle.run("cancel", task_id)
    assert canceled.returncode == 0, canceled.stderr
    task = json.loads(canceled.stdout)
    assert task["id"] == task_id and task["status"] == "failed" and task["message"] == "canceled"
    assert json.loads(idle.run("result", task_id).stdout)["status"] == "failed"


def test_cancel_of_an_unknown_task_exits_3(idle):
    answer = idle.run("cancel", "6880f043e6060500018821de")
    assert answer.returncode == 3 and "code 4" in one_line_error(answer)


def test_options_take_the_place_of_the_environment(target):
    bare = {k: v for k, v in os.environ.items() if not k.startswith("DARKROOM_")}
    result = target.run(
        "generate", "a fox", "--no-wait", "--base-url", target.base_url, "--key", target.key,
        env=bare,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert TASK_ID.match(result.stdout.strip())


# -- errors: one line, an exit code each ---------------------------------------------------------


def test_a_wrong_key_says_so(target):
    result = Target(target.base_url, "dk_not-a-real-key").run("generate", "a fox")
    assert result.returncode == EXIT_API
    line = one_line_error(result)
    assert "key" in line and "--key" in line and "code 2" in line


def test_no_key_is_a_usage_error(target):
    env = {k: v for k, v in target.env().items() if k != "DARKROOM_API_KEY"}
    result = target.run("generate", "a fox", env=env)
    assert result.returncode == EXIT_USAGE
    assert "DARKROOM_API_KEY" in one_line_error(result)


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "a fox", "--no-wait", "-o", "never.webp"],
        ["generate", "a fox", "--timeout", "0"],
        ["generate", "a fox", "--seed", "not-a-number"],
        ["generate"],
    ],
)
def test_usage_errors_exit_2(target, args):
    assert target.run(*args).returncode == EXIT_USAGE


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["generate", "a fox", "--ar", "2:1"], ["ar: Invalid enum value", "'16:9'", "code 3"]),
        (["generate", "a fox", "--model", "dall-e-9"], ["model:", "received 'dall-e-9'", "code 3"]),
        (["generate", "a forbiddenword"], ["safety", "code 1002"]),
        (["generate", "a fox", "--negative-prompt", "forbiddenword"], ["code 1001"]),
        (["result", "6880f043e6060500018821de"], ["No task", "code 4"]),
        (["result", "not-an-id"], ["task_id", "code 3"]),
    ],
)
def test_api_errors_exit_3_with_the_servers_words(target, args, words):
    result = target.run(*args)
    assert result.returncode == EXIT_API
    line = one_line_error(result)
    assert all(word in line for word in words), line


def test_a_failed_task_exits_4_with_its_message(broken):
    result = broken.run("generate", "a lighthouse")
    assert result.returncode == EXIT_FAILED
    line = one_line_error(result)
    assert "failed" in line and "could not be generated" in line


def test_a_task_that_outlives_the_timeout_exits_5(idle, tmp_path):
    result = idle.run("generate", "a lighthouse", "--timeout", "1")
    assert result.returncode == EXIT_TIMEOUT
    line = one_line_error(result)
    task_id = re.search(r"darkroom result ([0-9a-f]{24})", line).group(1)
    unfinished = idle.run("result", task_id, "-o", str(tmp_path / "never.webp"))
    assert unfinished.returncode == EXIT_TIMEOUT
    assert "still idle" in one_line_error(unfinished)


def test_a_server_that_is_not_there_exits_6():
    result = Target(f"http://127.0.0.1:{free_port()}", "dk_any").run("result", "0" * 24)
    assert result.returncode == EXIT_UNREACHABLE
    assert "Could not reach" in one_line_error(result)


# -- the progress display -------------------------------------------------------------------------


def test_a_terminal_shows_the_queue_then_the_end(idle, tmp_path):
    returncode, drawn = idle.run_in_terminal(
        "generate", "a lighthouse", "--timeout", "2", stdout=tmp_path / "out"
    )
    assert returncode == EXIT_TIMEOUT
    assert "queued" in drawn
    assert "ahead in the queue" in drawn or "next in line" in drawn  # queue_position
    assert "error: " in drawn  # the error follows the bar on the terminal


def test_a_terminal_shows_the_bar_through_to_done(target, tmp_path):
    out = tmp_path / "out"
    returncode, drawn = target.run_in_terminal(
        "generate", "a fox", "--model", "tiny-512", stdout=out
    )
    assert returncode == 0, drawn
    assert "done" in drawn and "100%" in drawn
    assert json.loads(out.read_text())["status"] == "done"  # stdout stays clean


def test_a_pipe_gets_no_progress_even_while_waiting(idle):
    result = idle.run("generate", "a lighthouse", "--timeout", "1")
    assert "queued" not in result.stderr
    one_line_error(result)


def test_ctrl_c_while_waiting_says_how_to_collect_the_task(idle, tmp_path):
    returncode, drawn = idle.run_in_terminal(
        "generate", "a lighthouse", stdout=tmp_path / "out", interrupt_on="queued"
    )
    assert returncode == 130
    task_id = re.search(r"darkroom result ([0-9a-f]{24})", drawn).group(1)
    assert idle.run("result", task_id).returncode == 0  # the task is still there
