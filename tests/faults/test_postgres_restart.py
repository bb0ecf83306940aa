"""PostgreSQL restarted twice under load (a clean `fast` stop, then an `immediate` one, a
crash): while it is down the API answers code 1 or 6 with words, never HTTP 500; the API node
and the worker reconnect on their own, the worker's LISTEN connection too; every accepted task
ends once."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
import pytest

from darkroom.worker.wakeup import LISTENER_NAME
from tests.faults.load import DONE, Load, assert_ended_well, catalog, create, wait_for_log, warm_up
from tests.support.servers import Darkroom, wait_for_status
from tests.support.services import RestartablePostgres

LISTENING = "listening for new tasks"
# A clean stop that ends sessions, then a crash (recovery runs at the next start).
MODES = ("fast", "immediate")


async def listeners(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
        return await conn.fetchval(query, LISTENER_NAME)
    finally:
        await conn.close()


@pytest.mark.slow
def test_a_restarted_database_loses_nothing_and_everyone_reconnects(
    restartable_postgres: RestartablePostgres, tiny_model, tmp_path
):
    darkroom = Darkroom(
        tmp_path,
        catalog(tmp_path, tiny_model),
        lease_seconds=3,
        max_attempts=10,
        poll_seconds=0.2,
        # An idle worker that listens polls only this rarely: a task it picks up promptly
        # after the restart was announced by NOTIFY on a LISTEN connection made again.
        listen_poll_seconds=600,
        db_pool_timeout=5,
    )
    database = restartable_postgres.new_database()
    darkroom.env["DARKROOM_DATABASE_URL"] = database
    darkroom.cli("migrate")
    try:
        darkroom.start_server("--workers", "0")
        key = darkroom.create_key()
        darkroom.start_worker("--concurrency", "2")
        warm_up(darkroom, key)
        with Load(darkroom.base_url, key) as load:
            for restart, mode in enumerate(MODES, start=1):
                # Mid-run: some tasks done, some not yet.
                wait_for_log(darkroom, DONE, count=darkroom.logs().count(DONE) + 10)
                restartable_postgres.stop(mode)
                accepted, refused = len(load.accepted), len(load.refused)
                load.wait_refused(refused + 4)  # answers while it is down
                restartable_postgres.start()
                load.wait_accepted(accepted + 10)  # the API node came back on its own
                # The worker listens again (it said so once at start, then after each restart).
                wait_for_log(darkroom, LISTENING, count=1 + restart)
        assert load.other == []  # no HTTP 500, no broken connection
        for answer in load.refused:
            assert answer["code"] in (1, 6) and len(answer["message"].split()) > 3, answer

        # One LISTEN connection, made again: an idle worker is woken at once by a NOTIFY.
        assert asyncio.run(listeners(database)) == 1
        with httpx.Client(base_url=darkroom.base_url, headers={"Authorization": key}) as client:
            assert_ended_well(client, darkroom, load.accepted)
            late = create(client, "after the restart")
            assert wait_for_status(client, late, timeout=30)["status"] == "done"
    finally:
        darkroom.stop()
