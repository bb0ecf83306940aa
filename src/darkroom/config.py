"""Settings: the process's from DARKROOM_* environment variables (`.env` is not used on purpose:
one source of truth for operators is the environment), and the optional TOML file (`--config
FILE` or DARKROOM_CONFIG) with the model catalog and the content policy. Without a file,
Darkroom serves the seed's model so a fresh install does its job: on Google when Google
credentials are configured, on the demo `tiny` engine otherwise."""

from __future__ import annotations

import contextlib
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from darkroom.engines.catalog import Catalog, CatalogError
from darkroom.engines.local.demo_options import CHOICE_PATTERN
from darkroom.errors import ConfigurationError
from darkroom.keys.limits import Limits
from darkroom.safety import ContentPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DARKROOM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(None, description="Base of links handed to clients")
    data_dir: Path = Path("data")
    database_url: str | None = None
    # Per process: each API node and each worker node holds at most pool + overflow connections
    # (plus one for LISTEN on PostgreSQL). SQLite ignores these.
    db_pool_size: int = Field(10, ge=1)
    db_max_overflow: int = Field(10, ge=0)
    db_pool_timeout: float = Field(30.0, gt=0)
    config: Path | None = Field(None, description="TOML file with the model catalog")
    secret: str | None = Field(None, description="Signs file links; shared by all API nodes")

    workers: int = 1
    # `darkroom serve`'s API processes on the one port, a socket each (api/processes.py); more
    # than one serves the API only (workers 0, `darkroom worker` beside it). SQLite stays
    # correct across them: each has its own writer, and a file lock beside the database puts
    # the writers of all processes in line (db/sqlite.py), SQLite's own lock behind it.
    processes: int = Field(1, ge=1)
    lease_seconds: float = 30.0
    max_attempts: int = 3
    poll_seconds: float = 1.0
    # PostgreSQL: idle workers wait on LISTEN; this slower poll is only the safety net (a lost
    # notification, a task whose retry delay ran out, a lease that expired).
    listen_poll_seconds: float = 5.0

    retention_hours: float = 48.0
    # Task records are kept this long after their file expired (or after they failed), then
    # deleted by the sweep (retention.py).
    record_retention_days: float = Field(30.0, gt=0)
    sweep_seconds: float = 600.0
    storage: Literal["local", "s3"] = "local"
    # S3: credentials and region come from boto3's usual sources (AWS_ACCESS_KEY_ID,
    # AWS_SECRET_ACCESS_KEY, AWS_REGION, instance roles, ...).
    s3_bucket: str = "darkroom"
    s3_endpoint_url: str | None = Field(None, description="For S3-compatible servers; unset: AWS")
    s3_public_url: str | None = Field(
        None, description="Endpoint as clients reach it, when it differs (links are signed for it)"
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    s3_lifecycle: bool = Field(True, description="Install a bucket rule that deletes old results")

    # Memory a worker process may give to loaded models, in MB; past it the least recently used
    # model is unloaded. None: the device's own free memory decides.
    memory_budget_mb: float | None = None

    # What the `demo` engine draws with (engines/local/demo_options.py): auto (a real model from
    # the Hugging Face hub, else random weights), tiny (random weights), or a hub id. Read by
    # the workers; declared here so that a wrong value stops the node at start.
    demo_model: str = Field("auto", pattern=CHOICE_PATTERN)

    max_queue: int = 10_000
    # How long an authenticated key's record is reused before it is read again: a key revoked
    # or changed by another process or node is refused or seen within this time (at once when
    # changed through this process). 0: read the key on every request. See keys/cache.py.
    key_cache_seconds: float = Field(1.0, ge=0)
    # Every key's limits where the key sets none (keys/limits.py); unset: no limit.
    key_rate: float | None = Field(None, gt=0, description="Requests per second per key")
    key_max_waiting: int | None = Field(None, ge=0, description="Tasks waiting per key")
    key_max_running: int | None = Field(None, ge=1, description="Tasks running per key")
    key_daily_spend: Decimal | None = Field(None, ge=0, description="Spend per key per 24 h")

    @property
    def key_limits(self) -> Limits:
        return Limits(
            self.key_rate, self.key_max_waiting, self.key_max_running, self.key_daily_spend
        )

    # How long POST /v1/media/generate waits for its task to end before it answers the task
    # as it stands (the client then goes on with /result).
    generate_timeout_seconds: float = Field(120.0, gt=0)
    max_body_bytes: int = 1_000_000
    # Longer than a load balancer's idle timeout (60 s on common ones), so the server is never
    # the side that closes an idle connection just as a client reuses it.
    keep_alive_seconds: float = 75.0
    # The request line plus headers, in bytes; past it the request is answered 400 (see
    # docs/deploy.md, "Limits and proxies").
    max_header_bytes: int = Field(16_384, ge=1024)
    # How long a client may take to send a request's line and headers (from connecting, or
    # from the next request's first byte), then its body; past it the connection is closed
    # (a late body is answered with code 3 first). Past max_connections open connections,
    # requests get 503.
    header_timeout_seconds: float = Field(15.0, gt=0)
    body_timeout_seconds: float = Field(30.0, gt=0)
    max_connections: int = Field(1000, ge=1)
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: comma-separated
    # addresses or networks, or "*" for any (only when nothing else can reach the port).
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # When set, GET /metrics answers only `Authorization: Bearer <token>` (401 otherwise);
    # unset, it is open, as suits a server on loopback or a scraper on a private network.
    metrics_token: str | None = Field(None, min_length=1)
    # /docs, /redoc and /openapi.json: open by default (they describe the API and hold no
    # secrets); 0 hides them (404) for operators who would rather not advertise the surface.
    public_docs: bool = True
    log_level: str = "info"

    # Webhooks (docs/webhooks.md): each post's deadline; how long a delivery is tried (an
    # attempt that fails this long after its task ended is the last); the wait after the first
    # failed attempt, doubling (with jitter) up to the cap; how often senders look for work.
    webhook_timeout_seconds: float = Field(10.0, gt=0)
    webhook_retry_hours: float = Field(24.0, gt=0)
    webhook_backoff_first_seconds: float = Field(5.0, gt=0)
    webhook_backoff_cap_seconds: float = Field(3600.0, gt=0)
    webhook_poll_seconds: float = Field(1.0, gt=0)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with its driver (asyncpg for PostgreSQL; SQLite runs on the
        standard library's driver in threads, see db/sqlite.py), whatever form the operator
        wrote."""
        url = self.database_url or f"sqlite:///{self.data_dir.resolve() / 'darkroom.db'}"
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
        ):
            if url.startswith(plain):
                url = driver + url[len(plain) :]
                break
        if url.startswith("postgresql+asyncpg://") and "sslmode=" in url:
            # libpq's `sslmode`, which operators write out of habit, is `ssl` to asyncpg.
            parsed = make_url(url)
            query = {k: v for k, v in parsed.query.items() if k != "sslmode"}
            query.setdefault("ssl", parsed.query["sslmode"])
            url = parsed.set(query=query).render_as_string(hide_password=False)
        return url

    @property
    def retention_seconds(self) -> float:
        return self.retention_hours * 3600

    @property
    def record_retention_seconds(self) -> float:
        return self.record_retention_days * 86400

    @cached_property
    def signing_secret(self) -> bytes:
        """DARKROOM_SECRET, or a secret kept in the data directory for a single machine.
        One that is empty, whitespace or under 32 characters is refused (anyone could forge
        links with it) with a ConfigurationError, which stops a node at start."""
        least = 32

        def shortness(secret: str) -> str | None:
            if len(secret.strip()) >= least:
                return None
            if not secret.strip():
                return "empty" if not secret else "only whitespace"
            return f"too short ({len(secret.strip())} characters)"

        if self.secret is not None:
            if short := shortness(self.secret):
                raise ConfigurationError(
                    f"DARKROOM_SECRET is {short}: set it to at least {least} random characters "
                    "(`openssl rand -hex 32`), the same on every API node, or unset it to have "
                    "one kept in the data folder"
                )
            return self.secret.encode()
        path = self.data_dir / "secret"
        if not path.exists():
            # Written aside then linked into place, so two processes starting at once agree.
            # Private from the start: the folder 0700, the file 0600 from its creation on.
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            draft = path.with_name(f".secret-{os.getpid()}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                os.fchmod(fd, 0o600)  # a stale draft of the same pid keeps its old mode
                file.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
            draft.unlink()
        secret = path.read_text()
        if short := shortness(secret):
            raise ConfigurationError(
                f"the secret file {path} is {short}: delete it to have a new one made (links "
                f"issued before stop working), write at least {least} random characters into "
                "it, or set DARKROOM_SECRET"
            )
        return secret.strip().encode()


# -- the settings file -------------------------------------------------------------------------

DEMO_MODELS = {"google-imagen-3": {"engine": "tiny", "max_batch": 4}}
# Vertex AI serves the seed's very model; the Gemini API no longer offers Imagen, so an API key
# alone gets Google's Gemini image model under the same id (docs/models.md says so).
VERTEX_MODELS = {
    "google-imagen-3": {
        "engine": "google",
        "backend": "vertex",
        "upstream_model": "imagen-3.0-generate-002",
        "max_batch": 4,
    }
}
GEMINI_API_MODELS = {
    "google-imagen-3": {
        "engine": "google",
        "backend": "gemini",
        "upstream_model": "gemini-2.5-flash-image",
        "max_batch": 4,
    }
}
# Where `gcloud auth application-default login` leaves credentials, under the home folder.
ADC_FILE = ".config/gcloud/application_default_credentials.json"


def default_models(env: Mapping[str, str] = os.environ) -> dict[str, dict[str, Any]]:
    """The catalog used without a settings file, chosen from the environment alone (an API
    node must not import Google's SDK to decide)."""
    gcloud_login = Path(env.get("HOME", "~")) / ADC_FILE
    has_credentials = bool(env.get("GOOGLE_APPLICATION_CREDENTIALS")) or gcloud_login.is_file()
    if env.get("GOOGLE_CLOUD_PROJECT") and has_credentials:
        return VERTEX_MODELS
    if env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY"):
        return GEMINI_API_MODELS
    return DEMO_MODELS


@dataclass
class SettingsFile:
    catalog: Catalog
    policy: ContentPolicy = field(default_factory=ContentPolicy)

    @classmethod
    def load(cls, path: Path | None) -> SettingsFile:
        if path is None:
            return cls(Catalog.from_dict(default_models()))
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogError(f"cannot read {path}: {exc}") from exc
        safety = data.get("safety", {})
        return cls(
            Catalog.from_dict(data.get("models", {})),
            ContentPolicy(safety.get("blocked_terms", [])),
        )
