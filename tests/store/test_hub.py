"""The task hub as a whole: due times, change notification, sharing and isolation, closing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from durafn.core.errors import InstanceNotFound, StoreError
from durafn.store.base import InstanceQuery, Store

from .conftest import Backend
from .factories import (
    LEASE,
    T0,
    activity,
    at,
    commit,
    create_finished,
    lock_instance,
    new_instance,
    raised,
    start_running,
    timer_fired,
    to_self,
)

# Generous bounds: they only tell "woke up on the write" from "slept the whole timeout".
LONG_TIMEOUT = 30.0
WOKE_EARLY = 10.0


def test_next_visible_at_is_the_earliest_future_time(store: Store) -> None:
    async def body() -> None:
        assert await store.next_visible_at(T0) is None
        await store.create_instance(new_instance("a"), T0)
        assert await store.next_visible_at(T0) is None  # visible now is not "after now"
        await store.create_instance(new_instance("later", start_at=at(90)), T0)
        assert await store.next_visible_at(T0) == at(90)
        item = await lock_instance(store, "a")
        assert await store.next_visible_at(T0) == T0 + LEASE
        timer = to_self(item, timer_fired(0, at(20)), at(20))
        await commit(store, item, T0, activities=[activity(1)], messages=[timer])
        assert await store.next_visible_at(T0) == at(20)
        assert await store.next_visible_at(at(20)) == at(90)
        assert await store.next_visible_at(at(90)) is None

    asyncio.run(body())


def test_next_visible_at_includes_activity_leases(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        await commit(store, item, T0, activities=[activity(0)])
        assert await store.next_visible_at(T0) is None
        tasks = await store.lock_next_activities("w1", LEASE, at(5), 1)
        assert len(tasks) == 1
        assert await store.next_visible_at(at(5)) == at(5) + LEASE

    asyncio.run(body())


def test_a_write_changes_the_token_for_every_store_object(store: Store, backend: Backend) -> None:
    async def body() -> None:
        other = backend.open()
        mine, theirs = await store.change_token(), await other.change_token()
        await other.create_instance(new_instance("a"), T0)
        assert await store.change_token() != mine
        assert await other.change_token() != theirs
        assert await store.get_instance("a") is not None

    asyncio.run(body())


def test_reads_leave_the_token_alone(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "a")
        token = await store.change_token()
        await store.get_instance("a")
        await store.get_history("a")
        await store.query_instances(InstanceQuery())
        await store.next_visible_at(T0)
        await store.dropped_events("a")
        assert await store.change_token() == token

    asyncio.run(body())


def test_looking_for_work_and_finding_none_leaves_the_token_alone(
    store: Store,
) -> None:

    async def body() -> None:
        await start_running(store, "a")
        token = await store.change_token()
        assert await store.lock_next_orchestration("w1", LEASE, at(1)) is None
        assert await store.lock_next_activities("w1", LEASE, at(1), 10) == []
        assert await store.change_token() == token

    asyncio.run(body())


def test_wait_for_change_wakes_on_a_write_by_another_store_object(
    store: Store, backend: Backend
) -> None:
    async def body() -> None:
        other = backend.open()
        token = await store.change_token()

        async def write_soon() -> None:
            await asyncio.sleep(0.05)
            await other.create_instance(new_instance("a"), T0)

        writer = asyncio.create_task(write_soon())
        began = time.monotonic()
        await store.wait_for_change(token, LONG_TIMEOUT)
        assert time.monotonic() - began < WOKE_EARLY
        await writer
        assert await store.change_token() != token

    asyncio.run(body())


def test_wait_for_change_wakes_on_a_write_from_another_thread(
    store: Store, backend: Backend
) -> None:
    async def write_in_own_loop() -> None:
        other = backend.open()
        await asyncio.sleep(0.05)
        await other.create_instance(new_instance("from-thread"), T0)

    async def body() -> None:
        token = await store.change_token()
        thread = threading.Thread(target=asyncio.run, args=(write_in_own_loop(),))
        began = time.monotonic()
        thread.start()
        try:
            await store.wait_for_change(token, LONG_TIMEOUT)
            assert time.monotonic() - began < WOKE_EARLY
        finally:
            await asyncio.to_thread(thread.join)
        assert await store.get_instance("from-thread") is not None

    asyncio.run(body())


def test_wait_for_change_returns_at_once_for_a_stale_token(store: Store) -> None:
    async def body() -> None:
        token = await store.change_token()
        await store.create_instance(new_instance("a"), T0)
        began = time.monotonic()
        await store.wait_for_change(token, LONG_TIMEOUT)
        assert time.monotonic() - began < WOKE_EARLY

    asyncio.run(body())


def test_wait_for_change_returns_after_the_timeout_without_a_write(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        token = await store.change_token()
        await asyncio.wait_for(store.wait_for_change(token, 0.05), LONG_TIMEOUT)
        await store.wait_for_change(token, 0)
        assert await store.change_token() == token

    asyncio.run(body())


def test_store_objects_on_one_hub_share_everything(store: Store, backend: Backend) -> None:
    async def body() -> None:
        other = backend.open()
        await store.create_instance(new_instance("a"), T0)
        item = await other.lock_next_orchestration("w2", LEASE, T0)
        assert item is not None and item.instance_id == "a"
        assert await store.lock_next_orchestration("w1", LEASE, T0) is None
        await commit(other, item, T0, custom_status='"shared"')
        record = await store.get_instance("a")
        assert record is not None and record.custom_status == '"shared"'

    asyncio.run(body())


def test_two_task_hubs_in_one_database_are_isolated(store: Store, backend: Backend) -> None:
    async def body() -> None:
        blue = backend.open("blue")
        assert blue.task_hub == "blue"
        await start_running(store, "same-id", execution_id="d1")
        await store.create_instance(new_instance("default-only"), T0)
        await blue.create_instance(new_instance("same-id", execution_id="b1"), T0)
        await create_finished(store, "done")
        blue_item = await blue.lock_next_orchestration("w1", LEASE, T0)
        assert blue_item is not None
        assert (blue_item.instance_id, blue_item.execution_id) == ("same-id", "b1")
        await commit(blue, blue_item, T0, activities=[activity(0, "blue-act")])
        assert await blue.lock_next_orchestration("w1", LEASE, T0) is None
        tasks = await store.lock_next_activities("w1", LEASE, T0, 10)
        assert tasks == []
        blue_tasks = await blue.lock_next_activities("w1", LEASE, T0, 10)
        assert [t.name for t in blue_tasks] == ["blue-act"]
        with pytest.raises(InstanceNotFound):
            await blue.send_message("default-only", raised(), T0)
        assert await blue.purge_instance("done") == 0
        assert await blue.purge_instances(InstanceQuery()) == 0
        assert await store.get_instance("done") is not None
        blue_page = await blue.query_instances(InstanceQuery())
        assert [r.instance_id for r in blue_page.instances] == ["same-id"]
        default_page = await store.query_instances(InstanceQuery())
        assert len(default_page.instances) == 3
        record = await store.get_instance("same-id")
        assert record is not None and record.execution_id == "d1"
        assert len(await store.get_history("same-id")) == 3
        assert len(await blue.get_history("same-id")) == 2

    asyncio.run(body())


def test_a_closed_store_refuses_work_and_closes_twice(backend: Backend) -> None:
    async def body() -> None:
        store = backend.open()
        await store.create_instance(new_instance("a"), T0)
        await store.close()
        with pytest.raises(StoreError, match="closed"):
            await store.get_instance("a")
        await store.close()
        reopened = backend.open()
        assert await reopened.get_instance("a") is not None

    asyncio.run(body())
