"""Entities in the store: created by their first message, state in the row, hidden from queries."""

from __future__ import annotations

import asyncio

import pytest

from durafn.core.errors import InstanceNotFound
from durafn.core.history import EntityOperationSignaled, HistoryEvent
from durafn.core.status import RuntimeStatus
from durafn.store.base import InstanceQuery, NewInstance, OutgoingMessage, Store

from .factories import LEASE, T0, at, commit, lock_instance, new_instance, start_running

ENTITY = "@counter@a"


def signal(op: str = "add", input: str | None = "1", target: str = ENTITY) -> HistoryEvent:
    return EntityOperationSignaled(
        timestamp=T0, event_id=-1, request_id=op, instance_id=target, operation=op, input=input
    )


async def entity_batch(store: Store, state: str, **fields: object) -> None:
    item = await lock_instance(store, ENTITY)
    await commit(store, item, T0, RuntimeStatus.RUNNING, [], entity_state=state, **fields)


def test_a_signal_creates_the_entity_with_its_message(store: Store) -> None:
    async def body() -> None:
        await store.send_entity_message(ENTITY, signal(), T0)
        await store.send_entity_message(ENTITY, signal("reset", None), T0)
        record = await store.get_instance(ENTITY)
        assert record is not None
        assert record.name == "counter" and record.status is RuntimeStatus.RUNNING
        assert record.entity_state is None
        item = await store.lock_next_orchestration("w1", LEASE, T0)
        assert item is not None and item.instance_id == ENTITY
        assert [m.event for m in item.messages] == [signal(), signal("reset", None)]
        assert item.entity_state is None

    asyncio.run(body())


def test_a_plain_message_to_an_unknown_instance_is_still_refused(store: Store) -> None:
    async def body() -> None:
        with pytest.raises(InstanceNotFound):
            await store.send_message(ENTITY, signal(), T0)
        assert await store.get_instance(ENTITY) is None

    asyncio.run(body())


def test_the_checkpoint_writes_the_state_with_the_consumed_messages(store: Store) -> None:
    async def body() -> None:
        for _ in range(3):
            await store.send_entity_message(ENTITY, signal(), T0)
        await entity_batch(store, '{"state":"3"}')
        record = await store.get_instance(ENTITY)
        assert record is not None and record.entity_state == '{"state":"3"}'
        assert await store.get_history(ENTITY) == []
        assert await store.lock_next_orchestration("w1", LEASE, T0) is None
        await store.send_entity_message(ENTITY, signal(), at(1))
        item = await lock_instance(store, ENTITY, at(1))
        assert item.entity_state == '{"state":"3"}' and len(item.messages) == 1

    asyncio.run(body())


def test_a_scheduled_signal_becomes_visible_at_its_time(store: Store) -> None:
    async def body() -> None:
        await store.send_entity_message(ENTITY, signal(), T0, visible_at=at(60))
        assert await store.lock_next_orchestration("w1", LEASE, T0) is None
        assert await store.next_visible_at(T0) == at(60)
        item = await store.lock_next_orchestration("w1", LEASE, at(60))
        assert item is not None and item.instance_id == ENTITY

    asyncio.run(body())


def test_a_message_from_a_checkpoint_creates_the_entity(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "orch")
        await store.send_message("orch", signal(), at(1))  # any message, to get an episode
        item = await lock_instance(store, "orch", at(1))
        messages = [
            OutgoingMessage(ENTITY, signal()),
            OutgoingMessage("@counter@b", signal(target="@counter@b"), visible_at=at(9)),
        ]
        await commit(store, item, at(1), messages=messages)
        for entity, visible in ((ENTITY, at(1)), ("@counter@b", at(9))):
            assert await store.get_instance(entity) is not None
            leased = await lock_instance(store, entity, visible)
            assert [m.event.kind for m in leased.messages] == ["EntityOperationSignaled"]

    asyncio.run(body())


def test_queries_leave_entities_out_unless_asked(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("orch"), T0)
        await store.send_entity_message(ENTITY, signal(), T0)
        await store.send_entity_message("@other@x", signal(target="@other@x"), T0)
        page = await store.query_instances(InstanceQuery())
        assert [r.instance_id for r in page.instances] == ["orch"]
        entities = await store.query_instances(InstanceQuery(entities=True))
        assert sorted(r.instance_id for r in entities.instances) == ["@counter@a", "@other@x"]
        named = await store.query_instances(
            InstanceQuery(entities=True, instance_id_prefix="@counter@")
        )
        assert [r.instance_id for r in named.instances] == [ENTITY]
        assert await store.purge_instances(InstanceQuery()) == 0
        assert await store.get_instance(ENTITY) is not None

    asyncio.run(body())


def test_remove_entity_only_when_unchanged_idle_and_empty(store: Store) -> None:
    async def body() -> None:
        await store.send_entity_message(ENTITY, signal(), T0)
        assert not await store.remove_entity(ENTITY, None)  # a message is queued
        await entity_batch(store, "{}")
        assert not await store.remove_entity(ENTITY, '{"state":"1"}')  # not what it holds
        await store.send_entity_message(ENTITY, signal(), T0)
        item = await lock_instance(store, ENTITY)
        assert not await store.remove_entity(ENTITY, "{}")  # leased, and a message queued
        await commit(store, item, T0, RuntimeStatus.RUNNING, [], entity_state="{}")
        assert await store.remove_entity(ENTITY, "{}")
        assert await store.get_instance(ENTITY) is None
        await start_running(store, "orch")
        assert not await store.remove_entity("orch", None)

    asyncio.run(body())


def test_an_entity_checkpoint_starts_orchestrations_unless_their_id_is_busy(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("busy"), T0)
        await store.send_entity_message(ENTITY, signal(), T0)
        starts = [new_instance("fresh", input='"x"'), new_instance("busy", execution_id="e9")]
        await entity_batch(store, "{}", new_instances=starts)
        fresh = await store.get_instance("fresh")
        assert fresh is not None and fresh.input == '"x"'
        busy = await store.get_instance("busy")
        assert busy is not None and busy.execution_id == "e1"
        assert isinstance(starts[0], NewInstance)

    asyncio.run(body())


def test_a_continue_as_new_checkpoint_still_delivers_its_messages(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "orch")
        await store.send_message("orch", signal(), at(1))
        item = await lock_instance(store, "orch", at(1))
        await commit(
            store,
            item,
            at(1),
            RuntimeStatus.CONTINUED_AS_NEW,
            events=[],
            restart=new_instance("orch", execution_id="e2").started,
            messages=[OutgoingMessage(ENTITY, signal("release"))],
        )
        leased = await lock_instance(store, ENTITY, at(1))
        assert [m.event for m in leased.messages] == [signal("release")]

    asyncio.run(body())
