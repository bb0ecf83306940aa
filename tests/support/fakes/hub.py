"""A local Hugging Face hub: the endpoints `huggingface_hub.snapshot_download` calls, serving
model folders the tests build, for `HF_ENDPOINT=<its base_url>`.

- GET  /api/models/{repo}[/revision/{rev}]      the model's info: its commit (`sha`), its files
- GET  /api/models/{repo}/tree/{rev}?recursive  the files with size and blob id (LFS: sha256)
- HEAD /{repo}/resolve/{rev}/{path}             X-Repo-Commit, ETag, Content-Length, no body
- GET  /{repo}/resolve/{rev}/{path}             the file, or from `Range: bytes=N-` on (206)

As on the hub, weights (`*.safetensors`) are LFS files whose ETag is their sha256, other files'
is their git blob id. Faults: `cut_next(path)` sends half of that file then drops the
connection (huggingface_hub resumes it with a Range request); `refuse_after_cut` answers the
resumption 503, so the download fails in that start; `down` answers everything 503.
`requests` records what was asked.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class HubFile:
    data: bytes
    lfs: bool

    @property
    def etag(self) -> str:
        if self.lfs:
            return hashlib.sha256(self.data).hexdigest()
        header = f"blob {len(self.data)}\0".encode()
        return hashlib.sha1(header + self.data).hexdigest()  # noqa: S324 - git's blob id

    def tree_entry(self, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(self.data)}
        entry["oid"] = hashlib.sha1(path.encode()).hexdigest()  # noqa: S324 - any id will do
        if self.lfs:
            entry["lfs"] = {"oid": self.etag, "size": len(self.data), "pointerSize": 134}
        return entry


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    range: str | None


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, HubFile]] = {}
        self.commits: dict[str, str] = {}
        self.requests: list[Seen] = []
        self.cuts: dict[str, int] = {}  # repo path -> how many more GETs to cut
        self.refuse_after_cut = False
        self.down = False  # every request answered 503, as a hub down or a refusing proxy
        self._cut_done: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, repo_id: str, folder: Path) -> None:
        """Serves every file under `folder` as the repository's, at one commit."""
        files = {
            str(path.relative_to(folder)): HubFile(path.read_bytes(), path.suffix == ".safetensors")
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
        self.repos[repo_id] = files
        self.commits[repo_id] = hashlib.sha1(repo_id.encode()).hexdigest()  # noqa: S324

    def cut_next(self, path: str, times: int = 1) -> None:
        self.cuts[path] = times

    def downloads(self, path: str) -> list[Seen]:
        """The GETs of one file (`unet/...`), in order."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + path)]

    # -- answering ---------------------------------------------------------------------------

    def route(self, method: str, target: str) -> tuple[str, str, str] | None:
        """(kind, repo, rest) for a known repository's request, else None."""
        path = unquote(urlsplit(target).path)
        for repo in self.repos:
            if path == f"/api/models/{repo}":  # model_info without a revision: the main branch
                return "info", repo, "main"
            for kind, prefix in (
                ("info", f"/api/models/{repo}/revision/"),
                ("tree", f"/api/models/{repo}/tree/"),
                ("file", f"/{repo}/resolve/"),
            ):
                if path.startswith(prefix):
                    return kind, repo, path[len(prefix) :]
        return None

    def info(self, repo: str) -> dict[str, Any]:
        siblings = [{"rfilename": path} for path in self.repos[repo]]
        return {
            "_id": repo,
            "id": repo,
            "modelId": repo,
            "sha": self.commits[repo],
            "private": False,
            "disabled": False,
            "gated": False,
            "siblings": siblings,
        }

    def tree(self, repo: str) -> list[dict[str, Any]]:
        return [file.tree_entry(path) for path, file in self.repos[repo].items()]

    def take_cut(self, path: str) -> str | None:
        """ "cut" to cut this GET, "refuse" to refuse it, None to serve it."""
        with self._lock:
            if self.cuts.get(path, 0) > 0:
                self.cuts[path] -= 1
                self._cut_done.add(path)
                return "cut"
            if self.refuse_after_cut and path in self._cut_done:
                return "refuse"
        return None


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _serve(self, body: bool) -> None:
            hub.requests.append(Seen(self.command, self.path, self.headers.get("Range")))
            if hub.down:
                return self._json(503, {"error": "Service unavailable"})
            found = hub.route(self.command, self.path)
            if found is None:
                return self._json(404, {"error": "Repository not found"}, RepoNotFound=True)
            kind, repo, rest = found
            if kind == "info":
                return self._json(200, hub.info(repo))
            if kind == "tree":
                return self._json(200, hub.tree(repo))
            _revision, _, path = rest.partition("/")
            file = hub.repos[repo].get(path)
            if file is None:
                return self._json(404, {"error": "Entry not found"}, EntryNotFound=True)
            headers = {
                "X-Repo-Commit": hub.commits[repo],
                "ETag": f'"{file.etag}"',
                "Accept-Ranges": "bytes",
            }
            if not body:
                return self._send(200, headers, file.data, body=False)
            self._file(path, file, headers)

        def _file(self, path: str, file: HubFile, headers: dict[str, str]) -> None:
            fault = hub.take_cut(path)
            if fault == "refuse":
                return self._json(503, {"error": "Service unavailable"})
            start = _range_start(self.headers.get("Range"))
            data = file.data[start:]
            status = 206 if start else 200
            if start:
                headers["Content-Range"] = f"bytes {start}-{len(file.data) - 1}/{len(file.data)}"
            if fault == "cut":
                self._send(status, headers, data, body=True, cut_at=len(data) // 2)
            else:
                self._send(status, headers, data, body=True)

        def _json(self, status: int, payload: Any, **error_code: bool) -> None:
            headers = {"Content-Type": "application/json"}
            if error_code:
                headers["X-Error-Code"] = next(iter(error_code))
            self._send(status, headers, json.dumps(payload).encode(), body=True)

        def _send(
            self,
            status: int,
            headers: dict[str, str],
            data: bytes,
            *,
            body: bool,
            cut_at: int | None = None,
        ) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not body:
                    return
                if cut_at is None:
                    self.wfile.write(data)
                    return
                self.wfile.write(data[:cut_at])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # mid-file, as a dropped link does
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _range_start(header: str | None) -> int:
    """N of `bytes=N-`, the only form huggingface_hub sends (a resumption)."""
    if not header or not header.startswith("bytes="):
        return 0
    return int(header.removeprefix("bytes=").split("-", 1)[0] or 0)


PADDING = "darkroom_test_padding"


def hub_folder(root: Path, *, variant: str | None = "fp16") -> Path:
    """The tiny SD 1.5 pipeline laid out as a hub repository: saved with `variant` (SD-Turbo's
    repository has fp16 files), with a single-file checkpoint at its top as SD-Turbo's has (the
    demo must not fetch it), and its UNet file padded to twice one download chunk (10 MB) with a
    tensor diffusers ignores, so that a cut mid-file leaves part of it on disk to resume from."""
    import torch
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import load_file, save_file

    from darkroom.engines.local.random_weights import build

    folder = root / f"hub-{variant or 'plain'}"
    if folder.exists():
        return folder
    pipeline = StableDiffusionPipeline.from_pretrained(build("sd15", root / "tiny-sd15"))
    pipeline.save_pretrained(folder, variant=variant)
    [unet] = (folder / "unet").glob("*.safetensors")
    tensors = load_file(unet)
    tensors[PADDING] = torch.zeros(6 * 1024 * 1024)  # 24 MB of float32: cut in half, 12 MB
    save_file(tensors, unet)
    (folder / "single_file_checkpoint.safetensors").write_bytes(b"\0" * 4096)
    return folder
