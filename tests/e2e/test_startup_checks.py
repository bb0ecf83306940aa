"""A model whose engine cannot work as configured (here: no API key for OpenAI) stops
`darkroom worker` and `darkroom serve` at start with a message that names what is missing,
rather than failing every task later with a server error."""

from __future__ import annotations

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
