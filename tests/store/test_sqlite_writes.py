"""The SQLite store's writer: concurrent writes share a commit, and one that fails fails alone."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from durafn.core.errors import InstanceAlreadyExists, LeaseLost, StoreError
from durafn.store import open_store
from durafn.store.sqlite import SqliteStore
from durafn.store.sqlite_connection import SqliteDatabase, _PendingWrite

from .factories import LEASE, T0, new_instance, raised


def test_concurrent_writes_share_commits_and_a_failing_one_rolls_back_alone(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        await store.create_instance(new_instance("taken"), T0)
        before = store.commits
        creations = [store.create_instance(new_instance(f"i{n}"), T0) for n in range(40)]
        duplicates = [store.create_instance(new_instance("taken"), T0) for _ in range(5)]
        messages = [store.send_message("taken", raised(f"e{n}"), T0) for n in range(20)]
        outcomes = await asyncio.gather(*creations, *duplicates, *messages, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(errors) == 5
        assert all(isinstance(e, InstanceAlreadyExists) for e in errors)
        assert outcomes[40:45] == errors
        # Every successful write is there, in full.
        for n in range(40):
            assert await store.get_instance(f"i{n}") is not None
        item = await store.lock_next_orchestration("w1", LEASE, T0)
        while item is not None and item.instance_id != "taken":
            item = await store.lock_next_orchestration("w1", LEASE, T0)
        assert item is not None
        assert len(item.messages) == 21  # its start and the 20 events
        assert store.commits - before < 65, "concurrent writes did not share commits"
        await store.close()

    asyncio.run(body())


def test_a_lease_error_inside_a_shared_commit_undoes_only_its_own_write(tmp_path: Path) -> None:
    async def body() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        await store.create_instance(new_instance("a"), T0)
        item = await store.lock_next_orchestration("w1", LEASE, T0)
        assert item is not None
        item.lock_token = "not-the-owner"
        renewal = store.renew_orchestration_lease(item, LEASE, T0)
        other = store.create_instance(new_instance("b"), T0)
        outcome = await asyncio.gather(renewal, other, return_exceptions=True)
        assert isinstance(outcome[0], LeaseLost)
        assert outcome[1] is None
        assert await store.get_instance("b") is not None
        await store.close()

    asyncio.run(body())


def test_writes_queued_when_the_store_closes_commit_before_it_closes(tmp_path: Path) -> None:
    async def body() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        await store.create_instance(new_instance("first"), T0)
        pending = [
            asyncio.create_task(store.create_instance(new_instance(f"i{n}"), T0)) for n in range(50)
        ]
        await asyncio.sleep(0)  # every write is queued
        await store.close()
        assert await asyncio.gather(*pending) == [None] * 50
        again = SqliteStore(tmp_path / "hub.db")
        for n in range(50):
            assert await again.get_instance(f"i{n}") is not None
        await again.close()

    asyncio.run(body())


def test_synchronous_full_for_durable_commits_and_normal_for_the_rest(tmp_path: Path) -> None:
    """The durability modes (docs/concepts.md, "Durability"): with FULL, a commit that carries a
    durable write syncs the WAL (even shared with lease-only writes) and one of lease-only
    writes does not; with NORMAL, no commit syncs."""

    def level(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    async def levels(url: str) -> tuple[int, int, int, int]:
        store = open_store(url)
        assert isinstance(store, SqliteStore)

        def busy(conn: sqlite3.Connection) -> int:
            time.sleep(0.05)  # the writer is busy: the writes after it queue and share a commit
            return level(conn)

        def level_and_commit(conn: sqlite3.Connection) -> tuple[int, int]:
            return level(conn), store.commits  # the same count for writes sharing a commit

        try:
            durable = await store._db.write(level)
            relaxed = await store._db.write(level, durable=False)
            _, (shared_relaxed, first), (shared_durable, second) = await asyncio.gather(
                store._db.write(busy, durable=False),
                store._db.write(level_and_commit, durable=False),
                store._db.write(level_and_commit),
            )
            assert first == second, "the last two writes did not share a commit"
            return durable, relaxed, shared_relaxed, shared_durable
        finally:
            await store.close()

    full, normal = 2, 1
    assert asyncio.run(levels(f"sqlite:///{tmp_path}/full.db")) == (full, normal, full, full)
    relaxed_url = f"sqlite:///{tmp_path}/relaxed.db?synchronous=normal"
    assert asyncio.run(levels(relaxed_url)) == (normal,) * 4


# ---------------------------------------------------------------------- turns between processes


def _hold_write_lock(path: Path, seconds: float, held: threading.Event) -> None:
    """Another writer (as another process would be): holds SQLite's write lock a while."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE IF NOT EXISTS another_writer (n INTEGER)")
    conn.execute("INSERT INTO another_writer VALUES (1)")
    held.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


async def _write_while_another_writes(store: SqliteStore, path: Path) -> None:
    """Create instance "waited" while another writer holds SQLite's lock and commits: the
    store's write waits for it (SQLite's busy handler sleeps)."""
    held = threading.Event()
    other = threading.Thread(target=_hold_write_lock, args=(path, 0.2, held))
    other.start()
    assert await asyncio.to_thread(held.wait, 10)
    await store.create_instance(new_instance("waited"), T0)
    other.join()


def test_a_writer_alone_on_its_file_takes_no_turns(tmp_path: Path) -> None:
    async def body() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        await asyncio.gather(*(store.create_instance(new_instance(f"i{n}"), T0) for n in range(50)))
        for n in range(20):
            await store.send_message("i0", raised(f"e{n}"), T0)
        await store.close()

    asyncio.run(body())
    assert not (tmp_path / "hub.db-turns").exists()


def test_a_writer_that_waited_for_another_takes_turns_with_it(tmp_path: Path) -> None:
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "hub.db"

    async def body() -> None:
        store = SqliteStore(path)
        await store.create_instance(new_instance("first"), T0)  # the file and its schema
        # The store waited for another writer: from then on it takes turns.
        await _write_while_another_writes(store, path)
        assert not (tmp_path / "hub.db-turns").exists()
        await store.create_instance(new_instance("turn"), T0)
        # Its turns are an exclusive flock on <database>-turns: while another writer holds it,
        # the store's next write waits, and it goes through once the lock is let go.
        turn = os.open(f"{path}-turns", os.O_RDWR)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
            write = asyncio.ensure_future(store.create_instance(new_instance("queued"), T0))
            await asyncio.sleep(0.3)
            assert not write.done()
            fcntl.flock(turn, fcntl.LOCK_UN)
            await asyncio.wait_for(write, 10)
        finally:
            os.close(turn)
        for instance_id in ("first", "waited", "turn", "queued"):
            assert await store.get_instance(instance_id) is not None
        await store.close()

    asyncio.run(body())


def test_writers_that_cannot_open_the_turn_file_rely_on_sqlite_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "hub.db"
    (tmp_path / "hub.db-turns").mkdir()  # not a file that can be opened for writing

    async def body() -> None:
        store = SqliteStore(path)
        await store.create_instance(new_instance("first"), T0)
        await _write_while_another_writes(store, path)
        await store.create_instance(new_instance("after"), T0)
        for instance_id in ("first", "waited", "after"):
            assert await store.get_instance(instance_id) is not None
        await store.close()

    asyncio.run(body())
    assert "take no turns" in caplog.text


def test_a_writer_kept_from_its_turn_past_the_busy_timeout_writes_without_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fcntl = pytest.importorskip("fcntl")
    path = tmp_path / "hub.db"

    async def body() -> None:
        store = SqliteStore(path, busy_timeout=0.5)
        await store.create_instance(new_instance("first"), T0)
        await _write_while_another_writes(store, path)
        await store.create_instance(new_instance("turn"), T0)
        # A process holding the turn is stopped: the write goes ahead under SQLite's lock.
        turn = os.open(f"{path}-turns", os.O_RDWR)
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
            await asyncio.wait_for(store.create_instance(new_instance("late"), T0), 30)
        finally:
            os.close(turn)
        assert await store.get_instance("late") is not None
        await store.close()

    asyncio.run(body())
    assert "writing without" in caplog.text


def test_a_write_that_races_the_close_fails_and_never_reopens_the_file(tmp_path: Path) -> None:
    """A write from another thread may pass the closed check just before the store closes:
    it fails with a StoreError, whether its flush finds the writer thread gone or comes after
    the connection closed, and the connection stays closed."""

    async def body() -> None:
        db = SqliteDatabase(str(tmp_path / "hub.db"))
        await db.write(lambda conn: conn.execute("CREATE TABLE t (x)"))
        await db.close()
        db._closed = False  # as seen by a write that checked just before the close
        with pytest.raises(StoreError, match="the store is closed"):
            await db.write(lambda conn: conn.execute("INSERT INTO t VALUES (1)"))
        assert not db._pending
        # A flush that was queued behind the close runs after the connection closed.
        loop = asyncio.get_running_loop()
        late = loop.create_future()
        db._pending.append(_late_write(loop, late))
        db._flush()
        with pytest.raises(StoreError, match="the store is closed"):
            await late
        assert db._conn is None

    asyncio.run(body())
    rows = sqlite3.connect(tmp_path / "hub.db").execute("SELECT COUNT(*) FROM t").fetchone()
    assert rows == (0,)


def _late_write(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> _PendingWrite:
    return _PendingWrite(
        lambda conn: conn.execute("INSERT INTO t VALUES (2)"), True, True, loop, future
    )


# ---------------------------------------------------------------------- writes from a thread


def _count_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])


def _insert(value: int) -> Callable[[sqlite3.Connection], int]:
    def fn(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
        return value

    return fn


def test_a_blocking_write_commits_on_the_calling_thread(tmp_path: Path) -> None:
    async def body() -> None:
        db = SqliteDatabase(str(tmp_path / "hub.db"))
        await db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)"))
        before = db.commits
        threads: list[str] = []

        def fn(conn: sqlite3.Connection) -> int:
            threads.append(threading.current_thread().name)
            return _insert(7)(conn)

        assert await asyncio.to_thread(db.write_blocking, fn) == 7
        # No commit was under way: the calling thread led it, not the writer thread.
        assert threads and not threads[0].startswith("durafn-sqlite")
        assert db.commits == before + 1
        assert _count_rows(tmp_path / "hub.db") == 1
        await db.close()

    asyncio.run(body())


async def _commit_under_way(db: SqliteDatabase) -> tuple[asyncio.Future[int], threading.Event]:
    """Make table ``t``, then start a write (of 0) that holds its commit until the event is
    set; once it runs: its future, and the event."""
    await db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)"))
    inside, release = threading.Event(), threading.Event()

    def slow(conn: sqlite3.Connection) -> int:
        inside.set()
        assert release.wait(10)
        return _insert(0)(conn)

    first = asyncio.ensure_future(db.write(slow))
    assert await asyncio.to_thread(inside.wait, 10)
    return first, release


def test_a_blocking_write_joins_the_commit_after_one_under_way(tmp_path: Path) -> None:
    """While the writer thread commits, a thread's write queues with the loop's writes; the
    next commit takes them all, on whichever thread leads it, and each caller hears of it."""

    async def body() -> None:
        db = SqliteDatabase(str(tmp_path / "hub.db"))
        first, release = await _commit_under_way(db)
        before = db.commits
        blocked = asyncio.ensure_future(asyncio.to_thread(db.write_blocking, _insert(1)))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(db.write(_insert(n))) for n in range(2, 6)]
        await asyncio.sleep(0.05)
        assert not blocked.done()
        release.set()
        assert await first == 0
        assert await blocked == 1
        assert await asyncio.gather(*queued) == [2, 3, 4, 5]
        # The slow write's commit, then one for the thread's write and the four queued.
        assert db.commits == before + 2
        assert _count_rows(tmp_path / "hub.db") == 6
        await db.close()

    asyncio.run(body())


def test_a_blocking_write_that_fails_raises_and_commits_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        db = SqliteDatabase(str(tmp_path / "hub.db"))
        await db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)"))

        def half(conn: sqlite3.Connection) -> None:
            _insert(1)(conn)
            raise LeaseLost("gone")

        with pytest.raises(LeaseLost):
            await asyncio.to_thread(db.write_blocking, half)
        with pytest.raises(StoreError, match="no such table"):
            await asyncio.to_thread(
                db.write_blocking, lambda conn: conn.execute("INSERT INTO missing VALUES (1)")
            )
        assert _count_rows(tmp_path / "hub.db") == 0
        await db.close()
        with pytest.raises(StoreError, match="closed"):
            db.write_blocking(_insert(2))

    asyncio.run(body())


def test_a_blocking_writes_hook_runs_once_its_statements_have_and_before_its_commit(
    tmp_path: Path,
) -> None:
    """``before_commit`` gets the write's value while only its commit is left: another
    connection does not see the row yet, and the write has not returned. A write that raises
    never calls it; a commit that fails after it raises as any failed commit."""

    async def body() -> None:
        path = tmp_path / "hub.db"
        db = SqliteDatabase(str(path))
        await db.write(lambda conn: conn.execute("CREATE TABLE t (v INTEGER)"))
        seen: list[tuple[int, int]] = []

        def hook(value: int) -> None:
            seen.append((value, _count_rows(path)))

        assert await asyncio.to_thread(db.write_blocking, _insert(3), before_commit=hook) == 3
        assert seen == [(3, 0)]
        assert _count_rows(path) == 1

        def half(conn: sqlite3.Connection) -> int:
            _insert(4)(conn)
            raise LeaseLost("gone")

        with pytest.raises(LeaseLost):
            await asyncio.to_thread(db.write_blocking, half, before_commit=hook)
        assert seen == [(3, 0)]

        # The commit fails once the hook has run: the caller hears of it, nothing is kept.
        real = db._connect()

        class FailingCommit:
            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
                if sql == "COMMIT":
                    raise sqlite3.OperationalError("disk I/O error")
                return real.execute(sql, *args)

        db._conn = FailingCommit()  # type: ignore[assignment]
        with pytest.raises(StoreError, match="disk I/O error"):
            await asyncio.to_thread(db.write_blocking, _insert(5), before_commit=hook)
        assert seen == [(3, 0), (5, 1)]
        db._conn = real
        assert _count_rows(path) == 1
        await db.close()

    asyncio.run(body())


def test_a_blocking_writes_hook_runs_on_the_thread_that_leads_its_commit(tmp_path: Path) -> None:
    """Queued behind a commit under way, the write's hook runs in the next commit, led by the
    writer thread or by the blocked thread, once the write's statements have run; a hook
    that raises is logged and the commit stands."""

    async def body() -> None:
        db = SqliteDatabase(str(tmp_path / "hub.db"))
        calls: list[int] = []

        def hook(value: int) -> None:
            calls.append(value)
            raise RuntimeError("a bug in a hook")

        first, release = await _commit_under_way(db)
        blocked = asyncio.ensure_future(
            asyncio.to_thread(db.write_blocking, _insert(1), before_commit=hook)
        )
        queued = asyncio.ensure_future(db.write(_insert(2)))
        await asyncio.sleep(0.05)
        assert calls == []
        release.set()
        assert await first == 0
        assert await blocked == 1
        assert await queued == 2
        assert calls == [1]
        assert _count_rows(tmp_path / "hub.db") == 3
        await db.close()

    asyncio.run(body())
