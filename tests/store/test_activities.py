"""Activity tasks: leased in batches, re-delivered after a lost lease, completed at most once."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from durafn.core.errors import LeaseLost
from durafn.core.history import TaskFailed
from durafn.core.status import RuntimeStatus
from durafn.store.base import ActivityWorkItem, Store

from .factories import (
    LEASE,
    T0,
    activity,
    at,
    commit,
    failure,
    finish,
    lock_instance,
    new_instance,
    raised,
    started,
    task_completed,
)


async def _schedule(store: Store, instance_id: str, *event_ids: int) -> None:
    """Create ``instance_id`` and commit a first episode that schedules ``event_ids``."""
    await store.create_instance(new_instance(instance_id, execution_id="e1"), T0)
    item = await lock_instance(store, instance_id)
    await commit(store, item, T0, activities=[activity(i, f"act{i}", f'"{i}"') for i in event_ids])


async def _lock_one(store: Store, now: datetime = T0, owner: str = "w1") -> ActivityWorkItem:
    tasks = await store.lock_next_activities(owner, LEASE, now, 1)
    assert len(tasks) == 1
    return tasks[0]


def test_lock_next_activities_respects_the_limit_and_the_order(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0, 1, 2)
        first = await store.lock_next_activities("w1", LEASE, T0, 2)
        rest = await store.lock_next_activities("w2", LEASE, T0, 2)
        assert [t.event_id for t in first] == [0, 1]
        assert [t.event_id for t in rest] == [2]
        assert [t.name for t in first + rest] == ["act0", "act1", "act2"]
        assert [t.input for t in first + rest] == ['"0"', '"1"', '"2"']
        assert all(t.locked_until == T0 + LEASE and t.attempts == 1 for t in first + rest)
        assert len({t.lock_token for t in first + rest}) == 3
        assert len({t.task_id for t in first + rest}) == 3
        assert await store.lock_next_activities("w3", LEASE, T0, 10) == []
        assert await store.lock_next_activities("w3", LEASE, T0, 0) == []

    asyncio.run(body())


def test_an_expired_activity_lease_is_delivered_again(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        first = await _lock_one(store)
        assert await store.lock_next_activities("w2", LEASE, at(29), 10) == []
        second = await _lock_one(store, at(30), "w2")
        assert (second.task_id, second.event_id) == (first.task_id, first.event_id)
        assert second.attempts == 2
        assert second.lock_token != first.lock_token
        third = await _lock_one(store, at(60), "w3")
        assert third.attempts == 3

    asyncio.run(body())


def test_completing_an_activity_delivers_its_result_once(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        task = await _lock_one(store)
        result = task_completed(0, '"ok"', at(1))
        assert await store.complete_activity(task, result, at(1))
        assert not await store.complete_activity(task, result, at(2))
        assert await store.lock_next_activities("w1", LEASE, at(100), 10) == []
        item = await lock_instance(store, "a", at(2))
        assert [m.event for m in item.messages] == [result]

    asyncio.run(body())


def test_a_failure_result_is_delivered_like_a_success(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        task = await _lock_one(store)
        result = TaskFailed(timestamp=at(1), task_scheduled_id=0, failure=failure())
        assert await store.complete_activity(task, result, at(1))
        item = await lock_instance(store, "a", at(1))
        assert [m.event for m in item.messages] == [result]

    asyncio.run(body())


def test_a_completion_after_another_worker_took_the_task_is_dropped(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        stale = await _lock_one(store)
        current = await _lock_one(store, at(30), "w2")
        assert not await store.complete_activity(stale, task_completed(0, '"stale"'), at(31))
        assert await store.complete_activity(current, task_completed(0, '"fresh"'), at(32))
        assert not await store.complete_activity(stale, task_completed(0, '"stale"'), at(33))
        item = await lock_instance(store, "a", at(33))
        assert [m.event for m in item.messages] == [task_completed(0, '"fresh"')]

    asyncio.run(body())


def test_a_completion_with_an_expired_lease_nobody_took_is_accepted(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        task = await _lock_one(store)
        assert await store.complete_activity(task, task_completed(0), at(300))
        item = await lock_instance(store, "a", at(300))
        assert [m.event for m in item.messages] == [task_completed(0)]

    asyncio.run(body())


def test_a_completion_after_abandon_is_accepted_once(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        task = await _lock_one(store)
        await store.abandon_activity(task)
        assert await store.complete_activity(task, task_completed(0), at(1))
        assert await store.lock_next_activities("w1", LEASE, at(1), 10) == []
        assert not await store.complete_activity(task, task_completed(0), at(2))

    asyncio.run(body())


def test_a_result_for_an_earlier_execution_is_dropped(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        task = await _lock_one(store)
        await store.send_message("a", raised(), at(1))
        item = await lock_instance(store, "a", at(1))
        restart = started("wf", "e2", now=at(1))
        await commit(store, item, at(1), RuntimeStatus.CONTINUED_AS_NEW, restart=restart)
        assert not await store.complete_activity(task, task_completed(0), at(2))
        fresh = await lock_instance(store, "a", at(2))
        assert [m.event for m in fresh.messages] == [restart]

    asyncio.run(body())


def test_a_result_for_a_finished_instance_is_dropped(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        task = await _lock_one(store)
        await finish(store, "a", at(1), RuntimeStatus.TERMINATED)
        assert not await store.complete_activity(task, task_completed(0), at(2))
        assert await store.lock_next_orchestration("w1", LEASE, at(2)) is None
        assert await store.dropped_events("a") == 0

    asyncio.run(body())


def test_renew_activity_lease(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        task = await _lock_one(store)
        await store.renew_activity_lease(task, LEASE, at(20))
        assert task.locked_until == at(50)
        assert await store.lock_next_activities("w2", LEASE, at(40), 10) == []
        taken = await _lock_one(store, at(50), "w2")
        with pytest.raises(LeaseLost):
            await store.renew_activity_lease(task, LEASE, at(51))
        assert task.locked_until == at(50)
        assert await store.complete_activity(taken, task_completed(0), at(52))
        with pytest.raises(LeaseLost):
            await store.renew_activity_lease(taken, LEASE, at(53))

    asyncio.run(body())


def test_abandon_activity_makes_it_available_again(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        task = await _lock_one(store)
        await store.abandon_activity(task)
        again = await _lock_one(store, at(1), "w2")
        assert (again.task_id, again.attempts) == (task.task_id, 2)
        with pytest.raises(LeaseLost):
            await store.renew_activity_lease(task, LEASE, at(1))

    asyncio.run(body())


def test_abandon_activity_with_retry_at_delays_it(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        task = await _lock_one(store)
        await store.abandon_activity(task, retry_at=at(90))
        assert await store.lock_next_activities("w1", LEASE, at(89), 10) == []
        assert await store.next_visible_at(at(1)) == at(90)
        again = await _lock_one(store, at(90))
        assert again.attempts == 2

    asyncio.run(body())


def test_abandon_by_a_worker_that_lost_the_task_changes_nothing(store: Store) -> None:
    async def body() -> None:
        await _schedule(store, "a", 0)
        stale = await _lock_one(store)
        current = await _lock_one(store, at(30), "w2")
        await store.abandon_activity(stale, retry_at=at(1000))
        assert await store.lock_next_activities("w3", LEASE, at(31), 10) == []
        await store.renew_activity_lease(current, LEASE, at(31))
        assert await store.complete_activity(current, task_completed(0), at(32))

    asyncio.run(body())


def test_a_late_completion_never_completes_a_later_task_of_the_same_step(store: Store) -> None:
    """An instance created again with the same execution id schedules the same step anew: the
    first task's late result, whose lease nobody renewed, must not complete the new task."""

    async def body() -> None:
        await _schedule(store, "a", 0)
        first = await _lock_one(store)
        await finish(store, "a", at(1), RuntimeStatus.TERMINATED)
        await _schedule(store, "a", 0)
        assert not await store.complete_activity(first, task_completed(0, '"late"'), at(2))
        second = await _lock_one(store, at(3))
        assert second.task_id != first.task_id
        assert await store.complete_activity(second, task_completed(0, '"fresh"'), at(4))

    asyncio.run(body())
