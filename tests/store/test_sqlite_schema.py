"""The SQLite schema: versioned, applied once, safe to apply from several processes at once."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from durafn.core.errors import StoreError
from durafn.core.history import (
    ExecutionStarted,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    TaskCompleted,
    TaskScheduled,
    dump_event,
)
from durafn.core.status import RuntimeStatus
from durafn.store import open_store
from durafn.store.base import ActivityWorkItem, Checkpoint, from_micros
from durafn.store.sqlite_connection import SqliteDatabase
from durafn.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION, migrate

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def schema_of(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
    ).fetchall()
    return [(name, sql) for name, sql in rows]


def test_a_new_file_gets_the_current_schema_version(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    asyncio.run(store.get_instance("x"))
    asyncio.run(store.close())
    conn = sqlite3.connect(tmp_path / "hub.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_migrations_applied_one_by_one_equal_a_fresh_schema(tmp_path: Path) -> None:
    fresh = sqlite3.connect(tmp_path / "fresh.db", isolation_level=None)
    migrate(fresh)
    stepwise = sqlite3.connect(tmp_path / "stepwise.db", isolation_level=None)
    for version, script in enumerate(MIGRATIONS, start=1):
        stepwise.executescript(script)
        stepwise.execute(f"PRAGMA user_version={version}")
    migrate(stepwise)  # a no-op once everything is applied
    assert schema_of(fresh) == schema_of(stepwise)
    fresh.close()
    stepwise.close()


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "hub.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    store = open_store(f"sqlite:///{tmp_path}/hub.db")
    with pytest.raises(StoreError, match="newer than this durafn"):
        asyncio.run(store.get_instance("x"))
    asyncio.run(store.close())


def test_several_processes_may_create_the_schema_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    script = (
        "import asyncio, sys\n"
        "from durafn.store import open_store\n"
        "async def main():\n"
        "    store = open_store(sys.argv[1])\n"
        "    await store.get_instance('x')\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    store = open_store(url)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert asyncio.run(store.next_visible_at(now)) is None
    asyncio.run(store.close())


def test_connections_opening_a_new_file_at_the_same_moment_all_open(tmp_path: Path) -> None:
    """SQLite may refuse at once one of the connections that meet while the file turns to WAL
    and gets its schema (to break a deadlock, without waiting); the store tries again. Nine
    writers start together on each of 60 new files."""
    failures: list[BaseException] = []
    for trial in range(60):
        path = str(tmp_path / f"hub{trial}.db")
        databases = [SqliteDatabase(path, busy_timeout=10) for _ in range(9)]
        start = threading.Barrier(len(databases))

        def open_one(db: SqliteDatabase, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                db._connect()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_one, args=(db,)) for db in databases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for db in databases:
            asyncio.run(db.close())
    assert failures == []


def test_activity_tasks_keep_their_state_and_leases_across_migration_4(tmp_path: Path) -> None:
    """Version 4 keys activity tasks by their step, and a leased task's ``visible_at`` becomes
    its lease's expiry: each task of a version-3 file is claimable exactly when it was."""
    path = tmp_path / "hub.db"
    old = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:3]:
        old.executescript(script)
    old.execute("PRAGMA user_version=3")
    t0 = 1_000_000_000
    insert = (
        "INSERT INTO activity_tasks (task_hub, instance_id, execution_id, event_id, name, "
        "input, visible_at, locked_by, lock_expires_at, attempts) VALUES (?,?,?,?,?,?,?,?,?,?)"
    )
    old.executemany(
        insert,
        [
            ("default", "due", "e1", 0, "act", '"due"', t0, None, None, 0),
            ("default", "later", "e1", 1, "act", None, t0 + 50, None, None, 2),
            ("default", "leased", "e1", 2, "act", None, t0, "w9/abc", t0 + 30, 1),
            ("default", "expired", "e1", 3, "act", None, t0, "w9/def", t0 - 5, 1),
            ("default", "held", "e1", 4, "act", None, t0, "w1/ins", t0 + 40, 1),
            ("default", "retry", "e1", 5, "act", None, t0 + 60, None, None, 1),
            ("other", "due", "e1", 0, "act", None, t0, None, None, 0),
        ],
    )
    seqs = dict(old.execute("SELECT instance_id, seq FROM activity_tasks WHERE task_hub='default'"))
    old.close()

    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    rows = conn.execute(
        "SELECT instance_id, event_id, input, visible_at, locked_by, attempts, task_id "
        "FROM activity_tasks WHERE task_hub='default' ORDER BY visible_at, instance_id"
    ).fetchall()
    assert rows == [
        ("due", 0, '"due"', t0, None, 0, seqs["due"]),
        ("expired", 3, None, t0, "w9/def", 1, seqs["expired"]),
        ("leased", 2, None, t0 + 30, "w9/abc", 1, seqs["leased"]),
        ("held", 4, None, t0 + 40, "w1/ins", 1, seqs["held"]),
        ("later", 1, None, t0 + 50, None, 2, seqs["later"]),
        ("retry", 5, None, t0 + 60, None, 1, seqs["retry"]),
    ]
    assert conn.execute("SELECT COUNT(*) FROM activity_tasks").fetchone()[0] == 7
    indexes = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='activity_tasks'"
    ).fetchall()
    assert indexes == [("activity_tasks_by_visible",)]
    conn.close()

    # A lease taken before the upgrade is still its holder's: renewed, then completed.
    store = open_store(f"sqlite:///{path}")
    leased = ActivityWorkItem(
        task_id=seqs["leased"],
        instance_id="leased",
        execution_id="e1",
        event_id=2,
        name="act",
        input=None,
        lock_token="w9/abc",
        locked_until=from_micros(t0 + 30),
        attempts=1,
    )
    completed = TaskCompleted(timestamp=from_micros(t0), task_scheduled_id=2, result=None)

    async def finish_lease() -> tuple[bool, bool]:
        await store.renew_activity_lease(leased, timedelta(seconds=30), from_micros(t0 + 10))
        try:
            stale = replace(leased, task_id=seqs["leased"] + 100)
            return (
                await store.complete_activity(stale, completed, from_micros(t0 + 20)),
                await store.complete_activity(leased, completed, from_micros(t0 + 20)),
            )
        finally:
            await store.close()

    assert asyncio.run(finish_lease()) == (False, True)


def test_a_history_stored_an_event_a_row_reads_on_with_rows_of_whole_checkpoints(
    tmp_path: Path,
) -> None:
    """Before version 5 each history row held one event; since, a row holds what one
    checkpoint appended. A file upgraded with an instance running reads its history whole,
    in order, and the next checkpoint adds one row for its events."""
    path = tmp_path / "hub.db"
    old = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:4]:
        old.executescript(script)
    old.execute("PRAGMA user_version=4")
    first = [
        OrchestratorStarted(timestamp=T0),
        ExecutionStarted(timestamp=T0, name="wf", execution_id="e1", input=None),
        TaskScheduled(timestamp=T0, event_id=0, name="act", input=None),
        OrchestratorCompleted(timestamp=T0),
    ]
    old.execute(
        "INSERT INTO instances (task_hub, instance_id, execution_id, name, status, created_at, "
        "updated_at, history_length) VALUES ('default', 'a', 'e1', 'wf', 'Running', 0, 0, 4)"
    )
    old.executemany(
        "INSERT INTO history VALUES ('default', 'a', 'e1', ?, ?)",
        [(sequence, dump_event(event)) for sequence, event in enumerate(first)],
    )
    old.execute(
        "INSERT INTO inbox (task_hub, instance_id, execution_id, visible_at, event) "
        "VALUES ('default', 'a', 'e1', 0, ?)",
        (dump_event(TaskCompleted(timestamp=T0, task_scheduled_id=0, result="1")),),
    )
    old.close()

    store = open_store(f"sqlite:///{path}")

    async def next_step() -> list[HistoryEvent]:
        try:
            item = await store.lock_next_orchestration("w1", timedelta(seconds=30), T0)
            assert item is not None and item.history_length == 4
            assert await store.get_history("a") == first
            step = [
                OrchestratorStarted(timestamp=T0),
                item.messages[0].event,
                TaskScheduled(timestamp=T0, event_id=1, name="act", input=None),
                OrchestratorCompleted(timestamp=T0),
            ]
            cp = Checkpoint(
                new_events=step,
                consumed=[m.seq for m in item.messages],
                status=RuntimeStatus.RUNNING,
            )
            await store.checkpoint(item, cp, T0)
            history = await store.get_history("a")
            assert history == first + step
            return history
        finally:
            await store.close()

    asyncio.run(next_step())
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    rows = conn.execute("SELECT sequence FROM history ORDER BY sequence").fetchall()
    assert rows == [(0,), (1,), (2,), (3,), (4,)]  # the new step's four events: one row
    assert conn.execute("SELECT history_length FROM instances").fetchone() == (8,)
    conn.close()
