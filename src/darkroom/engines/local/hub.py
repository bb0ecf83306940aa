"""A diffusers pipeline folder from the Hugging Face hub, through `huggingface_hub`: downloaded
once into its cache (with its progress bars on the console), read from the cache afterwards,
and given up on quickly when the hub cannot be reached, so that the demo can fall back.

Only what `from_pretrained` reads on a folder is fetched: model_index.json, each component's
configuration and tokenizer files, and its weights in safetensors, half-precision (`fp16`
variant) where the repository has them (SD-Turbo's take 2.6 GB instead of 5.2 GB); the
single-file checkpoints at a repository's top are left out. A file cut off mid-download is
resumed from where it stopped (an HTTP Range request, by huggingface_hub); a start that could
not finish keeps the files it completed, and the next start fetches only the rest.

The environment is read when a download starts, not when huggingface_hub is imported, so it
applies in a long-lived process too: HF_ENDPOINT, HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE, and
HF_TOKEN (read by huggingface_hub itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

# The first request to the hub gets this long: a black-holed address must not hold the demo's
# first task for minutes (a refused connection or a proxy's refusal fails at once anyway).
REACH_TIMEOUT_SECONDS = 5.0
FP16 = "fp16"
_CONFIGS = ["model_index.json", "*/*.json", "*/*.txt", "*/*.model"]
_WEIGHTS = {FP16: ["*/*.fp16.safetensors"], None: ["*/*.safetensors"]}
_OTHER_VARIANTS = ["*.fp16.*", "*.bf16.*", "*.fp32.*", "*.non_ema.*", "*.ema.*"]


class HubUnavailable(Exception):
    """The model could not be had from the hub or its cache; the message says why."""


@dataclass(frozen=True)
class Snapshot:
    folder: Path
    variant: str | None
    """The weights' variant to load (`fp16`), or None for the plain files."""


def fetch_pipeline(repo_id: str, env: Mapping[str, str] = os.environ) -> Snapshot:
    """The pipeline's folder in the cache, downloaded first when the hub is reachable; from the
    cache alone when it is not (or HF_HUB_OFFLINE is set). Raises HubUnavailable."""
    hub = _Hub.of(env)
    if not hub.offline:
        try:
            variant = hub.variant_of(repo_id)
        except Exception as exc:  # noqa: BLE001 - any failure to reach it means: try the cache
            unreachable = f"{type(exc).__name__}: {exc}"
        else:
            return Snapshot(hub.download(repo_id, variant), variant)
    else:
        unreachable = "HF_HUB_OFFLINE is set"
    cached = hub.cached(repo_id)
    if cached is None:
        raise HubUnavailable(
            f"{repo_id} is not in the cache and the hub cannot be reached "
            f"({unreachable.splitlines()[0]})"
        )
    return cached


@dataclass(frozen=True)
class _Hub:
    endpoint: str | None
    cache_dir: Path
    offline: bool

    @classmethod
    def of(cls, env: Mapping[str, str]) -> _Hub:
        xdg_cache = Path(env.get("XDG_CACHE_HOME") or "~/.cache")
        home = Path(env.get("HF_HOME") or xdg_cache / "huggingface")
        cache = Path(env.get("HF_HUB_CACHE") or home / "hub").expanduser()
        offline = env.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
        return cls(env.get("HF_ENDPOINT") or None, cache, offline)

    def variant_of(self, repo_id: str) -> str | None:
        """Asks the hub which files the repository has (the one short request that tells
        whether the hub is reachable): fp16 when its components come in half precision."""
        from huggingface_hub import HfApi

        info = HfApi(endpoint=self.endpoint).model_info(repo_id, timeout=REACH_TIMEOUT_SECONDS)
        names = [sibling.rfilename for sibling in info.siblings or []]
        return FP16 if any(fnmatchcase(name, _WEIGHTS[FP16][0]) for name in names) else None

    def download(self, repo_id: str, variant: str | None) -> Path:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, **self._files(variant), **self._where()))

    def cached(self, repo_id: str) -> Snapshot | None:
        """The snapshot the cache holds in full, of either variant, without a request."""
        from huggingface_hub import snapshot_download

        for variant in (FP16, None):
            try:
                folder = snapshot_download(
                    repo_id, local_files_only=True, **self._files(variant), **self._where()
                )
            except Exception:  # noqa: BLE001, S112 - not cached, or cached incomplete
                continue
            if _has_weights(Path(folder), variant):
                return Snapshot(Path(folder), variant)
        return None

    def _where(self) -> dict[str, object]:
        return {
            "cache_dir": self.cache_dir,
            "endpoint": self.endpoint,
            "etag_timeout": REACH_TIMEOUT_SECONDS,
        }

    @staticmethod
    def _files(variant: str | None) -> dict[str, list[str] | None]:
        return {
            "allow_patterns": _CONFIGS + _WEIGHTS[variant],
            "ignore_patterns": None if variant else _OTHER_VARIANTS,
        }


def _has_weights(folder: Path, variant: str | None) -> bool:
    """Whether a cached snapshot holds weights of this variant (the patterns of the other
    variant find a repository's configurations complete without any)."""
    pattern = _WEIGHTS[variant][0]
    return any(fnmatchcase(str(p.relative_to(folder)), pattern) for p in folder.rglob("*"))
