"""Leasing instances: which one, which messages, for how long, and who may renew or release."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from durafn.core.errors import LeaseLost
from durafn.core.history import EventRaised
from durafn.core.status import RuntimeStatus
from durafn.store.base import InboxMessage, Store

from .factories import (
    LEASE,
    T0,
    at,
    commit,
    episode,
    lock_instance,
    new_instance,
    raised,
    start_running,
    task_scheduled,
    timer_fired,
    to_self,
)


def _names(messages: list[InboxMessage]) -> list[str]:
    return [m.event.name for m in messages if isinstance(m.event, EventRaised)]


def test_nothing_to_lock_in_an_empty_hub(store: Store) -> None:
    async def body() -> None:
        assert await store.lock_next_orchestration("w1", LEASE, T0) is None

    asyncio.run(body())


def test_a_lease_excludes_other_owners_until_it_expires(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        first = await store.lock_next_orchestration("w1", LEASE, T0)
        assert first is not None
        assert first.locked_until == T0 + LEASE
        await store.send_message("a", raised(), at(1))
        assert await store.lock_next_orchestration("w2", LEASE, at(1)) is None
        assert await store.lock_next_orchestration("w2", LEASE, at(29)) is None
        taken = await store.lock_next_orchestration("w2", LEASE, at(30))
        assert taken is not None and taken.instance_id == "a"
        assert taken.lock_token != first.lock_token
        assert taken.locked_until == at(30) + LEASE
        assert [m.event.kind for m in taken.messages] == ["ExecutionStarted", "EventRaised"]

    asyncio.run(body())


def test_the_oldest_visible_message_decides_which_instance_is_locked(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("late", start_at=at(5)), T0)
        await store.create_instance(new_instance("b"), at(6))
        await store.create_instance(new_instance("c"), at(6))
        order = []
        for owner in ("w1", "w2", "w3"):
            item = await store.lock_next_orchestration(owner, LEASE, at(10))
            assert item is not None
            order.append(item.instance_id)
        assert order == ["late", "b", "c"]
        assert await store.lock_next_orchestration("w4", LEASE, at(10)) is None

    asyncio.run(body())


def test_only_visible_messages_are_handed_out_in_arrival_order(store: Store) -> None:
    async def body() -> None:
        item = await start_running(store, "a")
        await store.send_message("a", raised("one"), at(1))
        locked = await lock_instance(store, "a", at(1))
        timer = to_self(locked, timer_fired(0, at(100)), at(100))
        await commit(store, locked, at(1), messages=[timer])
        await store.send_message("a", raised("two"), at(2))
        await store.send_message("a", raised("three"), at(3))
        locked = await lock_instance(store, "a", at(3))
        assert item.execution_id == locked.execution_id
        assert _names(locked.messages) == ["two", "three"]
        assert [m.seq for m in locked.messages] == sorted(m.seq for m in locked.messages)

    asyncio.run(body())


def test_max_messages_caps_an_episode_and_the_rest_wait(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "a")
        for name in ("m1", "m2", "m3", "m4", "m5"):
            await store.send_message("a", raised(name), at(1))
        names = []
        for _ in range(3):
            item = await store.lock_next_orchestration("w1", LEASE, at(2), max_messages=2)
            assert item is not None and len(item.messages) <= 2
            names.append(_names(item.messages))
            await commit(store, item, at(2))
        assert names == [["m1", "m2"], ["m3", "m4"], ["m5"]]
        assert await store.lock_next_orchestration("w1", LEASE, at(2)) is None

    asyncio.run(body())


def test_a_batch_claim_caps_the_messages_of_each_instance(store: Store) -> None:
    async def body() -> None:
        for iid in ("a", "b"):
            await start_running(store, iid)
            for name in ("m1", "m2", "m3"):
                await store.send_message(iid, raised(f"{iid}{name}"), at(1))
        items = await store.lock_next_orchestrations("w1", LEASE, at(2), 5, max_messages=2)
        assert {i.instance_id: _names(i.messages) for i in items} == {
            "a": ["am1", "am2"],
            "b": ["bm1", "bm2"],
        }
        for item in items:
            await commit(store, item, at(2))
        items = await store.lock_next_orchestrations("w1", LEASE, at(2), 5, max_messages=2)
        assert sorted(_names(i.messages) for i in items) == [["am3"], ["bm3"]]

    asyncio.run(body())


def test_history_length_counts_the_current_execution(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "a")
        await store.send_message("a", raised(), at(1))
        item = await lock_instance(store, "a", at(1))
        assert item.history_length == 3
        assert item.status is RuntimeStatus.RUNNING
        await commit(store, item, at(1), events=episode(task_scheduled(0), now=at(1)))
        await store.send_message("a", raised(), at(2))
        item = await lock_instance(store, "a", at(2))
        assert item.history_length == 6

    asyncio.run(body())


def test_renew_extends_the_lease(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        await store.renew_orchestration_lease(item, timedelta(seconds=30), at(20))
        assert item.locked_until == at(50)
        assert await store.lock_next_orchestration("w2", LEASE, at(40)) is None
        taken = await store.lock_next_orchestration("w2", LEASE, at(50))
        assert taken is not None and taken.instance_id == "a"

    asyncio.run(body())


def test_renew_after_the_lease_was_taken_over_raises_lease_lost(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        taken = await store.lock_next_orchestration("w2", LEASE, at(30))
        assert taken is not None
        with pytest.raises(LeaseLost):
            await store.renew_orchestration_lease(item, LEASE, at(31))
        assert item.locked_until == T0 + LEASE
        await store.renew_orchestration_lease(taken, LEASE, at(31))
        assert taken.locked_until == at(61)

    asyncio.run(body())


def test_renew_after_the_checkpoint_raises_lease_lost(store: Store) -> None:
    async def body() -> None:
        item = await start_running(store, "a")
        with pytest.raises(LeaseLost):
            await store.renew_orchestration_lease(item, LEASE, at(1))

    asyncio.run(body())


def test_abandon_releases_the_lease_and_keeps_the_messages(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        await store.send_message("a", raised("kept"), T0)
        item = await lock_instance(store, "a")
        await store.abandon_orchestration(item)
        again = await store.lock_next_orchestration("w2", LEASE, T0)
        assert again is not None and again.instance_id == "a"
        assert again.messages == item.messages
        with pytest.raises(LeaseLost):
            await store.renew_orchestration_lease(item, LEASE, T0)

    asyncio.run(body())


def test_abandon_with_retry_at_keeps_everyone_off_until_then(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        await store.abandon_orchestration(item, retry_at=at(10))
        assert await store.lock_next_orchestration("w1", LEASE, at(9)) is None
        assert await store.next_visible_at(T0) == at(10)
        again = await store.lock_next_orchestration("w2", LEASE, at(10))
        assert again is not None and again.instance_id == "a"

    asyncio.run(body())


def test_abandon_by_a_worker_that_lost_the_lease_changes_nothing(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        stale = await lock_instance(store, "a")
        taken = await store.lock_next_orchestration("w2", LEASE, at(30))
        assert taken is not None
        await store.abandon_orchestration(stale)
        assert await store.lock_next_orchestration("w3", LEASE, at(31)) is None
        await store.renew_orchestration_lease(taken, LEASE, at(31))
        await commit(store, taken, at(32))
        record = await store.get_instance("a")
        assert record is not None and record.status is RuntimeStatus.RUNNING

    asyncio.run(body())


def test_lock_next_orchestrations_leases_a_batch_in_claim_order(store: Store) -> None:
    async def body() -> None:
        for n, name in enumerate(["c", "a", "d", "b"]):
            await store.create_instance(new_instance(name), at(n))
        taken = await lock_instance(store, "d", at(10), owner="w0")
        batch = await store.lock_next_orchestrations("w1", LEASE, at(10), 2)
        assert [item.instance_id for item in batch] == ["c", "a"]
        assert len({item.lock_token for item in batch}) == 2
        assert all(item.locked_until == at(10) + LEASE for item in batch)
        assert all(item.messages[0].event.kind == "ExecutionStarted" for item in batch)
        rest = await store.lock_next_orchestrations("w2", LEASE, at(10), 10)
        assert [item.instance_id for item in rest] == ["b"]
        assert await store.lock_next_orchestrations("w3", LEASE, at(10), 10) == []
        assert await store.lock_next_orchestrations("w3", LEASE, at(10), 0) == []
        # Each lease of a batch is a lease of its own.
        await commit(store, batch[0], at(11))
        await store.abandon_orchestration(batch[1])
        [again] = await store.lock_next_orchestrations("w3", LEASE, at(12), 10)
        assert again.instance_id == "a"
        assert taken.instance_id == "d"

    asyncio.run(body())
