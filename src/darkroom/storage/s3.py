"""S3-compatible object storage (AWS S3, SeaweedFS, MinIO, ...) through boto3.

Result links are presigned GET URLs (signature version 4). A link is signed as of the moment
the image was made and lives for the retention period, so every poll of a task returns the
same link, and it stops working when the retention ends whichever API node handed it out.
boto3 is blocking, so every call runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import boto3
import structlog
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError

from darkroom.errors import ConfigurationError

log = structlog.get_logger("darkroom.storage")

# SigV4 presigned URLs cannot live longer than seven days.
MAX_LINK_SECONDS = 7 * 24 * 3600
_DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


class S3Storage:
    def __init__(
        self,
        bucket: str,
        *,
        retention_hours: float,
        endpoint_url: str | None = None,
        public_url: str | None = None,
        region: str | None = None,
        addressing_style: str = "auto",
        lifecycle: bool = True,
    ) -> None:
        session = boto3.session.Session()
        self.bucket = bucket
        self.region = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or session.region_name
            or "us-east-1"
        )
        if addressing_style == "auto":
            # S3-compatible servers rarely have a wildcard DNS name per bucket.
            addressing_style = "path" if endpoint_url else "virtual"
        self.addressing_style = addressing_style
        self.retention_hours = retention_hours
        self.lifecycle = lifecycle
        self.client: Any = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=self.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": addressing_style},
                max_pool_connections=32,
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        )
        self._credentials = session.get_credentials()
        if self._credentials is None:
            raise ConfigurationError(
                "DARKROOM_STORAGE=s3 needs credentials: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or another source boto3 reads)"
            )
        self.link_base = (public_url or self.client.meta.endpoint_url).rstrip("/")
        if retention_hours * 3600 > MAX_LINK_SECONDS:
            log.warning("S3 links cannot outlive 7 days", retention_hours=retention_hours)

    # -- the storage interface ------------------------------------------------------------------

    async def prepare(self) -> None:
        """Creates the bucket if it is missing and installs the retention lifecycle rule."""
        await asyncio.to_thread(self._prepare)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )

    def url(self, key: str, expires_at: float) -> str:
        signed_at = math.floor(expires_at - self.retention_hours * 3600)
        lifetime = min(max(math.ceil(expires_at) - signed_at, 1), MAX_LINK_SECONDS)
        request = AWSRequest(method="GET", url=self._object_url(key))
        signer = _SignedAt(
            self._credentials.get_frozen_credentials(),
            self.region,
            expires=lifetime,
            signed_at=dt.datetime.fromtimestamp(signed_at, dt.UTC),
        )
        signer.add_auth(request)
        return request.url

    async def get(self, key: str) -> bytes | None:
        try:
            answer = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return await asyncio.to_thread(answer["Body"].read)

    def key_of(self, url: str) -> str | None:
        """The key of a link to this bucket. The presigned signature is not checked here (S3
        checks it when it serves a link): a result's key holds its task id, which nobody can
        guess, so naming a key one was not given reads nothing."""
        base = self._object_url("")
        parts = urlsplit(url)
        if not url.startswith(base) or "X-Amz-Signature" not in parts.query:
            return None
        key = unquote(parts.path[len(urlsplit(base).path) :])
        return key or None

    async def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), _DELETE_BATCH):
            chunk = keys[start : start + _DELETE_BATCH]
            answer = await asyncio.to_thread(
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True},
            )
            # Per-key failures come back in the answer, not as an exception. They are logged
            # rather than retried forever; the lifecycle rule, where there is one, gets them.
            for error in answer.get("Errors", []):
                log.warning("result not deleted", key=error.get("Key"), error=error.get("Code"))

    # -- helpers ------------------------------------------------------------------------------

    def _object_url(self, key: str) -> str:
        path = quote(key, safe="/~")
        if self.addressing_style == "path":
            return f"{self.link_base}/{self.bucket}/{path}"
        parts = urlsplit(self.link_base)
        return f"{parts.scheme}://{self.bucket}.{parts.netloc}{parts.path}/{path}"

    def _prepare(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            self._create_bucket()
        if self.lifecycle:
            self._install_lifecycle_rule()

    def _create_bucket(self) -> None:
        options: dict[str, Any] = {}
        if self.region != "us-east-1":  # AWS refuses the default region named explicitly
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **options)
            log.info("bucket created", bucket=self.bucket)
        except ClientError as exc:  # another node created it first
            if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def _install_lifecycle_rule(self) -> None:
        """Deletes results a day-granular while after their retention even if no sweeper runs.

        The sweeper still deletes them on time; this rule is the backstop. Other rules of the
        bucket are kept. A server without lifecycle support leaves the sweeper alone at it."""
        prefix = f"exp{self.retention_hours:g}h/"
        rule = {
            "ID": f"darkroom-{prefix.rstrip('/')}",
            "Filter": {"Prefix": prefix},
            "Status": "Enabled",
            "Expiration": {"Days": max(1, math.ceil(self.retention_hours / 24))},
        }
        try:
            try:
                rules = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
            except ClientError as exc:
                if _error_code(exc) != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            if rule in rules:
                return
            rules = [r for r in rules if r.get("ID") != rule["ID"]] + [rule]
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": rules}
            )
            log.info("lifecycle rule installed", bucket=self.bucket, rule=rule["ID"])
        except ClientError as exc:
            log.warning(
                "no lifecycle rule; the sweeper deletes old results",
                bucket=self.bucket,
                error=_error_code(exc),
            )


class _SignedAt(S3SigV4QueryAuth):
    """botocore's presigner, with the signing time given instead of taken from the clock."""

    def __init__(self, credentials: Any, region: str, *, expires: int, signed_at: dt.datetime):
        super().__init__(credentials, "s3", region, expires=expires)
        self._signed_at = signed_at

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._signed_at.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, signature)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
