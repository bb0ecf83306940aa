"""An API node decides its catalog and serves requests without importing a provider's SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
import darkroom.api, darkroom.app
from darkroom.config import SettingsFile
catalog = SettingsFile.load(None).catalog
print(json.dumps({
    "engine": catalog["google-imagen-3"].engine,
    "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"google", "openai", "tenacity"}),
}))
"""


def test_no_sdk_is_imported_to_choose_the_default_catalog(tmp_path):
    env = {**os.environ, "GEMINI_API_KEY": "x", "HOME": str(tmp_path)}
    env.pop("GOOGLE_CLOUD_PROJECT", None)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    answer = json.loads(probe.stdout.strip().splitlines()[-1])
    assert answer == {"engine": "google", "loaded": []}
