"""The guarded fetcher: every URL that somebody else names (a client's reference image, a
webhook target, an upstream's result link) is fetched through it, under the spec's "Outbound
requests" rules.

- http and https only, plus `data:` URLs for images (decoded here, never fetched);
- the host is resolved once and every address it resolves to must be public (no loopback,
  private, link-local, multicast, reserved ranges); the connection then goes to the address that
  was checked, with the original host in the Host header and in TLS's SNI, so a DNS answer that
  changes between the check and the connection (rebinding) cannot reach a private address;
- redirects are followed by hand, each hop checked like the first (or not followed at all);
- `post` (webhooks) sends a body under the same address rule, never follows a redirect and
  reads at most `max_bytes` of the answer;
- the body is read in chunks and abandoned past `max_bytes`; the whole fetch has one deadline;
- images are checked for their pixel count from the header, before any decoding.

`DARKROOM_ALLOW_PRIVATE_URLS=1` lifts the address rule (tests, closed networks), and origins the
operator configured (a relay's `base_url`) are trusted as they are. Every failure is a
`FetchFailed` whose message names the URL's host and a reason that never tells what a private
address answered: Darkroom never connects to one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from darkroom.errors import GenerationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOW_PRIVATE_VARIABLE = "DARKROOM_ALLOW_PRIVATE_URLS"
REDIRECTS = (301, 302, 303, 307, 308)
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,", re.I)


class FetchFailed(GenerationError):
    """A URL could not be fetched or was not allowed; the message names its host and why."""


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000  # about 6300 x 6300: past any reference image worth sending
    timeout_seconds: float = 30.0
    max_redirects: int = 5


@dataclass(frozen=True)
class Answered:
    status_code: int
    head: bytes  # the answer's body, up to the limit


@dataclass(frozen=True)
class Fetched:
    url: str  # the last hop's URL
    content_type: str
    data: bytes


def is_public(address: IPAddress) -> bool:
    """Addresses anybody on the internet could reach: not loopback, private, link-local,
    multicast, reserved or unspecified. IPv4 mapped into IPv6 is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def private_urls_allowed(env: dict[str, str] | None = None) -> bool:
    return (env if env is not None else os.environ).get(ALLOW_PRIVATE_VARIABLE, "") == "1"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


@dataclass
class Fetcher:
    """Fetches URLs under the outbound rules. One per process is enough; it holds no
    connection between fetches (each goes to an address checked for it)."""

    limits: FetchLimits = field(default_factory=FetchLimits)
    allow_private: bool = field(default_factory=private_urls_allowed)
    trusted_origins: frozenset[str] = frozenset()
    # Which addresses count as public; tests that have only loopback give a narrower rule.
    public: Callable[[IPAddress], bool] = is_public
    transport: httpx.AsyncBaseTransport | None = None

    def trusting(self, urls: Iterable[str]) -> Fetcher:
        """A fetcher that also trusts these URLs' origins (an upstream's configured base_url)."""
        origins = self.trusted_origins | {origin_of(u) for u in urls}
        return Fetcher(self.limits, self.allow_private, origins, self.public, self.transport)

    async def fetch(self, url: str, *, what: str = "the file", redirects: bool = True) -> Fetched:
        """The body at `url`, after every hop passed the rules; raises FetchFailed."""
        host = _host_for_message(url)
        try:
            async with asyncio.timeout(self.limits.timeout_seconds):
                return await self._fetch(url, what, redirects)
        except TimeoutError:
            raise FetchFailed(f"{what} at {host} could not be fetched: it took too long.") from None

    async def fetch_image(self, url: str, *, what: str = "the image") -> Image.Image:
        """A reference image from an http(s) or `data:` URL, checked for its pixel count before
        it is decoded (a small file can claim a huge canvas). Decoding runs in a thread."""
        if url[:5].lower() == "data:":
            content_type, data = await asyncio.to_thread(self.decode_data_url, url, what)
            host = "a data: URL"
        else:
            fetched = await self.fetch(url, what=what)
            content_type, data, host = fetched.content_type, fetched.data, _host_for_message(url)
        return await asyncio.to_thread(
            self.open_image, data, what=f"{what} at {host}", content_type=content_type
        )

    def decode_data_url(self, url: str, what: str = "the image") -> tuple[str, bytes]:
        """(media type, bytes) of a base64 `data:` URL whose type is an image."""
        match = _DATA_URL.match(url)
        if match is None:
            raise FetchFailed(f"{what} is a data: URL that is not base64 (data:image/...;base64,).")
        content_type = (match["type"] or "").lower()
        if not content_type.startswith("image/"):
            raise FetchFailed(
                f"{what} is a data: URL of {content_type or 'no type'}, not an image."
            )
        payload = url[match.end() :]
        if len(payload) * 3 // 4 > self.limits.max_bytes:
            raise FetchFailed(f"{what} is over {self.limits.max_bytes // 1_000_000} MB.")
        try:
            return content_type, base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise FetchFailed(f"{what} is a data: URL whose base64 is malformed.") from None

    def open_image(self, data: bytes, *, what: str, content_type: str = "") -> Image.Image:
        over_limit = f"over the limit of {self.limits.max_pixels:,} pixels"
        try:
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > self.limits.max_pixels:
                raise FetchFailed(f"{what} is {width} x {height} pixels, {over_limit}.")
            image.load()
        except FetchFailed:
            raise
        except Image.DecompressionBombError:  # Pillow's own check, at twice its warning size
            raise FetchFailed(f"{what} is {over_limit}.") from None
        except (UnidentifiedImageError, OSError, ValueError):
            kind = f" ({content_type})" if content_type else ""
            raise FetchFailed(f"{what} is not an image that can be read{kind}.") from None
        return image

    # -- one hop at a time ------------------------------------------------------------------------

    async def _fetch(self, url: str, what: str, redirects: bool) -> Fetched:
        for _hop in range(self.limits.max_redirects + 1):
            fetched, location = await self._hop(url, what)
            if fetched is not None:
                return fetched
            if not redirects or not location:
                raise FetchFailed(f"{what} at {_host_for_message(url)} answered with a redirect.")
            url = urljoin(url, location)
        raise FetchFailed(f"{what} at {_host_for_message(url)} redirected too many times.")

    async def _hop(self, url: str, what: str) -> tuple[Fetched | None, str | None]:
        """One request: the body, or (None, Location) for a redirect. A client of its own per
        hop: pooled connections are keyed by address, and another host on the same address
        must not reuse a TLS connection made for this one."""
        target, headers, extensions = await self._checked(url, what)
        async with httpx.AsyncClient(transport=self.transport, follow_redirects=False) as client:
            request = client.build_request("GET", target, headers=headers, extensions=extensions)
            try:
                response = await client.send(request, stream=True)
                try:
                    if response.status_code in REDIRECTS:
                        return None, response.headers.get("location")
                    return await self._read(url, response, what), None
                finally:
                    await response.aclose()
            except httpx.HTTPError:
                raise FetchFailed(
                    f"{what} at {_host_for_message(url)} could not be fetched: no answer."
                ) from None

    async def _checked(self, url: str, what: str) -> tuple[str, dict[str, str], dict[str, str]]:
        """Where to send a request for `url` once it passed the rules: (URL to connect to,
        headers, extensions); raises FetchFailed."""
        parts = urlsplit(url)
        host = _host_for_message(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchFailed(f"{what} must be an http(s) URL; {host} is not.")
        target, headers, extensions = url, {}, {}
        if not self._trusted(url):
            address = await self._public_address(parts.hostname, parts.port, what, host)
            if address is not None:  # connect to the address checked, not to a new DNS answer
                target = _with_host(url, address)
                headers["Host"] = parts.netloc.rpartition("@")[2]
                extensions["sni_hostname"] = parts.hostname
        return target, headers, extensions

    # -- posting (webhooks) -----------------------------------------------------------------------

    async def post(
        self, url: str, content: bytes, headers: dict[str, str], *, what: str = "the webhook"
    ) -> Answered:
        """POSTs `content` to `url` under the same rules, never following a redirect (a 3xx is
        answered as it came), and reads at most `max_bytes` of the answer; raises FetchFailed
        when the URL is refused, nothing answers or the deadline passes."""
        host = _host_for_message(url)
        try:
            async with asyncio.timeout(self.limits.timeout_seconds):
                return await self._post(url, content, headers, what)
        except TimeoutError:
            raise FetchFailed(f"{what} at {host} did not answer in time.") from None

    async def _post(self, url: str, content: bytes, extra: dict[str, str], what: str) -> Answered:
        target, headers, extensions = await self._checked(url, what)
        async with httpx.AsyncClient(transport=self.transport, follow_redirects=False) as client:
            request = client.build_request(
                "POST", target, content=content, headers={**extra, **headers}, extensions=extensions
            )
            try:
                response = await client.send(request, stream=True)
                try:
                    return Answered(response.status_code, await self._head_of(response))
                finally:
                    await response.aclose()
            except httpx.HTTPError:
                raise FetchFailed(
                    f"{what} at {_host_for_message(url)} could not be reached."
                ) from None

    async def _head_of(self, response: httpx.Response) -> bytes:
        """At most `max_bytes` of the body: the rest is never read."""
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk[: self.limits.max_bytes - size])
            size += len(chunks[-1])
            if size >= self.limits.max_bytes:
                break
        return b"".join(chunks)

    async def _read(self, url: str, response: httpx.Response, what: str) -> Fetched:
        host = _host_for_message(url)
        if response.status_code != 200:
            raise FetchFailed(f"{what} at {host} answered HTTP {response.status_code}.")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limits.max_bytes:
            raise self._too_large(what, host)
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.limits.max_bytes:
                raise self._too_large(what, host)
            chunks.append(chunk)
        content_type = response.headers.get("content-type", "").split(";")[0].strip()
        return Fetched(url, content_type.lower(), b"".join(chunks))

    def _too_large(self, what: str, host: str) -> FetchFailed:
        return FetchFailed(f"{what} at {host} is over {self.limits.max_bytes // 1_000_000} MB.")

    def _trusted(self, url: str) -> bool:
        return origin_of(url) in self.trusted_origins

    async def _public_address(
        self, hostname: str, port: int | None, what: str, host: str
    ) -> IPAddress | None:
        """The address to connect to, once every address of the host passed the rule; None
        when private addresses are allowed (the connection then resolves as usual)."""
        if self.allow_private:
            return None
        try:
            addresses = [ipaddress.ip_address(hostname.strip("[]"))]
        except ValueError:
            addresses = await _resolve(hostname, port)
        if not addresses:
            raise FetchFailed(f"{what} at {host} could not be fetched: the name does not resolve.")
        if not all(self.public(a) for a in addresses):
            raise FetchFailed(f"{what} at {host} is not allowed: it is not a public address.")
        return addresses[0]


async def _resolve(hostname: str, port: int | None) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(hostname, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def _with_host(url: str, address: IPAddress) -> str:
    parts = urlsplit(url)
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    return parts._replace(netloc=netloc).geturl()


def _host_for_message(url: str) -> str:
    """The host as a message may name it: never the path, query or credentials."""
    try:
        hostname = urlsplit(url).hostname
    except ValueError:
        hostname = None
    return hostname[:100] if hostname else "an invalid URL"


def host_for_message(url: str) -> str:
    """The host of `url` as a message may name it (what FetchFailed messages name)."""
    return _host_for_message(url)
