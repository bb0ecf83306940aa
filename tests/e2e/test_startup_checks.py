"""A model whose engine cannot work as configured (here: no API key for OpenAI) stops
`darkroom worker` and `darkroom serve` at start with a message that names what is missing,
rather than failing every task later with a server error; so does a storage that cannot work
(S3 without credentials) or a link secret anyone could guess (empty or short), in one line
rather than a traceback. `--first-key` shows the key it makes once."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.servers import Darkroom

CATALOG = '[models."painter"]\nengine = "openai"\napi_key_env = "DARKROOM_TEST_NO_SUCH_KEY"\n'


@pytest.fixture
def darkroom(tmp_path) -> Darkroom:
    config = tmp_path / "catalog.toml"
    config.write_text(CATALOG)
    server = Darkroom(tmp_path, config)
    server.env.pop("DARKROOM_TEST_NO_SUCH_KEY", None)
    return server


def test_a_worker_with_an_unusable_model_exits_at_start_naming_the_problem(darkroom):
    run = darkroom.cli("worker", check=False, timeout=60)
    assert run.returncode == 2
    assert "DARKROOM_TEST_NO_SUCH_KEY" in run.stderr and "painter" in run.stderr


def test_serve_with_workers_checks_its_models_too(darkroom):
    run = darkroom.cli("serve", "--workers", "1", check=False, timeout=60)
    assert run.returncode == 2
    assert "DARKROOM_TEST_NO_SUCH_KEY" in run.stderr


def test_an_api_node_does_not_need_the_engines(darkroom):
    darkroom.start_server("--workers", "0")
    try:
        key = darkroom.create_key()
        assert key.startswith("dk_")
    finally:
        darkroom.stop()


def test_serving_on_every_interface_without_a_public_url_warns_about_links(tmp_path):
    server = Darkroom(tmp_path, None, host="0.0.0.0")
    server.start_server("--workers", "0")
    server.stop()
    assert "set DARKROOM_PUBLIC_URL" in server.logs()


def test_s3_storage_without_credentials_stops_serve_with_one_line_naming_them(tmp_path):
    # Every source boto3 reads credentials from is emptied: variables, files, instance metadata.
    server = Darkroom(tmp_path, None, storage="s3", s3_endpoint_url="http://127.0.0.1:9")
    for name in [name for name in server.env if name.startswith("AWS_")]:
        server.env.pop(name)
    server.env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    run = server.cli("serve", "--workers", "0", check=False, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "AWS_ACCESS_KEY_ID" in lines[0] and "AWS_SECRET_ACCESS_KEY" in lines[0]


@pytest.mark.parametrize("content", ["", " \n\t\n", "too-short-a-secret\n"])
def test_an_unusable_secret_file_stops_serve_with_one_line_naming_it(tmp_path, content):
    # Anyone could forge links signed with an empty or short secret.
    (tmp_path / "secret").write_text(content)
    run = Darkroom(tmp_path, None).cli("serve", "--workers", "0", check=False, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert str(tmp_path / "secret") in lines[0] and "32" in lines[0]


@pytest.mark.parametrize("value", ["", "   ", "x" * 31])
def test_an_unusable_darkroom_secret_stops_serve_with_one_line_naming_it(tmp_path, value):
    run = Darkroom(tmp_path, None, secret=value).cli("serve", "--workers", "0", check=False)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "DARKROOM_SECRET" in lines[0] and "32" in lines[0]


def test_the_first_key_is_printed_once_on_the_served_output(tmp_path):
    # The welcome shares its stream with the access log: the raw key appears in it once, as a
    # line to paste, and the curls that follow name it as $KEY.
    server = Darkroom(tmp_path, None)
    server.start_server("--workers", "0", "--first-key")
    try:
        output = server.logs()
        (raw,) = re.findall(r"export KEY=(dk_[A-Za-z0-9_-]+)", output)
        answer = httpx.get(f"{server.base_url}/v1/balance", headers={"Authorization": raw})
        assert answer.status_code == 200 and answer.json()["unlimited"] is True
    finally:
        server.stop()
    output = server.logs()
    assert output.count(raw) == 1
    assert output.count('-H "Authorization: $KEY"') == 2
