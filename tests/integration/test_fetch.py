"""The guarded fetcher against real HTTP servers on loopback.

This machine has only loopback addresses, so the tests treat 127.0.0.2 as "the internet" (a
narrower `public` rule given to the fetcher) and 127.0.0.1 as the private network it must never
reach; the default rule (`is_public`) is checked on its own."""

from __future__ import annotations

import base64
import io
import ipaddress
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from darkroom.fetch import Fetcher, FetchFailed, FetchLimits, is_public, origin_of

PUBLIC = "127.0.0.2"  # stands for a public address in these tests
PRIVATE = "127.0.0.1"


def png(width: int = 8, height: int = 8, color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Site:
    """A web server answering fixed routes: path -> (status, headers, body)."""

    host: str
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextmanager
def site(host: str) -> Iterator[Site]:
    served = Site(host)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append((self.path, self.headers.get("Host", "")))
            status, headers, body = served.routes.get(self.path, (404, {}, b"no"))
            self.send_response(status)
            # An empty Content-Length leaves it out: the body then runs until the connection
            # closes (HTTP/1.0), and only the fetcher's own count can stop it.
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                if value:
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def only_public_is(address: str):
    return lambda ip: str(ip) == address


@pytest.fixture
def public_site() -> Iterator[Site]:
    with site(PUBLIC) as served:
        yield served


@pytest.fixture
def private_site() -> Iterator[Site]:
    with site(PRIVATE) as served:
        yield served


@pytest.fixture
def fetcher() -> Fetcher:
    return Fetcher(allow_private=False, public=only_public_is(PUBLIC))


async def test_a_public_image_is_fetched_and_decoded(fetcher: Fetcher, public_site: Site):
    public_site.routes["/cat.png"] = (200, {"Content-Type": "image/png"}, png(12, 8))
    image = await fetcher.fetch_image(f"{public_site.base}/cat.png")
    assert image.size == (12, 8)
    # The connection went to the checked address with the URL's host in the Host header.
    assert public_site.requests == [("/cat.png", f"{PUBLIC}:{public_site.port}")]


async def test_a_private_address_is_refused_without_connecting(
    fetcher: Fetcher, private_site: Site
):
    private_site.routes["/secret"] = (200, {}, b"secret")
    with pytest.raises(FetchFailed) as refused:
        await fetcher.fetch(f"{private_site.base}/secret")
    assert (
        str(refused.value) == f"the file at {PRIVATE} is not allowed: it is not a public address."
    )
    assert private_site.requests == []


async def test_a_name_that_resolves_to_loopback_is_refused_after_dns(private_site: Site):
    fetcher = Fetcher(allow_private=False)  # the real rule
    with pytest.raises(FetchFailed, match="localhost is not allowed"):
        await fetcher.fetch(f"http://localhost:{private_site.port}/")
    assert private_site.requests == []


async def test_a_redirect_to_a_private_address_is_refused(
    fetcher: Fetcher, public_site: Site, private_site: Site
):
    private_site.routes["/secret"] = (200, {}, b"secret")
    public_site.routes["/go"] = (302, {"Location": f"{private_site.base}/secret"}, b"")
    with pytest.raises(FetchFailed, match=f"at {PRIVATE} is not allowed"):
        await fetcher.fetch(f"{public_site.base}/go")
    assert private_site.requests == []


async def test_redirects_between_public_hops_are_followed_unless_refused(
    fetcher: Fetcher, public_site: Site
):
    public_site.routes["/a"] = (301, {"Location": "/b"}, b"")
    public_site.routes["/b"] = (200, {"Content-Type": "text/plain"}, b"here")
    fetched = await fetcher.fetch(f"{public_site.base}/a")
    assert (fetched.data, fetched.url) == (b"here", f"{public_site.base}/b")
    with pytest.raises(FetchFailed, match="answered with a redirect"):
        await fetcher.fetch(f"{public_site.base}/a", redirects=False)


async def test_a_redirect_loop_ends(fetcher: Fetcher, public_site: Site):
    public_site.routes["/loop"] = (302, {"Location": "/loop"}, b"")
    with pytest.raises(FetchFailed, match="redirected too many times"):
        await fetcher.fetch(f"{public_site.base}/loop")
    assert len(public_site.requests) == FetchLimits().max_redirects + 1


async def test_a_body_over_the_size_cap_is_abandoned(public_site: Site):
    fetcher = Fetcher(
        FetchLimits(max_bytes=1000), allow_private=False, public=only_public_is(PUBLIC)
    )
    public_site.routes["/big"] = (200, {}, b"x" * 5000)
    with pytest.raises(FetchFailed, match="is over"):
        await fetcher.fetch(f"{public_site.base}/big")
    # Without a declared length, the count while reading stops it.
    public_site.routes["/unsized"] = (200, {"Content-Length": ""}, b"x" * 5000)
    with pytest.raises(FetchFailed, match="is over"):
        await fetcher.fetch(f"{public_site.base}/unsized")
    public_site.routes["/small"] = (200, {"Content-Length": ""}, b"x" * 999)
    assert len((await fetcher.fetch(f"{public_site.base}/small")).data) == 999


async def test_a_decompression_bomb_is_refused_before_decoding(fetcher: Fetcher, public_site: Site):
    # A PNG claiming 20000 x 20000 pixels is a few hundred kB; decoding it would take 1.2 GB.
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, "PNG")
    public_site.routes["/bomb.png"] = (200, {"Content-Type": "image/png"}, buffer.getvalue())
    with pytest.raises(FetchFailed, match="over the limit of 40,000,000 pixels"):
        await fetcher.fetch_image(f"{public_site.base}/bomb.png")
    # Under Pillow's own bomb limit, ours still holds.
    small_limit = Fetcher(
        FetchLimits(max_pixels=10_000), allow_private=False, public=fetcher.public
    )
    public_site.routes["/big.png"] = (200, {}, png(200, 100))
    with pytest.raises(FetchFailed, match="200 x 100 pixels, over the limit of 10,000 pixels"):
        await small_limit.fetch_image(f"{public_site.base}/big.png")


async def test_errors_name_the_host_but_never_the_path_or_credentials(
    fetcher: Fetcher, public_site: Site
):
    with pytest.raises(FetchFailed) as failed:
        await fetcher.fetch(f"http://user:pw@{PUBLIC}:{public_site.port}/private/path?token=s3cr3t")
    message = str(failed.value)
    assert message == f"the file at {PUBLIC} answered HTTP 404."
    assert "s3cr3t" not in message and "pw" not in message and "path" not in message


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "file:///etc/passwd", "http://", "x"])
async def test_only_http_urls_are_fetched(fetcher: Fetcher, url: str):
    with pytest.raises(FetchFailed, match="must be an http"):
        await fetcher.fetch(url)


async def test_a_slow_server_times_out(public_site: Site):
    import socket

    listener = socket.socket()
    listener.bind((PUBLIC, 0))
    listener.listen()  # accepts the connection, never answers
    try:
        fetcher = Fetcher(
            FetchLimits(timeout_seconds=0.5), allow_private=False, public=only_public_is(PUBLIC)
        )
        with pytest.raises(FetchFailed, match="took too long"):
            await fetcher.fetch(f"http://{PUBLIC}:{listener.getsockname()[1]}/")
    finally:
        listener.close()


async def test_allow_private_lifts_the_address_rule(private_site: Site):
    private_site.routes["/ok"] = (200, {}, b"ok")
    fetched = await Fetcher(allow_private=True).fetch(f"{private_site.base}/ok")
    assert fetched.data == b"ok"


async def test_a_trusted_origin_is_fetched_as_configured(fetcher: Fetcher, private_site: Site):
    private_site.routes["/result.png"] = (200, {}, b"image")
    trusting = fetcher.trusting([f"{private_site.base}/v1/"])
    assert (await trusting.fetch(f"{private_site.base}/result.png")).data == b"image"
    # Another port on the same host is another origin.
    with pytest.raises(FetchFailed, match="not allowed"):
        await trusting.fetch(f"http://{PRIVATE}:{private_site.port + 1}/x")


def test_data_urls_are_decoded_and_must_be_images(fetcher: Fetcher):
    data = png(3, 2)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    assert fetcher.decode_data_url(url) == ("image/png", data)
    with pytest.raises(FetchFailed, match="data: URL of text/plain, not an image"):
        fetcher.decode_data_url("data:text/plain;base64,aGk=")
    with pytest.raises(FetchFailed, match="not base64"):
        fetcher.decode_data_url("data:image/png,rawbytes")
    with pytest.raises(FetchFailed, match="malformed"):
        fetcher.decode_data_url("data:image/png;base64,@@@")


async def test_a_data_url_that_is_not_an_image_is_refused(fetcher: Fetcher):
    url = "data:image/png;base64," + base64.b64encode(b"not a png").decode()
    with pytest.raises(FetchFailed, match="not an image that can be read"):
        await fetcher.fetch_image(url)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("::ffff:8.8.8.8", True),
    ],
)
def test_the_public_address_rule(address: str, public: bool):
    assert is_public(ipaddress.ip_address(address)) is public


def test_origins_compare_scheme_host_and_port():
    assert origin_of("https://Relay.example/v1") == origin_of("https://relay.example:443/other")
    assert origin_of("http://relay.example/") != origin_of("https://relay.example/")
