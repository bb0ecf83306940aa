"""What the demo engine runs on, as the worker that loaded it knows it, for the API's model
listing: a small JSON file per model in the data directory (`demo/<model id>.json`).

The worker writes it when it chooses (demo.py) and the API reads it on `GET /v1/media/models`
(api/listing.py), so the API node never imports torch or asks the hub itself. `darkroom serve`
runs its workers in its own process on the same data directory; a worker on another machine
writes to its own data directory, where an API node elsewhere does not see it (the demo
catalog is for one machine). Last writer wins, which suits workers that all choose alike.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

RANDOM_WEIGHTS = "random weights"


@dataclass(frozen=True)
class DemoStatus:
    source: str
    """The hub id it runs, or "tiny"."""
    random_weights: bool
    reason: str = ""
    """Why it runs on random weights (the choice, or what the hub answered)."""

    @property
    def note(self) -> str | None:
        """The listing's `demo` note: set only where the pictures are noise."""
        return RANDOM_WEIGHTS if self.random_weights else None


def status_path(data_dir: Path, model_id: str) -> Path:
    return data_dir / "demo" / f"{quote(model_id, safe='')}.json"


def write_status(data_dir: Path, model_id: str, status: DemoStatus) -> None:
    """Writes aside then renames, so a reader never sees half a file."""
    path = status_path(data_dir, model_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(json.dumps(asdict(status)))
    draft.replace(path)


def clear_status(data_dir: Path, model_id: str) -> None:
    """Forgets what an earlier run chose: until this run's worker chooses, nothing is claimed."""
    status_path(data_dir, model_id).unlink(missing_ok=True)


def read_status(data_dir: Path, model_id: str) -> DemoStatus | None:
    try:
        data = json.loads(status_path(data_dir, model_id).read_text())
        return DemoStatus(str(data["source"]), bool(data["random_weights"]), str(data["reason"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
