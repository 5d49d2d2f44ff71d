"""Creating instances, sending them messages, reading them back."""

from __future__ import annotations

import asyncio

import pytest

from durafn.core.errors import InstanceAlreadyExists, InstanceNotFound, InstanceNotRunning
from durafn.core.history import EventRaised, ExecutionResumed, ExecutionSuspended
from durafn.core.status import RuntimeStatus
from durafn.store.base import Store

from .factories import (
    LEASE,
    T0,
    at,
    commit,
    create_finished,
    episode,
    finish,
    lock_instance,
    new_instance,
    raised,
    start_running,
    started,
    terminated,
)


def test_store_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert store.task_hub == "default"


def test_create_instance_is_pending_with_its_fields(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a", "order", "e1", input='{"n":1}'), at(5))
        record = await store.get_instance("a")
        assert record is not None
        assert (record.instance_id, record.name, record.execution_id) == ("a", "order", "e1")
        assert record.status is RuntimeStatus.PENDING
        assert record.created_at == record.updated_at == at(5)
        assert record.input == '{"n":1}'
        assert (record.output, record.custom_status, record.failure) == (None, None, None)
        assert (record.completed_at, record.scheduled_start_at) == (None, None)
        assert record.parent_instance_id is None
        assert await store.get_history("a") == []

    asyncio.run(body())


def test_create_queues_a_visible_start_message(store: Store) -> None:
    async def body() -> None:
        new = new_instance("a", "order", "e1", input='"x"')
        await store.create_instance(new, T0)
        item = await store.lock_next_orchestration("w1", LEASE, T0)
        assert item is not None
        assert (item.instance_id, item.execution_id, item.name) == ("a", "e1", "order")
        assert item.status is RuntimeStatus.PENDING
        assert item.history_length == 0
        assert [m.event for m in item.messages] == [new.started]

    asyncio.run(body())


def test_create_with_the_id_of_an_unfinished_instance_raises(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("pending", execution_id="e1"), T0)
        await start_running(store, "running", execution_id="r1")
        for instance_id in ("pending", "running"):
            with pytest.raises(InstanceAlreadyExists) as raised_error:
                await store.create_instance(new_instance(instance_id, execution_id="e2"), at(1))
            assert raised_error.value.instance_id == instance_id
        pending = await store.get_instance("pending")
        running = await store.get_instance("running")
        assert pending is not None and pending.execution_id == "e1"
        assert running is not None and running.execution_id == "r1"
        assert running.status is RuntimeStatus.RUNNING
        assert len(await store.get_history("running")) == 3

    asyncio.run(body())


def test_create_replaces_a_finished_instance(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "a", execution_id="e1")
        await finish(store, "a", at(1), RuntimeStatus.FAILED)
        assert await store.get_history("a") != []
        await store.create_instance(new_instance("a", "other", "e2", input='"new"'), at(2))
        record = await store.get_instance("a")
        assert record is not None
        assert (record.name, record.execution_id, record.input) == ("other", "e2", '"new"')
        assert record.status is RuntimeStatus.PENDING
        assert record.created_at == at(2)
        assert record.completed_at is None
        assert await store.get_history("a") == []
        item = await lock_instance(store, "a", at(2))
        assert [m.event.kind for m in item.messages] == ["ExecutionStarted"]
        assert item.execution_id == "e2"

    asyncio.run(body())


def test_unknown_instances_read_as_empty(store: Store) -> None:
    async def body() -> None:
        assert await store.get_instance("nope") is None
        assert await store.get_history("nope") == []
        assert await store.dropped_events("nope") == 0

    asyncio.run(body())


def test_returned_records_and_histories_are_copies(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "a")
        record = await store.get_instance("a")
        history = await store.get_history("a")
        assert record is not None
        record.status = RuntimeStatus.FAILED
        record.output = "tampered"
        history.clear()
        again = await store.get_instance("a")
        assert again is not None
        assert (again.status, again.output) == (RuntimeStatus.RUNNING, None)
        assert len(await store.get_history("a")) == 3

    asyncio.run(body())


def test_scheduled_start_is_invisible_until_its_time(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a", start_at=at(60)), T0)
        record = await store.get_instance("a")
        assert record is not None
        assert record.scheduled_start_at == at(60)
        assert record.status is RuntimeStatus.PENDING
        assert await store.lock_next_orchestration("w1", LEASE, at(59)) is None
        assert await store.next_visible_at(T0) == at(60)
        item = await store.lock_next_orchestration("w1", LEASE, at(60))
        assert item is not None
        assert [m.event.kind for m in item.messages] == ["ExecutionStarted"]

    asyncio.run(body())


def test_a_start_time_in_the_past_starts_at_once(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a", start_at=at(-10)), T0)
        record = await store.get_instance("a")
        assert record is not None and record.scheduled_start_at == at(-10)
        item = await store.lock_next_orchestration("w1", LEASE, T0)
        assert item is not None and item.instance_id == "a"

    asyncio.run(body())


def test_scheduled_start_defers_messages_but_not_terminate(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a", start_at=at(60)), T0)
        await store.send_message("a", raised("early", now=at(1)), at(1))
        assert await store.lock_next_orchestration("w1", LEASE, at(2)) is None
        await store.send_message("a", terminated("stop", now=at(2)), at(2))
        item = await store.lock_next_orchestration("w1", LEASE, at(3))
        assert item is not None
        assert [m.event.kind for m in item.messages] == ["ExecutionTerminated"]
        await store.abandon_orchestration(item)
        item = await store.lock_next_orchestration("w1", LEASE, at(60))
        assert item is not None
        kinds = [m.event.kind for m in item.messages]
        assert kinds == ["ExecutionStarted", "EventRaised", "ExecutionTerminated"]

    asyncio.run(body())


def test_messages_after_the_scheduled_time_are_visible_at_once(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a", start_at=at(10)), T0)
        item = await lock_instance(store, "a", at(10))
        await commit(store, item, at(10))
        await store.send_message("a", raised(now=at(20)), at(20))
        item = await lock_instance(store, "a", at(20))
        assert [m.event.kind for m in item.messages] == ["EventRaised"]

    asyncio.run(body())


def test_send_message_to_an_unknown_instance_raises_not_found(store: Store) -> None:
    async def body() -> None:
        with pytest.raises(InstanceNotFound) as error:
            await store.send_message("ghost", raised(), T0)
        assert isinstance(error.value, LookupError)
        assert error.value.instance_id == "ghost"
        assert await store.get_instance("ghost") is None

    asyncio.run(body())


def test_send_message_to_a_finished_instance_raises_not_running(store: Store) -> None:
    async def body() -> None:
        await create_finished(store, "a")
        cases = [
            (raised(), "raise an event"),
            (terminated(), "terminate"),
            (ExecutionSuspended(timestamp=T0), "suspend"),
            (ExecutionResumed(timestamp=T0), "resume"),
        ]
        for event, verb in cases:
            with pytest.raises(InstanceNotRunning, match=verb) as error:
                await store.send_message("a", event, at(1))
            assert error.value.status == RuntimeStatus.COMPLETED.value
        assert await store.lock_next_orchestration("w1", LEASE, at(2)) is None

    asyncio.run(body())


def test_an_event_raised_at_a_finished_instance_is_counted(
    store: Store,
) -> None:

    async def body() -> None:
        await create_finished(store, "a")
        for _ in range(2):
            with pytest.raises(InstanceNotRunning):
                await store.send_message("a", raised(), at(1))
        with pytest.raises(InstanceNotRunning):
            await store.send_message("a", terminated(), at(1))
        assert await store.dropped_events("a") == 2

    asyncio.run(body())


def test_messages_arrive_in_order(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        for name in ("one", "two", "three"):
            await store.send_message("a", raised(name), T0)
        item = await lock_instance(store, "a")
        seqs = [m.seq for m in item.messages]
        assert seqs == sorted(seqs) and len(set(seqs)) == 4
        names = [m.event.name for m in item.messages if isinstance(m.event, EventRaised)]
        assert names == ["one", "two", "three"]
        assert item.messages[0].event == started()

    asyncio.run(body())


def test_an_instance_created_leased_is_its_creators_first_episode(store: Store) -> None:
    async def body() -> None:
        item = await store.create_instance_leased(new_instance("a", input='"x"'), T0, "w1", LEASE)
        assert (item.instance_id, item.execution_id, item.name) == ("a", "e1", "wf")
        assert item.status is RuntimeStatus.PENDING and item.history_length == 0
        assert item.lock_token.startswith("w1/") and item.locked_until == T0 + LEASE
        assert [m.event for m in item.messages] == [started("wf", "e1", input='"x"')]
        # Leased: nobody else claims it until the lease ends.
        assert await store.lock_next_orchestration("w2", LEASE, at(1)) is None
        await commit(store, item, at(1), events=episode(item.messages[0].event, now=at(1)))
        record = await store.get_instance("a")
        assert record is not None and record.status is RuntimeStatus.RUNNING
        assert len(await store.get_history("a")) == 3
        assert await store.lock_next_orchestration("w2", LEASE, at(2)) is None

    asyncio.run(body())


def test_a_lease_of_a_new_instance_that_lapses_lets_another_worker_start_it(
    store: Store,
) -> None:
    async def body() -> None:
        await store.create_instance_leased(new_instance("a"), T0, "w1", LEASE)
        other = await store.lock_next_orchestration("w2", LEASE, at(31))
        assert other is not None and other.instance_id == "a"
        assert [m.event.kind for m in other.messages] == ["ExecutionStarted"]

    asyncio.run(body())


def test_creating_leased_refuses_what_create_refuses(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        with pytest.raises(InstanceAlreadyExists):
            await store.create_instance_leased(new_instance("a", execution_id="e2"), T0, "w", LEASE)
        with pytest.raises(ValueError, match="starts later"):
            await store.create_instance_leased(new_instance("b", start_at=at(60)), T0, "w", LEASE)
        assert await store.get_instance("b") is None
        await create_finished(store, "done")
        item = await store.create_instance_leased(
            new_instance("done", execution_id="e3"), at(1), "w", LEASE
        )
        assert item.execution_id == "e3" and await store.get_history("done") == []

    asyncio.run(body())
