"""PostgreSQL: removing an empty entity (``clean_entity_storage``) never loses a message that is
on its way to it, whichever transaction gets to the entity's row first.

Each test holds a sending transaction open at a chosen point (by wrapping a store method) while
the removal runs, and lets it go once the removal waits for the entity's row, or has finished.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import durafn as df
from durafn.client.async_client import AsyncClient
from durafn.core.status import RuntimeStatus
from durafn.store import postgres_sql as q
from durafn.store import postgres_target
from durafn.store.base import Store
from durafn.store.postgres import PostgresStore
from durafn.store.postgres_schema import quote_schema
from durafn.worker.clock import SystemClock
from durafn.worker.worker import Worker

from .conftest import Backend, drop_postgres_schema, postgres_url

COUNTER = df.EntityId("counter", "k")

app = df.App()


@app.entity
def counter(ctx: df.EntityContext) -> None:
    if ctx.operation_name == "add":
        ctx.set_state(ctx.get_state(lambda: 0) + ctx.get_input())
        ctx.set_result(ctx.get_state())
    elif ctx.operation_name == "delete":
        ctx.delete_state()


@app.orchestrator
def add_one(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield ctx.call_entity(COUNTER, "add", 1))


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Backend]:
    backend = Backend("postgres", postgres_url(tmp_path))
    try:
        yield backend
    finally:
        for store in backend.opened:
            asyncio.run(store.close())
        drop_postgres_schema(backend.url)


def _postgres(store: Store) -> PostgresStore:
    assert isinstance(store, PostgresStore)
    return store


def _count(url: str, table: str) -> int:
    target = postgres_target(url)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        row = conn.execute(f"SELECT count(*) FROM {quote_schema(target.schema)}.{table}").fetchone()
    assert row is not None
    return int(row[0])


async def _waiting_on_a_lock(url: str) -> bool:
    """Whether a statement on this test's schema waits for a row lock."""
    target = postgres_target(url)
    pattern = f"%{quote_schema(target.schema)}%"
    async with await psycopg.AsyncConnection.connect(target.conninfo, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            (pattern,),
        )
        row = await cursor.fetchone()
    return row is not None and row[0] > 0


class Pause:
    """Holds a transaction open inside a wrapped store method until :meth:`release`."""

    def __init__(self) -> None:
        # The store runs its transactions on threads of its own: thread events, not asyncio's.
        self._reached = threading.Event()
        self._released = threading.Event()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    def hold(self) -> None:
        """On the store's connection thread, inside the transaction."""
        self._reached.set()
        self._released.wait(60)

    async def is_reached(self) -> bool:
        return self._reached.is_set()

    def release(self) -> None:
        self._released.set()


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _clean_while_held(url: str, client: AsyncClient, pause: Pause) -> int:
    """Run ``clean_entity_storage`` while ``pause`` holds a sender's transaction; let the
    sender go once the removal waits for it (or has finished without waiting)."""
    clean = asyncio.create_task(client.clean_entity_storage())

    async def waiting_or_done() -> bool:
        return clean.done() or await _waiting_on_a_lock(url)

    await _until(waiting_or_done)
    pause.release()
    return (await clean).empty_entities_removed


async def _empty_entity(store: Store) -> None:
    """An entity row with no state, no lock and nothing queued: one a cleanup may remove."""
    client = AsyncClient(store, app=app, clock=SystemClock())
    await client.signal_entity(COUNTER, "add", 5)
    await client.signal_entity(COUNTER, "delete")
    await Worker(app, store, clock=SystemClock()).run_until_idle()
    assert not (await client.read_entity_state(COUNTER)).entity_exists


def test_a_signal_queued_while_the_entity_is_removed_is_not_lost(pg: Backend) -> None:
    """The signal's transaction has queued its message, uncommitted, when the removal runs."""
    cleaner_store, sender_store = pg.open(), _postgres(pg.open())
    pause = Pause()
    enqueue = sender_store._enqueue

    def held_enqueue(s: Any, instance_id: str, messages: Any) -> None:
        enqueue(s, instance_id, messages)
        pause.hold()

    async def scenario() -> None:
        await _empty_entity(cleaner_store)
        cleaner = AsyncClient(cleaner_store, app=app, clock=SystemClock())
        sender = AsyncClient(sender_store, app=app, clock=SystemClock())
        sender_store._enqueue = held_enqueue  # type: ignore[method-assign]
        signal = asyncio.create_task(sender.signal_entity(COUNTER, "add", 1))
        await _until(pause.is_reached)
        assert await _clean_while_held(pg.url, cleaner, pause) == 0
        await signal  # accepted: it must apply
        await Worker(app, cleaner_store, clock=SystemClock()).run_until_idle()
        state = await cleaner.read_entity_state(COUNTER)
        assert state.entity_exists and state.entity_state == 1, "the signal was lost"
        assert _count(pg.url, "inbox") == 0

    asyncio.run(scenario())


def test_a_call_delivered_while_the_entity_is_removed_is_not_dropped(pg: Backend) -> None:
    """The removal runs between a checkpoint's creation of the entity row and its delivery."""
    cleaner_store, worker_store = pg.open(), _postgres(pg.open())
    pause = Pause()
    create_entities = worker_store._create_entities

    def held_create(s: Any, instance_ids: list[str], now: Any) -> None:
        create_entities(s, instance_ids, now)
        if COUNTER.instance_id in instance_ids and not pause.released:
            pause.hold()

    async def scenario() -> None:
        await _empty_entity(cleaner_store)
        client = AsyncClient(cleaner_store, app=app, clock=SystemClock())
        worker_store._create_entities = held_create  # type: ignore[method-assign]
        instance_id = await client.start_new("add_one")
        run = asyncio.create_task(Worker(app, worker_store, clock=SystemClock()).run_until_idle())
        await _until(pause.is_reached)
        assert await _clean_while_held(pg.url, client, pause) == 0
        await run
        await Worker(app, worker_store, clock=SystemClock()).run_until_idle()
        status = await client.get_status(instance_id)
        assert status.runtime_status is RuntimeStatus.COMPLETED, "the call was dropped"
        assert status.output == 1

    asyncio.run(scenario())


def test_a_removal_between_a_senders_insert_and_its_lock_recreates_the_entity(
    pg: Backend,
) -> None:
    """The sender's insert finds the row; a removal deletes it and commits before the sender
    locks it: the sender creates the row anew instead of queuing a message for no entity."""
    cleaner_store, sender_store = pg.open(), _postgres(pg.open())
    cleaner = AsyncClient(cleaner_store, app=app, clock=SystemClock())
    create_entities = sender_store._create_entities
    inserted = sender_store._sql(q.CREATE_ENTITIES)
    removed: list[int] = []

    def removing_after_insert(s: Any, instance_ids: list[str], now: Any) -> None:
        # On the sender's connection thread, inside its transaction.
        execute = s.execute

        def execute_then_remove(query: str, params: Any = None) -> int:
            count: int = execute(query, params)
            if query == inserted and not removed:
                assert count == 0, "the row existed: nothing inserted, nothing locked"
                cleaned = asyncio.run(cleaner.clean_entity_storage())
                removed.append(cleaned.empty_entities_removed)
            return count

        s.execute = execute_then_remove
        create_entities(s, instance_ids, now)

    async def scenario() -> None:
        await _empty_entity(cleaner_store)
        sender_store._create_entities = removing_after_insert  # type: ignore[method-assign]
        await AsyncClient(sender_store, app=app, clock=SystemClock()).signal_entity(
            COUNTER, "add", 2
        )
        assert removed == [1]
        await Worker(app, cleaner_store, clock=SystemClock()).run_until_idle()
        state = await cleaner.read_entity_state(COUNTER)
        assert state.entity_exists and state.entity_state == 2, "the signal was lost"
        assert _count(pg.url, "inbox") == 0

    asyncio.run(scenario())
