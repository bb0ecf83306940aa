"""The S3 server stopped under load for longer than one attempt to store a result: the worker
gives the task back with its growing retry delay (rather than holding it until its lease runs
out), stores it once S3 is back, and every link works again."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.faults.load import DONE, Load, assert_ended_well, catalog, wait_for_log, warm_up
from tests.support.servers import Darkroom
from tests.support.services import RestartableS3Server

STORE_FAILED = "storing the result failed"
RETRIED = '"status": "idle"'  # a "task not finished" given back to the queue


@pytest.mark.slow
def test_results_stored_while_s3_is_away_are_stored_when_it_is_back(
    restartable_s3: RestartableS3Server, tiny_model, tmp_path
):
    darkroom = Darkroom(tmp_path, catalog(tmp_path, tiny_model), lease_seconds=3, max_attempts=10)
    darkroom.env.update(restartable_s3.env())
    darkroom.env["DARKROOM_S3_BUCKET"] = f"darkroom-{secrets.token_hex(4)}"
    try:
        darkroom.start_server()  # with its worker
        key = darkroom.create_key()
        warm_up(darkroom, key)
        with Load(darkroom.base_url, key) as load:
            wait_for_log(darkroom, DONE, count=5)
            restartable_s3.stop()
            load.wait_accepted(len(load.accepted) + 15)  # work goes on coming in
            restartable_s3.start()  # some 20 s later: far longer than one attempt
            done_before = darkroom.logs().count(DONE)
            wait_for_log(darkroom, DONE, count=done_before + 5)
        assert load.other == [] and load.refused == []  # creating never needed S3
        with httpx.Client(base_url=darkroom.base_url, headers={"Authorization": key}) as client:
            assert_ended_well(client, darkroom, load.accepted)  # every link downloads
        logs = darkroom.logs()
        # Retried by the worker itself, with its delay: no task waited out its lease.
        assert logs.count(STORE_FAILED) >= 2 and logs.count(RETRIED) >= 2
        assert "expired leases" not in logs
    finally:
        darkroom.stop()
