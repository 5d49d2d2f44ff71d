"""The backlog: the visible and scheduled work of a task hub, the signal workers scale by."""

from __future__ import annotations

import asyncio

import pytest

from durafn.store.base import Backlog, Store
from durafn.worker.worker import WorkerOptions

from .conftest import Backend
from .factories import (
    LEASE,
    T0,
    activity,
    at,
    commit,
    lock_instance,
    new_instance,
    raised,
    start_running,
    timer_fired,
    to_self,
)


def test_an_empty_hub_has_no_backlog(store: Store) -> None:
    assert asyncio.run(store.backlog(T0)) == Backlog(0, 0, 0)


def test_the_backlog_counts_instances_tasks_and_scheduled_messages(store: Store) -> None:
    async def body() -> None:
        # Two instances waiting for their first episode, one with two messages.
        await store.create_instance(new_instance("a"), T0)
        await store.create_instance(new_instance("b"), T0)
        await store.send_message("b", raised("x"), T0)
        assert await store.backlog(T0) == Backlog(2, 0, 0)

        # An episode of "a" schedules three activities and a timer for later.
        item = await lock_instance(store, "a")
        assert await store.backlog(T0) == Backlog(2, 0, 0), "an instance in an episode counts"
        await commit(
            store,
            item,
            activities=[activity(0), activity(1), activity(2)],
            messages=[to_self(item, timer_fired(3, at(60)), at(60))],
        )
        assert await store.backlog(T0) == Backlog(1, 3, 1)

        # Leased activities still count (they are running); the timer counts once due.
        leased = await store.lock_next_activities("w1", LEASE, T0, 2)
        assert len(leased) == 2
        assert await store.backlog(T0) == Backlog(1, 3, 1)
        assert await store.backlog(at(60)) == Backlog(2, 3, 0)

    asyncio.run(body())


def test_the_backlog_belongs_to_one_task_hub(store: Store, backend: Backend) -> None:
    async def body() -> None:
        await start_running(store, "a")
        await store.send_message("a", raised("x"), T0)
        blue = backend.open("blue")
        try:
            assert await store.backlog(T0) == Backlog(1, 0, 0)
            assert await blue.backlog(T0) == Backlog(0, 0, 0)
        finally:
            await blue.close()

    asyncio.run(body())


@pytest.mark.parametrize(
    ("backlog", "per_worker", "workers"),
    [
        (Backlog(0, 0, 5), (4, 16), 0),
        (Backlog(1, 0, 0), (4, 16), 1),
        (Backlog(9, 0, 0), (4, 16), 3),
        (Backlog(1, 33, 0), (4, 16), 3),
        (Backlog(10, 10, 0), (1, 1), 10),
    ],
)
def test_recommended_workers_covers_the_larger_backlog(
    backlog: Backlog, per_worker: tuple[int, int], workers: int
) -> None:
    assert backlog.recommended_workers(*per_worker) == workers


def test_recommended_workers_rejects_a_capacity_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Backlog(1, 1, 0).recommended_workers(0, 16)


def test_recommended_workers_defaults_to_a_default_workers_capacity() -> None:
    options = WorkerOptions()
    per_worker = (options.max_concurrent_orchestrations, options.max_concurrent_activities)
    for backlog in (Backlog(65, 0, 0), Backlog(3, 40, 0), Backlog(200, 5, 0)):
        assert backlog.recommended_workers() == backlog.recommended_workers(*per_worker)
