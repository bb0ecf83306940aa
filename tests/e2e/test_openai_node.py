"""OpenAI's Node SDK from npm (tests/js/package.json), unchanged but for its base URL and key,
makes one images.generate call against the real server, as the seed's axios example is run
(tests/e2e/test_seed_clients.py). `make test` installs Node.js and the packages."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from PIL import Image

JS = Path(__file__).resolve().parents[1] / "js"


def test_openai_node_sdk_generates_images(darkroom, api_key, tmp_path):
    target = tmp_path / "otter"
    run = subprocess.run(
        ["node", str(JS / "openai_example.mjs"), str(target)],
        env={**os.environ, "DARKROOM_BASE_URL": darkroom.base_url, "DARKROOM_API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[0])["images"] == 2
    for index in range(2):
        with Image.open(f"{target}.{index}.png") as image:
            assert (image.format, image.size) == ("PNG", (1024, 1024))
