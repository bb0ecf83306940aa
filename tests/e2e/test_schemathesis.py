"""Generated requests against a running `darkroom serve`, drawn from its own OpenAPI document
by schemathesis (its coverage and fuzzing phases: boundary and invalid bodies on every
operation), sent with a valid key so the authenticated paths run. None may answer HTTP 500 (the
spec: nothing a client sends produces one), and the answers keep to the document's status
codes and content types. The cases are bounded and seeded: the same few hundred every run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.catalogs import CONFIGS
from tests.support.servers import running

CASES_PER_OPERATION = 60
SEED = 1
# Not response_schema_conformance: like the hosted service, API errors are HTTP 200 with a
# non-zero `code`, a shape the document's 200 schemas (the successes) do not describe.
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"
# OpenAI's images routes answer a generation that outlives the generate timeout with 504, as
# OpenAI's do (documented): there, statuses and types are checked, and the log for a 500.
IMAGES = "^/v1/images/"
IMAGES_CHECKS = "status_code_conformance,content_type_conformance"
BOUND = 300  # a bound for a hung run (seconds), never a measure


def schemathesis_run(
    base_url: str, key: str, workdir: Path, *selection: str, checks: str = CHECKS
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "run", f"{base_url}/openapi.json"),
            *("--header", f"Authorization: {key}"),
            *selection,
            *("--checks", checks),
            *("--max-examples", str(CASES_PER_OPERATION), "--seed", str(SEED)),
            *("--request-timeout", "30", "--continue-on-failure", "--no-color"),
        ],
        cwd=workdir,  # where it keeps its reports and examples database
        capture_output=True,
        text=True,
        timeout=BOUND,
    )


def test_generated_requests_get_no_server_error_and_keep_to_the_document(tmp_path):
    # A short generate timeout: a generated generate call answers its task as it stands.
    with running(tmp_path, CONFIGS / "test.toml", generate_timeout_seconds=1) as darkroom:
        key = darkroom.create_key("--name", "schemathesis")
        run = schemathesis_run(darkroom.base_url, key, tmp_path, "--exclude-path-regex", IMAGES)
        images = schemathesis_run(
            darkroom.base_url, key, tmp_path, "--include-path-regex", IMAGES, checks=IMAGES_CHECKS
        )
    for one, operations in ((run, 10), (images, 2)):
        report = one.stdout + one.stderr
        assert one.returncode == 0, report
        tested = re.search(r"Tested: (\d+)", report)
        generated = re.search(r"(\d+) generated, \1 passed", report)
        assert tested and int(tested.group(1)) >= operations, report  # all it was given
        assert generated and int(generated.group(1)) > 50 * operations, report
        assert key not in report  # schemathesis hides the Authorization header's value
    assert '" 500' not in darkroom.logs()
