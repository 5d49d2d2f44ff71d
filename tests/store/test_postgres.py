"""PostgreSQL specifics: NOTIFY wake-ups, schema creation under load, lost connections, URLs."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from durafn.core.errors import InstanceAlreadyExists, StoreError
from durafn.core.history import EventRaised, dump_event
from durafn.core.status import RuntimeStatus
from durafn.store import open_store, postgres_target
from durafn.store.base import OutgoingMessage, Store
from durafn.store.postgres import PostgresStore
from durafn.store.postgres_changes import NOTIFY_PAYLOAD, channel_name
from durafn.store.postgres_connections import Database, Session
from durafn.store.postgres_schema import (
    SCHEMA_VERSION,
    current_version,
    migrate,
    quote_schema,
    upgrade,
)

from .conftest import Backend, drop_postgres_schema, postgres_url, require_postgres
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
)

# Generous bounds: they only tell "woke up on the notification" from "slept the timeout".
PROMPT = 1.0


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[Backend]:
    """A fresh PostgreSQL schema on the test database; its stores are closed, then it is dropped.

    Its connections carry an ``application_name`` of their own, so a test can terminate them
    without disturbing anything else using the database.
    """
    url = f"{postgres_url(tmp_path)}&application_name=durafn_test_{uuid.uuid4().hex[:12]}"
    backend = Backend("postgres", url)
    try:
        yield backend
    finally:
        for store in backend.opened:
            asyncio.run(store.close())
        drop_postgres_schema(backend.url)


def _sql(url: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement in the test schema's database, on a connection of its own."""
    target = postgres_target(url)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        cursor = conn.execute(statement.replace("{s}", quote_schema(target.schema)), params)
        return cursor.fetchall() if cursor.description else []


def _kill_connections(url: str) -> int:
    """Terminate the connections of the stores opened on ``url``, as an outage would."""
    name = postgres_target(url).conninfo.rpartition("application_name=")[2]
    rows = _sql(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND application_name = %s",
        (name,),
    )
    return len(rows)


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _postgres(store: Store) -> PostgresStore:
    assert isinstance(store, PostgresStore)
    return store


# ------------------------------------------------------------------ change notification


def test_notify_wakes_a_waiter_on_another_store_object_promptly(pg: Backend) -> None:
    async def body() -> None:
        waiter, writer = _postgres(pg.open()), pg.open()
        await writer.get_instance("warm-up")  # the schema exists and the pool is open
        token = await waiter.change_token()
        assert waiter.listening

        async def write_later() -> float:
            await asyncio.sleep(0.2)
            began = time.monotonic()
            await writer.create_instance(new_instance("a"), T0)
            return time.monotonic() - began

        writing = asyncio.create_task(write_later())
        began = time.monotonic()
        await waiter.wait_for_change(token, 30)
        waited = time.monotonic() - began
        write_took = await writing
        assert 0.2 <= waited < 0.2 + write_took + PROMPT
        assert await waiter.change_token() != token

    asyncio.run(body())


def test_a_notification_from_another_process_wakes_a_waiter(pg: Backend) -> None:
    """Store objects of one process see each other's commits directly; others only NOTIFY."""

    async def body() -> None:
        waiter = _postgres(pg.open())
        await waiter.get_instance("warm-up")
        token = await waiter.change_token()
        assert waiter.listening
        target = postgres_target(pg.url)
        channel = channel_name(target.schema, target.task_hub)

        async def notify_later() -> None:
            await asyncio.sleep(0.2)
            conn = await psycopg.AsyncConnection.connect(target.conninfo, autocommit=True)
            async with conn:
                await conn.execute("SELECT pg_notify(%s, '')", (channel,))

        notifying = asyncio.create_task(notify_later())
        began = time.monotonic()
        await waiter.wait_for_change(token, 30)
        await notifying
        assert 0.2 <= time.monotonic() - began < 0.2 + PROMPT + 1.0
        assert await waiter.change_token() != token

    asyncio.run(body())


def test_the_echo_of_this_process_own_commits_wakes_nobody_twice(pg: Backend) -> None:
    async def body() -> None:
        store = _postgres(pg.open())
        await store.get_instance("warm-up")
        await store.change_token()
        assert store.listening
        target = postgres_target(pg.url)
        channel = channel_name(target.schema, target.task_hub)
        conn = await psycopg.AsyncConnection.connect(target.conninfo, autocommit=True)
        async with conn:
            token = await store.change_token()
            # A notification signed by this process: its commits woke everyone already.
            await conn.execute("SELECT pg_notify(%s, %s)", (channel, NOTIFY_PAYLOAD))
            await store.wait_for_change(token, 0.5)
            assert await store.change_token() == token
            await conn.execute("SELECT pg_notify(%s, 'another process')", (channel,))
            await store.wait_for_change(token, 30)
            assert await store.change_token() != token

    asyncio.run(body())


def test_an_idle_waiter_sleeps_its_whole_timeout_without_polling(pg: Backend) -> None:
    async def body() -> None:
        store = _postgres(pg.open())
        await start_running(store, "a")
        token = await store.change_token()
        began = time.monotonic()
        await store.wait_for_change(token, 0.6)
        assert time.monotonic() - began >= 0.55
        assert await store.change_token() == token

    asyncio.run(body())


def test_the_listener_recovers_after_being_terminated(pg: Backend) -> None:
    async def body() -> None:
        waiter, writer = _postgres(pg.open()), pg.open()
        await writer.get_instance("warm-up")
        before = await waiter.change_token()
        assert waiter.listening
        assert _kill_connections(pg.url) >= 2
        # Losing the connection and getting it back both change the token (and wake waiters).
        await _eventually(lambda: _listening_again(waiter, before))
        token = await waiter.change_token()
        wake = asyncio.create_task(waiter.wait_for_change(token, 30))
        await asyncio.sleep(0.1)
        began = time.monotonic()
        await writer.create_instance(new_instance("after-recovery"), T0)
        await asyncio.wait_for(wake, PROMPT + (time.monotonic() - began))
        assert await waiter.get_instance("after-recovery") is not None

    async def _listening_again(store: PostgresStore, before: object) -> bool:
        return store.listening and await store.change_token() != before

    asyncio.run(body())


def test_without_a_server_waiters_fall_back_to_short_sleeps() -> None:
    async def body() -> None:
        store = open_store("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
        try:
            token = await store.change_token()
            assert not _postgres(store).listening
            began = time.monotonic()
            await store.wait_for_change(token, 30)
            assert time.monotonic() - began < 5
            with pytest.raises(StoreError, match="PostgreSQL"):
                await store.get_instance("a")
        finally:
            await store.close()

    asyncio.run(body())


# ------------------------------------------------------------------ lost connections


def test_a_killed_connection_is_replaced(pg: Backend) -> None:
    async def body() -> None:
        store = pg.open()
        await store.create_instance(new_instance("a"), T0)
        await store.change_token()
        _kill_connections(pg.url)
        with contextlib.suppress(StoreError):
            await store.get_instance("a")  # may fail once; the next operation must work
        record = await store.get_instance("a")
        assert record is not None and record.status is RuntimeStatus.PENDING
        await store.send_message("a", raised(), T0)
        item = await lock_instance(store, "a")
        assert len(item.messages) == 2

    asyncio.run(body())


def test_writes_after_repeated_outages_are_neither_lost_nor_doubled(pg: Backend) -> None:
    async def body() -> None:
        store = pg.open()
        await store.create_instance(new_instance("a"), T0)
        await store.change_token()
        sent, unsure = [], []
        for i in range(5):
            _kill_connections(pg.url)
            try:
                await store.send_message("a", raised(f"e{i}"), T0)
                sent.append(f"e{i}")
            except StoreError:
                unsure.append(f"e{i}")  # may or may not have committed
        item = await lock_instance(store, "a")
        names = [m.event.name for m in item.messages if isinstance(m.event, EventRaised)]
        assert len(names) == len(set(names))
        assert set(sent) <= set(names) <= set(sent + unsure)
        assert names == sorted(names)

    asyncio.run(body())


# ------------------------------------------------------------------ schema


def _schema_rows(url: str) -> list[tuple[Any, ...]]:
    return _sql(url, "SELECT id, version FROM {s}.durafn_schema_version")


def _tables(url: str) -> list[str]:
    rows = _sql(
        url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "ORDER BY table_name",
        (postgres_target(url).schema,),
    )
    return [r[0] for r in rows]


def test_twenty_stores_opening_at_once_create_one_schema(pg: Backend) -> None:
    async def body() -> None:
        stores = [pg.open() for _ in range(20)]
        await asyncio.gather(*(s.get_instance("x") for s in stores))

    asyncio.run(body())
    assert _schema_rows(pg.url) == [(1, SCHEMA_VERSION)]
    tables = ["activity_tasks", "durafn_schema_version", "history", "inbox", "instances"]
    assert _tables(pg.url) == tables


def test_ten_processes_opening_at_once_create_one_schema(pg: Backend) -> None:
    program = (
        "import asyncio, sys\n"
        "from durafn.store import open_store\n"
        "async def main():\n"
        "    store = open_store(sys.argv[1])\n"
        "    await store.get_instance('x')\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", program, pg.url], stderr=subprocess.PIPE, text=True)
        for _ in range(10)
    ]
    for process in processes:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    assert _schema_rows(pg.url) == [(1, SCHEMA_VERSION)]


def test_the_operator_api_reads_and_upgrades_the_schema(pg: Backend) -> None:
    target = postgres_target(pg.url)

    async def body() -> None:
        assert await current_version(target.conninfo, target.schema) == 0
        assert await upgrade(target.conninfo, target.schema) == (0, SCHEMA_VERSION)
        assert await upgrade(target.conninfo, target.schema) == (SCHEMA_VERSION, SCHEMA_VERSION)
        assert await current_version(target.conninfo, target.schema) == SCHEMA_VERSION
        store = pg.open()
        await store.create_instance(new_instance("a"), T0)
        with pytest.raises(StoreError, match="PostgreSQL"):
            await current_version("postgresql://postgres@127.0.0.1:1/test", target.schema)

    asyncio.run(body())


def test_a_newer_schema_is_refused_with_a_clear_error(pg: Backend) -> None:
    target = postgres_target(pg.url)
    asyncio.run(upgrade(target.conninfo, target.schema))
    _sql(pg.url, "UPDATE {s}.durafn_schema_version SET version = %s", (SCHEMA_VERSION + 1,))

    async def body() -> None:
        store = pg.open()
        with pytest.raises(StoreError, match="newer than this durafn"):
            await store.get_instance("x")
        with pytest.raises(StoreError, match="newer than this durafn"):
            await upgrade(target.conninfo, target.schema)

    asyncio.run(body())


def _catalog(url: str) -> list[tuple[Any, ...]]:
    """The tables, columns, indexes and functions of the URL's schema, without its name."""
    schema = postgres_target(url).schema
    columns = _sql(
        url,
        "SELECT table_name, column_name, data_type, is_nullable, column_default, "
        "collation_name FROM information_schema.columns WHERE table_schema = %s "
        "ORDER BY table_name, column_name",
        (schema,),
    )
    indexes = _sql(
        url,
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY indexname",
        (schema,),
    )
    functions = _sql(
        url,
        "SELECT p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), "
        "p.prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s ORDER BY p.proname",
        (schema,),
    )
    rows = columns + indexes + functions
    return [tuple(str(v).replace(schema, "<schema>") for v in row) for row in rows]


def test_migrations_applied_one_by_one_equal_a_fresh_schema(pg: Backend, tmp_path: Path) -> None:
    stepwise = postgres_url(tmp_path)
    target = postgres_target(stepwise)

    async def body() -> None:
        await pg.open().get_instance("x")  # a fresh schema, made by the store on first use
        with psycopg.Connection.connect(target.conninfo, autocommit=True) as conn:
            for version in range(1, SCHEMA_VERSION + 1):
                assert migrate(conn, target.schema, version) == (version - 1, version)
            assert migrate(conn, target.schema) == (SCHEMA_VERSION, SCHEMA_VERSION)

    try:
        asyncio.run(body())
        assert _catalog(pg.url) == _catalog(stepwise)
        assert len(_catalog(stepwise)) > 40
    finally:
        drop_postgres_schema(stepwise)


# ------------------------------------------------------------------ the scale signal


def test_the_scale_functions_read_what_the_store_reads(pg: Backend) -> None:
    store = pg.open()
    # Real times: without an explicit time the SQL functions read the server's clock.
    now = datetime.now(UTC) - timedelta(seconds=1)

    async def body() -> None:
        for i in range(9):
            await store.create_instance(new_instance(f"i{i}"), now)
        item = await lock_instance(store, "i0", now)
        await commit(store, item, now, activities=[activity(n) for n in range(20)])
        later = new_instance("later", start_at=now + timedelta(hours=1))
        await store.create_instance(later, now)

    asyncio.run(body())
    backlog = asyncio.run(store.backlog(now))
    assert (backlog.orchestrations, backlog.activities, backlog.scheduled) == (8, 20, 1)
    micros = int(now.timestamp() * 1_000_000)
    assert _sql(pg.url, "SELECT * FROM {s}.backlog('default', %s)", (micros,)) == [(8, 20, 1)]
    assert _sql(pg.url, "SELECT * FROM {s}.backlog('default')") == [(8, 20, 1)]
    assert backlog.recommended_workers() == 2
    assert _sql(pg.url, "SELECT {s}.recommended_workers()") == [(2,)]
    assert _sql(pg.url, "SELECT {s}.recommended_workers('default', 1, 1)") == [(20,)]
    assert _sql(pg.url, "SELECT {s}.recommended_workers('default', 8, 4)") == [(5,)]
    assert _sql(pg.url, "SELECT {s}.recommended_workers('blue')") == [(0,)]


def test_the_scale_out_page_queries_run_as_written(pg: Backend) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "scale-out.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", page, flags=re.S)
    statements = [line for block in blocks for line in block.splitlines() if line.strip()]
    assert len(statements) == 2
    keda_query = re.search(r'query: "(.*)"', page)
    assert keda_query is not None and keda_query[1] + ";" in statements
    asyncio.run(pg.open().get_instance("x"))  # creates the schema
    for statement in statements:
        # The page uses the default schema name; the test runs in a schema of its own.
        assert len(_sql(pg.url, statement.replace("durafn.", "{s}."))) == 1


# ------------------------------------------------------------------ concurrency


def test_concurrent_claims_never_lease_one_instance_twice(pg: Backend) -> None:
    async def body() -> None:
        stores = [pg.open() for _ in range(6)]
        for i in range(30):
            await stores[0].create_instance(new_instance(f"i{i}"), T0)
        claims = await asyncio.gather(
            *(stores[k % 6].lock_next_orchestration(f"w{k}", LEASE, T0) for k in range(60))
        )
        claimed = [c.instance_id for c in claims if c is not None]
        assert sorted(claimed) == sorted(f"i{i}" for i in range(30))

    asyncio.run(body())


def test_concurrent_activity_claims_are_disjoint(pg: Backend) -> None:
    async def body() -> None:
        stores = [pg.open() for _ in range(5)]
        await stores[0].create_instance(new_instance("a"), T0)
        item = await lock_instance(stores[0], "a")
        await commit(stores[0], item, T0, activities=[activity(i) for i in range(50)])
        batches = await asyncio.gather(
            *(stores[k % 5].lock_next_activities(f"w{k}", LEASE, T0, 7) for k in range(10))
        )
        ids = [task.event_id for batch in batches for task in batch]
        assert sorted(ids) == list(range(50))

    asyncio.run(body())


def test_racing_creations_of_one_id_raise_already_exists(pg: Backend) -> None:
    async def body() -> None:
        stores = [pg.open() for _ in range(5)]
        await asyncio.gather(*(s.get_instance("warm-up") for s in stores))
        results = await asyncio.gather(
            *(
                stores[k % 5].create_instance(new_instance("same", execution_id=f"e{k}"), T0)
                for k in range(10)
            ),
            return_exceptions=True,
        )
        failures = [r for r in results if r is not None]
        assert len(failures) == 9
        assert all(isinstance(f, InstanceAlreadyExists) for f in failures)

    asyncio.run(body())


def test_instances_messaging_each_other_at_once_do_not_deadlock(pg: Backend) -> None:
    async def body() -> None:
        one, two = pg.open(), pg.open()
        await start_running(one, "ping")
        await start_running(one, "pong")
        for round_ in range(10):
            now = at(round_ + 1)
            await one.send_message("ping", raised(), now)
            await one.send_message("pong", raised(), now)
            ping = await lock_instance(one, "ping", now)
            pong = await lock_instance(two, "pong", now)
            await asyncio.gather(
                commit(one, ping, now, messages=[_to("pong")]),
                commit(two, pong, now, messages=[_to("ping")]),
            )
            for store, instance_id in ((one, "ping"), (two, "pong")):
                item = await lock_instance(store, instance_id, now)
                await commit(store, item, now)

    asyncio.run(body())


def _to(instance_id: str) -> OutgoingMessage:
    return OutgoingMessage(instance_id, raised("hello"))


def test_a_message_left_in_a_finished_inbox_is_swept_by_the_next_claim(pg: Backend) -> None:
    async def body() -> None:
        store = pg.open()
        await create_finished(store, "done")
        # What a delivery racing with the finish leaves behind.
        for event in (raised("late"), raised("later")):
            _sql(
                pg.url,
                "INSERT INTO {s}.inbox (task_hub, instance_id, visible_at, event) "
                "VALUES ('default', 'done', 0, %s)",
                (dump_event(event),),
            )
        await store.create_instance(new_instance("next"), T0)
        item = await store.lock_next_orchestration("w1", LEASE, T0)
        assert item is not None and item.instance_id == "next"
        assert await store.dropped_events("done") == 2
        assert _sql(pg.url, "SELECT count(*) FROM {s}.inbox WHERE instance_id = 'done'") == [(0,)]

    asyncio.run(body())


def test_driver_errors_become_store_errors(pg: Backend) -> None:
    async def body() -> None:
        store = pg.open()
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        with pytest.raises(StoreError, match="already scheduled"):
            await commit(store, item, T0, activities=[activity(0), activity(0)])
        assert await store.get_history("a") == []
        assert await store.lock_next_activities("w1", LEASE, T0, 10) == []

    asyncio.run(body())


# ------------------------------------------------------------------ URLs


def test_store_urls_carry_durafn_options_and_pass_the_rest_to_libpq() -> None:
    target = postgres_target(
        "postgres://bob:secret@db.example:6543/app?sslmode=disable&schema=jobs"
        "&task_hub=blue&pool_max=3&connect_timeout=4"
    )
    assert (target.schema, target.task_hub, target.pool_max) == ("jobs", "blue", 3)
    assert target.conninfo == (
        "postgres://bob:secret@db.example:6543/app?sslmode=disable&connect_timeout=4"
    )
    store = open_store("postgresql://u@h/db?task_hub=green&schema=s2")
    assert isinstance(store, PostgresStore)
    assert (store.task_hub, store.schema) == ("green", "s2")
    default = postgres_target("postgresql://u@h/db")
    assert (default.schema, default.task_hub, default.pool_max) == ("durafn", "default", 4)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://u:pw@h/db?nonsense=1", "nonsense"),
        ("postgresql://u@h/db?pool_max=0", "pool_max"),
        ("postgresql://u@h/db?pool_max=many", "pool_max"),
        ("postgresql://u@h/db?schema=" + "x" * 64, "schema"),
    ],
)
def test_bad_store_urls_raise_store_error(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as error:
        open_store(url)
    assert "pw" not in str(error.value)


def test_opening_a_store_does_no_io() -> None:
    store = open_store("postgresql://postgres@127.0.0.1:1/nowhere")
    asyncio.run(store.close())
    asyncio.run(store.close())


def test_a_schema_name_that_needs_quoting_works(tmp_path: Path) -> None:
    base = require_postgres()
    schema = f'durafn_test_{uuid.uuid4().hex[:8]} Odd "Name"'
    url = f"{base}{'&' if '?' in base else '?'}schema={quote(schema)}"

    async def body() -> None:
        store = open_store(url)
        try:
            await start_running(store, "a")
            assert len(await store.get_history("a")) == 3
        finally:
            await store.close()

    try:
        asyncio.run(body())
        assert _schema_rows(url) == [(1, SCHEMA_VERSION)]
    finally:
        drop_postgres_schema(url)


def test_an_instance_with_nothing_left_to_apply_is_not_leased(pg: Backend) -> None:
    async def body() -> None:
        store = pg.open()
        await start_running(store, "a", execution_id="e1")
        # A result of an execution that is not current (it can never apply) ...
        stale = OutgoingMessage("a", raised("stale"), execution_id="e0")
        _sql(
            pg.url,
            "INSERT INTO {s}.inbox (task_hub, instance_id, execution_id, visible_at, event) "
            "VALUES ('default', 'a', 'e0', 0, %s)",
            (dump_event(stale.event),),
        )
        await store.create_instance(new_instance("b"), T0)
        # ... is dropped by the claim, which moves on to an instance with work.
        item = await store.lock_next_orchestration("w1", LEASE, T0)
        assert item is not None and item.instance_id == "b"
        assert await store.lock_next_orchestration("w1", LEASE, T0) is None
        assert _sql(pg.url, "SELECT count(*) FROM {s}.inbox WHERE instance_id = 'a'") == [(0,)]
        record = await store.get_instance("a")
        assert record is not None and record.status is RuntimeStatus.RUNNING

    asyncio.run(body())


def test_a_serializable_server_default_changes_nothing(pg: Backend) -> None:
    url = f"{pg.url}&options={quote('-c default_transaction_isolation=serializable')}"

    async def body() -> None:
        stores = [open_store(url) for _ in range(8)]
        try:
            await asyncio.gather(*(s.get_instance("x") for s in stores))
            await start_running(stores[0], "a")
            claims = await asyncio.gather(
                *(s.lock_next_orchestration("w", LEASE, T0) for s in stores)
            )
            assert [c for c in claims if c is not None] == []
            await stores[1].send_message("a", raised(), at(1))
            item = await lock_instance(stores[2], "a", at(1))
            await commit(stores[3], item, at(1), RuntimeStatus.COMPLETED)
        finally:
            for store in stores:
                await store.close()

    asyncio.run(body())
    assert _schema_rows(pg.url) == [(1, SCHEMA_VERSION)]


def test_a_young_task_hub_finds_instances_by_key(pg: Backend) -> None:
    """Without statistics, PostgreSQL may look an instance up through an index that merely
    starts with the task hub (reading every instance of the hub); the store gives a fresh
    hub's tables their first statistics once it has run a few hundred operations."""

    async def body() -> None:
        store = pg.open()
        for i in range(300):
            await store.create_instance(new_instance(f"i{i}"), T0)

    asyncio.run(body())
    target = postgres_target(pg.url)
    [(reltuples,)] = _sql(
        pg.url,
        "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'instances'",
        (target.schema,),
    )
    assert reltuples >= 0, "the instances table was never analyzed"
    plan = _sql(
        pg.url,
        "EXPLAIN UPDATE {s}.instances SET updated_at = 0 "
        "WHERE task_hub = 'default' AND instance_id = 'i7' AND locked_by = 'w'",
    )
    assert "instances_pkey" in " ".join(row[0] for row in plan)


def test_a_store_opens_its_connections_on_demand_up_to_pool_max(pg: Backend) -> None:
    """Calls beyond ``pool_max`` wait for a connection; none fails, and no more are opened."""
    name = pg.url.rpartition("application_name=")[2]

    def connections() -> int:
        rows = _sql(
            pg.url,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        return int(rows[0][0])

    async def body() -> None:
        store = open_store(f"{pg.url}&pool_max=2")
        pg.opened.append(store)
        await store.create_instance(new_instance("a"), T0)
        assert connections() == 1  # one at a time, as calls wait for one
        records = await asyncio.gather(*(store.get_instance("a") for _ in range(50)))
        assert all(r is not None for r in records)
        assert connections() <= 2

    asyncio.run(body())


# ------------------------------------------------------------------ connection threads


def _database(pg: Backend, max_size: int = 4) -> Database:
    target = postgres_target(pg.url)
    return Database(target.conninfo, target.schema, "durafn_test_unused", max_size=max_size)


def test_close_runs_what_was_submitted_and_leaves_no_thread(pg: Backend) -> None:
    async def body() -> None:
        db = _database(pg)

        def slow(s: Session) -> str:
            s.execute("SELECT pg_sleep(0.05)")
            return threading.current_thread().name

        calls = [asyncio.ensure_future(db.write(slow)) for _ in range(12)]
        await asyncio.sleep(0)  # all submitted
        await db.close()
        assert all(call.done() for call in calls), "close returned before its operations ran"
        assert len(await asyncio.gather(*calls)) == 12
        assert not [t for t in db._threads if t.is_alive()]
        with pytest.raises(StoreError, match="closed"):
            await db.write(slow)

    asyncio.run(body())


def test_a_thread_waiting_for_its_write_runs_it_itself_while_no_other_does(pg: Backend) -> None:
    """``write_blocking`` runs on its caller's thread, on a connection kept for that; a second
    caller meanwhile goes to a connection thread. A connection that breaks under it is
    replaced (the transaction runs again); once closed, the store refuses such writes."""

    def where(s: Session) -> str:
        s.execute("SELECT 1")
        return threading.current_thread().name

    async def body() -> None:
        db = _database(pg)
        try:
            caller, ran_on = await asyncio.to_thread(
                lambda: (threading.current_thread().name, db.write_blocking(where))
            )
            assert ran_on == caller
            started, release = threading.Event(), threading.Event()

            def hold(s: Session) -> str:
                started.set()
                release.wait(10)
                return where(s)

            first = asyncio.ensure_future(asyncio.to_thread(db.write_blocking, hold))
            assert await asyncio.to_thread(started.wait, 10)
            second = await asyncio.to_thread(db.write_blocking, where)
            release.set()
            assert second.startswith("durafn-postgres-")
            assert not (await first).startswith("durafn-postgres-")
            runs: list[int] = []

            def break_once(s: Session) -> int:
                runs.append(1)
                if len(runs) == 1:
                    s.execute("SELECT pg_terminate_backend(pg_backend_pid())")
                row = s.fetchone("SELECT pg_backend_pid()")
                assert row is not None
                return int(row[0])

            pid = await asyncio.to_thread(db.write_blocking, break_once)
            assert len(runs) == 2
            assert db._lead is not None and db._lead.info.backend_pid == pid
        finally:
            await db.close()
        assert db._lead is None
        with pytest.raises(StoreError, match="closed"):
            db.write_blocking(where)

    asyncio.run(body())


@pytest.mark.parametrize("transaction", [True, False], ids=["transaction", "autocommit"])
def test_a_write_whose_connection_breaks_runs_again_only_if_nothing_committed(
    pg: Backend, transaction: bool
) -> None:
    """In a transaction, the insert rolled back with the connection: it runs again, once. In
    autocommit it committed as it ran: it is not run again, and the caller hears of the fault."""
    table = f"t_{uuid.uuid4().hex[:8]}"

    async def body() -> None:
        db = _database(pg)
        await db.read(lambda s: None)  # the first connection creates the schema
        _sql(pg.url, f"CREATE TABLE {{s}}.{table} (n int)")
        runs = []

        def insert_then_break(s: Session) -> None:
            runs.append(1)
            s.execute(f"INSERT INTO {quote_schema(db.schema)}.{table} VALUES (1)")
            if len(runs) == 1:
                s.execute("SELECT pg_terminate_backend(pg_backend_pid())")

        try:
            if transaction:
                await db.write(insert_then_break)
                assert len(runs) == 2
            else:
                with pytest.raises(StoreError):
                    await db.write(insert_then_break, transaction=False)
                assert len(runs) == 1
        finally:
            await db.close()

    asyncio.run(body())
    assert _sql(pg.url, f"SELECT count(*) FROM {{s}}.{table}") == [(1,)]


def test_the_relaxed_mode_commits_without_waiting_for_the_wal_flush(pg: Backend) -> None:
    """The durability modes (docs/concepts.md, "Durability"): by default a checkpoint waits for
    its WAL flush and lease state does not; libpq's ``options`` relax every commit."""

    def setting(session: Session) -> str:
        row = session.fetchone("SHOW synchronous_commit")
        assert row is not None
        return str(row[0])

    async def settings(url: str) -> tuple[str, str]:
        store = _postgres(open_store(url))
        try:
            return await store._db.write(setting), await store._db.write(setting, durable=False)
        finally:
            await store.close()

    [(server_default,)] = _sql(pg.url, "SHOW synchronous_commit")
    assert asyncio.run(settings(pg.url)) == (server_default, "off")
    relaxed = f"{pg.url}&options={quote('-c synchronous_commit=off')}"
    assert asyncio.run(settings(relaxed)) == ("off", "off")
