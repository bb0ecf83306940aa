"""The task store's contract, run on every backend (SQLite and PostgreSQL), as river runs one
driver suite on each of its drivers: the claim, the lease fence, cancel, the rescue of expired
leases, release, and the money that creating, failing and canceling move. What only one backend has
(SKIP LOCKED under concurrency, a failed SQLite commit) is tested in test_postgres.py and
test_sqlite_database.py."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest

from darkroom.db import Database
from darkroom.keys import ApiKey, KeyStore, Limits
from darkroom.tasks import InsufficientFunds, QueueFull, Task, TaskStatus, TaskStore
from darkroom.tasks.model import batch_key
from darkroom.tasks.store import LEASE_LOST_MESSAGE
from tests.support.tasks import DATABASES, migrated_database, new_task

OWNER, OTHER = "worker-under-test", "another-worker"
EXPIRED = -1.0  # a lease that has run out as soon as it is taken
# Each task costs a tenth, which binary floats cannot hold: a balance kept in floats drifts
# after a few charges and refunds, and a key with exactly enough would be refused.
PRICE = Decimal("0.1")
FULL = 5 * PRICE  # the key's balance: five tasks


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Database]:
    database = await migrated_database(request, tmp_path)
    yield database
    await database.dispose()


@dataclass
class Queue:
    """A store, its keys, and one key with a balance of five tasks at PRICE."""

    store: TaskStore
    keys: KeyStore
    key: ApiKey

    async def add(self, count: int = 1, model: str = "tiny-512", **fields: object) -> list[Task]:
        created = []
        for index in range(count):
            new = new_task(self.key, index, model, cost=PRICE, **fields)  # type: ignore[arg-type]
            created.append(await self.store.create(new, self.key, max_queue=100))
        return created

    async def claim_one(self, owner: str = OWNER, lease_seconds: float = 30) -> Task:
        [task] = await self.store.claim(owner, limit=1, lease_seconds=lease_seconds)
        return task

    async def balance(self, key: ApiKey | None = None) -> Decimal | None:
        key_id = (key or self.key).id
        return next(k.balance for k in await self.keys.list() if k.id == key_id)

    async def status(self, task: Task) -> Task:
        found = await self.store.get(task.id)
        assert found is not None
        return found


@pytest.fixture
async def queue(db: Database) -> Queue:
    keys = KeyStore(db)
    _, key = await keys.create("unit", balance=FULL)
    return Queue(TaskStore(db), keys, key)


async def running_then_canceled(queue: Queue) -> Task:
    created, *_ = await queue.add()
    task = await queue.claim_one()
    assert task.id == created.id
    canceled = await queue.store.cancel(task.id, queue.key.id)
    assert canceled is not None
    assert canceled.status is TaskStatus.PROCESSING and canceled.cancel_requested
    return task


# -- records --------------------------------------------------------------------------------------


async def test_task_fields_round_trip_with_their_types(queue):
    new = new_task(queue.key, 7)
    await queue.store.create(new, queue.key, max_queue=100)
    task = await queue.store.get(new.id)
    assert task is not None
    assert task.params == new.params and task.params.seed == 7
    assert task.enqueued_at == new.enqueued_at  # double precision: no rounding of timestamps
    assert task.cancel_requested is False


# -- the claim ------------------------------------------------------------------------------------


async def test_a_claim_leases_the_oldest_tasks_of_the_oldest_tasks_batch(queue):
    first, second = await queue.add(2)
    await queue.add(1, "tiny-256", size=(256, 256))
    before = time.time()
    claimed = await queue.store.claim(OWNER, limit=3, lease_seconds=30)
    assert [t.id for t in claimed] == [first.id, second.id]  # not the other model's task
    for task in claimed:
        assert (task.status, task.attempt, task.lease_owner) == ("processing", 1, OWNER)
        assert task.lease_expires_at >= before + 30 and task.progress == 0


async def test_a_claim_by_batch_key_or_by_models_takes_only_those(queue):
    await queue.add(2)
    [small] = await queue.add(1, "tiny-256", size=(256, 256))
    by_key = await queue.store.claim(
        OWNER, limit=5, lease_seconds=30, batch_key=batch_key("tiny-256", 256, 256)
    )
    assert [t.id for t in by_key] == [small.id]
    assert await queue.store.claim(OWNER, limit=5, lease_seconds=30, models=["tiny-256"]) == []
    assert len(await queue.store.claim(OWNER, limit=5, lease_seconds=30, models=["tiny-512"])) == 2


async def test_a_task_given_back_after_an_error_waits_for_its_retry_delay(queue):
    await queue.add()
    task = await queue.claim_one()
    assert await queue.store.fail(task, OWNER, "engine error", retry=True) is TaskStatus.IDLE
    again = await queue.status(task)
    assert again.status is TaskStatus.IDLE and again.run_after > time.time()
    assert await queue.store.claim(OWNER, limit=1, lease_seconds=30) == []
    assert await queue.balance() == FULL - PRICE  # no refund: it is still going to run


# -- the fence ------------------------------------------------------------------------------------


async def test_a_worker_that_lost_its_lease_can_finish_nothing(queue):
    await queue.add()
    late = await queue.claim_one(lease_seconds=EXPIRED)
    assert await queue.store.requeue_expired() == (1, 0)
    current = await queue.claim_one(OTHER)
    assert current.attempt == 2
    assert await queue.store.complete(late, OWNER, "late/result.webp") is False
    assert await queue.store.fail(late, OWNER, "late error", retry=False) is None
    assert await queue.store.release([late], OWNER) == 0
    assert await queue.store.beat(OWNER, [late.id], lease_seconds=30, progress=50) == 0
    assert await queue.store.complete(current, OTHER, "current/result.webp") is True
    done = await queue.status(current)
    assert (done.status, done.result_key, done.progress) == ("done", "current/result.webp", 100)
    assert done.lease_owner is None and done.lease_expires_at is None
    assert await queue.store.complete(current, OTHER, "again.webp") is False  # once only


async def test_the_heartbeat_extends_the_lease_and_records_progress(queue):
    await queue.add()
    task = await queue.claim_one(lease_seconds=1)
    assert await queue.store.beat(OWNER, [task.id], lease_seconds=60, progress=40) == 1
    beaten = await queue.status(task)
    assert beaten.progress == 40 and beaten.lease_expires_at > time.time() + 30
    assert await queue.store.beat(OWNER, [task.id]) == 0  # nothing to write


# -- cancel ---------------------------------------------------------------------------------------


async def test_canceling_an_idle_task_fails_it_at_once_with_its_cost_back(queue):
    [task] = await queue.add()
    assert await queue.balance() == FULL - PRICE
    canceled = await queue.store.cancel(task.id, queue.key.id)
    assert canceled is not None
    assert (canceled.status, canceled.message) == ("failed", "canceled")
    assert canceled.cancel_requested and canceled.finished_at is not None
    assert await queue.balance() == FULL
    assert await queue.store.cancel(task.id, queue.key.id) == canceled  # a second cancel: no-op
    assert await queue.balance() == FULL
    assert await queue.store.claim(OWNER, limit=1, lease_seconds=30) == []


async def test_a_cancel_by_another_key_or_of_a_done_task_changes_nothing(queue):
    [task] = await queue.add()
    assert await queue.store.cancel(task.id, queue.key.id + 1) is None
    claimed = await queue.claim_one()
    assert await queue.store.complete(claimed, OWNER, "done.webp")
    left = await queue.store.cancel(task.id, queue.key.id)
    assert left is not None and left.status is TaskStatus.DONE and not left.cancel_requested


async def test_an_engine_error_after_a_cancel_ends_the_task_instead_of_retrying(queue):
    task = await running_then_canceled(queue)
    assert await queue.store.fail(task, OWNER, "engine error", retry=True) is TaskStatus.FAILED
    after = await queue.status(task)
    assert after.status is TaskStatus.FAILED and after.message == "canceled"
    assert await queue.store.claim(OWNER, limit=1, lease_seconds=30) == []
    assert await queue.balance() == FULL


async def test_a_release_after_a_cancel_ends_the_task_instead_of_requeueing_it(queue):
    task = await running_then_canceled(queue)
    await queue.store.release([task], OWNER)
    after = await queue.status(task)
    assert after.status is TaskStatus.FAILED and after.message == "canceled"
    assert await queue.store.claim(OWNER, limit=1, lease_seconds=30) == []
    assert await queue.balance() == FULL


# -- release and the rescue of expired leases ----------------------------------------------------


async def test_a_task_not_canceled_still_goes_back_to_the_queue(queue):
    await queue.add()
    task = await queue.claim_one()
    assert await queue.store.release([task], OWNER) == 1
    released = await queue.status(task)
    assert released.status is TaskStatus.IDLE and released.lease_owner is None
    assert await queue.balance() == FULL - PRICE
    assert (await queue.claim_one()).attempt == 1  # the released attempt did not count


async def test_an_expired_lease_goes_back_to_the_queue_until_the_last_attempt(queue):
    await queue.add()
    for attempt in (1, 2):
        task = await queue.claim_one(lease_seconds=EXPIRED)
        assert task.attempt == attempt
        assert await queue.store.requeue_expired() == (1, 0)
        assert (await queue.status(task)).status is TaskStatus.IDLE
    last = await queue.claim_one(lease_seconds=EXPIRED)
    assert last.attempt == last.max_attempts == 3
    assert await queue.store.requeue_expired() == (0, 1)
    failed = await queue.status(last)
    assert (failed.status, failed.message) == ("failed", LEASE_LOST_MESSAGE)
    assert await queue.balance() == FULL
    assert await queue.store.requeue_expired() == (0, 0)


async def test_a_live_lease_is_left_alone(queue):
    await queue.add()
    task = await queue.claim_one()
    assert await queue.store.requeue_expired() == (0, 0)
    assert (await queue.status(task)).status is TaskStatus.PROCESSING


async def test_a_canceled_task_whose_lease_expired_ends_canceled(queue):
    await queue.add()
    task = await queue.claim_one(lease_seconds=EXPIRED)
    await queue.store.cancel(task.id, queue.key.id)
    assert await queue.store.requeue_expired() == (0, 0)
    after = await queue.status(task)
    assert (after.status, after.message) == ("failed", "canceled")
    assert await queue.balance() == FULL


# -- money and the queue's bound ------------------------------------------------------------------


async def test_creating_charges_the_price_and_a_key_without_enough_is_refused(queue):
    created = await queue.add(5)
    assert {t.cost for t in created} == {PRICE}
    assert await queue.balance() == 0  # exactly: five tenths off a half
    with pytest.raises(InsufficientFunds):
        await queue.add()
    assert await queue.balance() == 0  # a refused task charges nothing
    assert (await queue.store.count_by_status())["idle"] == 5  # nothing queued for free


async def test_a_balance_of_three_tenths_buys_exactly_three_tasks_at_a_tenth(queue):
    """In binary floats, 0.3 - 0.1 - 0.1 - 0.1 is below zero and the third task is refused."""
    _, key = await queue.keys.create("tenths", balance=Decimal("0.3"))
    for index in range(3):
        await queue.store.create(new_task(key, index, cost=PRICE), key, max_queue=100)
    assert await queue.balance(key) == 0


async def test_a_credit_limit_lets_the_balance_go_that_far_below_zero_and_no_further(queue):
    _, key = await queue.keys.create("in debt", balance=Decimal("0.25"), credit_limit=Decimal(1))
    price = Decimal("0.5")
    for index in range(2):
        await queue.store.create(new_task(key, index, cost=price), key, max_queue=100)
    assert await queue.balance(key) == Decimal("-0.75")
    with pytest.raises(InsufficientFunds):  # -1.25 is beyond the limit
        await queue.store.create(new_task(key, 2, cost=price), key, max_queue=100)
    free = await queue.store.create(new_task(key, 3), key, max_queue=100)
    assert free.cost == 0 and await queue.balance(key) == Decimal("-0.75")


async def test_a_failed_task_gives_its_cost_back_exactly_once(queue):
    await queue.add()
    task = await queue.claim_one()
    assert await queue.store.fail(task, OWNER, "blocked", retry=False) is TaskStatus.FAILED
    assert await queue.store.fail(task, OWNER, "blocked", retry=False) is None
    assert await queue.store.fail(task, OWNER, "error", retry=True) is None
    assert await queue.store.cancel(task.id, queue.key.id) is not None  # finished: no-op
    failed = await queue.status(task)
    assert failed.message == "blocked" and failed.refunded_at is not None
    assert failed.cost == PRICE and failed.charged == 0
    assert await queue.balance() == FULL


async def test_each_way_a_task_fails_refunds_it_once_whatever_runs_after(queue):
    """Canceled while idle, canceled while running, failed by its engine: one refund each,
    though a late worker then tries every way out again on each of them."""
    idle, running, erring = await queue.add(3)
    await queue.store.cancel(idle.id, queue.key.id)
    claimed = await queue.store.claim(OWNER, limit=2, lease_seconds=30)
    assert [t.id for t in claimed] == [running.id, erring.id]
    await queue.store.cancel(running.id, queue.key.id)
    assert await queue.store.fail(claimed[0], OWNER, "engine error", retry=True) == "failed"
    assert await queue.store.fail(claimed[1], OWNER, "blocked", retry=False) == "failed"
    for task in claimed:
        assert await queue.store.fail(task, OWNER, "late", retry=False) is None
        assert await queue.store.release([task], OWNER) == 0
        assert await queue.store.complete(task, OWNER, "late.webp") is False
        await queue.store.cancel(task.id, queue.key.id)
    await queue.store.cancel(idle.id, queue.key.id)
    assert await queue.store.requeue_expired() == (0, 0)
    assert await queue.balance() == FULL


async def test_a_key_without_a_balance_is_never_charged(queue):
    _, unmetered = await queue.keys.create("unmetered")
    for index in range(3):
        new = new_task(unmetered, index, cost=PRICE)
        await queue.store.create(new, unmetered, max_queue=100)
    [task, *_] = await queue.store.claim(OWNER, limit=1, lease_seconds=30)
    await queue.store.fail(task, OWNER, "blocked", retry=False)
    assert await queue.balance(unmetered) is None


async def test_a_full_queue_refuses_the_task_without_charging(queue):
    await queue.add(2)
    with pytest.raises(QueueFull):
        await queue.store.create(new_task(queue.key, 9, cost=PRICE), queue.key, max_queue=2)
    assert await queue.balance() == FULL - 2 * PRICE


# -- group commit (tasks/admission.py): creates arriving together share one transaction -------


async def concurrent_creates(queue: Queue, news: list, max_queue: int = 100) -> list:
    """Creates started in one go, so that they reach the store while the first one's group
    forms; each outcome is the task or the exception."""
    creates = (queue.store.create(new, queue.key, max_queue=max_queue) for new in news)
    return await asyncio.gather(*creates, return_exceptions=True)


async def test_creates_that_arrive_together_are_each_charged_and_refused_on_their_own(queue):
    outcomes = await concurrent_creates(
        queue, [new_task(queue.key, i, cost=PRICE) for i in range(8)]
    )
    accepted = [o for o in outcomes if isinstance(o, Task)]
    # The balance pays for five: the first five in arrival order, the other three refused.
    assert [o.prompt for o in accepted] == [f"task {i}" for i in range(5)]
    assert all(isinstance(o, InsufficientFunds) for o in outcomes[5:])
    assert await queue.balance() == FULL - 5 * PRICE
    assert [await queue.store.get(t.id) for t in accepted] == accepted


async def test_the_queue_cap_holds_within_a_group(queue):
    news = [new_task(queue.key, i) for i in range(6)]
    outcomes = await concurrent_creates(queue, news, max_queue=4)
    assert [type(o) for o in outcomes] == [Task] * 4 + [QueueFull] * 2


async def test_a_group_that_fails_answers_every_create_with_the_error_and_queues_none(queue):
    [existing] = await queue.add()
    news = [new_task(queue.key, 10 + i, cost=PRICE) for i in range(4)]
    # One task of the group breaks the transaction (its id is taken): the whole group rolls
    # back, so no create may be answered with an id, and nobody is charged.
    news[2] = dataclasses.replace(news[2], id=existing.id)
    outcomes = await concurrent_creates(queue, news)
    assert all(isinstance(o, Exception) and not isinstance(o, Task) for o in outcomes), outcomes
    assert [await queue.store.get(n.id) for n in news if n.id != existing.id] == [None] * 3
    assert await queue.balance() == FULL - PRICE
    # The store goes on: the next create works.
    [after] = await queue.add()
    assert await queue.store.get(after.id) == after


# -- fair share (tasks/fair.py): keys take turns at the workers -------------------------------


async def flood(queue: Queue, key: ApiKey, count: int, start: int = 0, **fields) -> list[Task]:
    news = [new_task(key, start + i, **fields) for i in range(count)]
    return [await queue.store.create(new, key, max_queue=10_000) for new in news]


async def claimed_keys(queue: Queue, claims: int, limit: int = 1) -> list[int]:
    """The key of each task taken by `claims` claims in a row."""
    taken: list[int] = []
    for _ in range(claims):
        taken += [t.key_id for t in await queue.store.claim(OWNER, limit=limit, lease_seconds=30)]
    return taken


async def test_a_small_key_is_served_beside_a_flood_not_behind_it(queue):
    _, big = await queue.keys.create("flood")
    _, small = await queue.keys.create("small")
    await flood(queue, big, 60, model="tiny-512")
    await flood(queue, small, 5, start=100, model="tiny-512")
    order = await claimed_keys(queue, 12)
    # Each key in turn until the small one runs out, though all its tasks came last.
    assert order[:10].count(small.id) == 5 and order[:10].count(big.id) == 5
    assert order[10:] == [big.id, big.id]


async def test_a_key_that_waited_with_nothing_queued_banks_no_turns(queue):
    _, busy = await queue.keys.create("busy")
    _, late = await queue.keys.create("late")
    await flood(queue, busy, 30)
    await claimed_keys(queue, 20)  # the busy key alone: its virtual time runs far ahead
    await flood(queue, late, 10, start=100)
    order = await claimed_keys(queue, 6)
    # The newcomer comes in level: turns alternate, not ten of the newcomer's first.
    assert order.count(late.id) == 3 and order.count(busy.id) == 3


async def test_a_heavier_key_gets_its_weight_in_turns(queue):
    _, light = await queue.keys.create("light")
    _, heavy = await queue.keys.create("heavy", weight=3.0)
    await flood(queue, light, 20)
    await flood(queue, heavy, 20, start=100)
    order = await claimed_keys(queue, 12)
    assert order.count(heavy.id) == 9 and order.count(light.id) == 3


async def test_a_key_of_higher_priority_is_served_first(queue):
    _, normal = await queue.keys.create("normal")
    _, urgent = await queue.keys.create("urgent", priority=1)
    await flood(queue, normal, 5)
    await flood(queue, urgent, 3, start=100)
    assert await claimed_keys(queue, 5) == [urgent.id] * 3 + [normal.id] * 2


async def test_one_batch_mixes_keys_in_turn(queue):
    _, big = await queue.keys.create("flood")
    _, small = await queue.keys.create("small")
    await flood(queue, big, 10)
    await flood(queue, small, 2, start=100)
    batch = await queue.store.claim(OWNER, limit=6, lease_seconds=30)
    assert len({t.batch_key for t in batch}) == 1
    assert sorted(t.key_id for t in batch) == sorted([big.id] * 4 + [small.id] * 2)


async def test_a_key_at_its_limit_of_running_tasks_is_passed_over(queue, db):
    _, capped = await queue.keys.create("capped", limits=Limits(max_running=2))
    _, other = await queue.keys.create("other")
    await flood(queue, capped, 6)
    await flood(queue, other, 2, start=100)
    order = await claimed_keys(queue, 6)
    # Two of the capped key's tasks run; then only the other key is served, then nobody.
    assert order.count(capped.id) == 2 and order.count(other.id) == 2
    # The server's default applies to a key with no limit of its own.
    store = TaskStore(db, key_limits=Limits(max_running=1))
    _, plain = await queue.keys.create("plain")
    await flood(queue, plain, 3, start=200)
    assert len(await store.claim(OWNER, limit=3, lease_seconds=30)) == 1
