"""The connection of a SQLite store: one private thread, group commit, change signals.

All calls run on one thread that owns the connection, so the event loop never blocks on the
disk. Writes queued while that thread commits share the next transaction (group commit); a
commit through any store object of this process on the same file wakes waiters at once, and a
poll of ``PRAGMA data_version`` notices other processes' commits. Writers that meet another
take turns with it (:mod:`durafn.store.sqlite_turns`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from durafn.core.errors import StoreError
from durafn.core.threads import Threads
from durafn.store.handoff import Waiter, settle_all
from durafn.store.signals import signal_for
from durafn.store.sqlite_schema import migrate
from durafn.store.sqlite_turns import WriteTurns

T = TypeVar("T")
log = logging.getLogger("durafn.store")


@dataclass
class _PendingWrite:
    """A write transaction waiting for its commit, and how its caller hears of it: the future
    of a caller on an event loop, or (``loop`` None) an outcome a blocked thread waits for."""

    fn: Callable[[sqlite3.Connection], Any]
    durable: bool
    wakes: bool
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[Any] | None
    on_commit: Callable[[], None] | None = None
    waiter: Waiter | None = None
    # Called with ``fn``'s value once it has run and only the commit is left (``write_blocking``).
    before_commit: Callable[[Any], None] | None = None

    def settle(self, ok: bool, value: Any) -> None:
        _settle_all([(self, ok, value)])


def _settle_all(outcomes: list[tuple[_PendingWrite, bool, Any]]) -> None:
    """Tell the callers of a batch how their writes went (one wake-up per event loop)."""
    on_loops = []
    for pending, ok, value in outcomes:
        if pending.waiter is not None:
            pending.waiter.settle(ok, value)
        else:
            assert pending.loop is not None and pending.future is not None
            on_loops.append((pending.loop, pending.future, ok, value))
    if on_loops:
        settle_all(on_loops)


def _before_commit(batch: list[_PendingWrite], outcomes: list[tuple[bool, Any]]) -> None:
    """Call the ``before_commit`` hooks of the writes of a batch that ran."""
    for pending, (ok, value) in zip(batch, outcomes, strict=True):
        if ok and pending.before_commit is not None:
            try:
                pending.before_commit(value)
            except Exception:
                log.exception("a hook before a commit failed")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused for a lock another connection holds (SQLITE_BUSY, _LOCKED)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class SqliteDatabase:
    """One SQLite file, its connection and its writer thread. ``synchronous="full"`` makes
    every durable commit wait for the disk."""

    def __init__(self, path: str, *, synchronous: str = "full", busy_timeout: float = 60.0) -> None:
        self.path = path
        self._synchronous = synchronous.upper()
        if self._synchronous not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise StoreError(f"unknown SQLite synchronous mode {synchronous!r}")
        self._busy_timeout = busy_timeout
        self._thread = Threads(1, "durafn-sqlite")
        self._pending: list[_PendingWrite] = []
        self._pending_lock = threading.Lock()
        self._flush_scheduled = False
        # Held by whichever thread uses the write connection: the writer thread, or a thread
        # that commits its own write (``write_blocking``) and the writes queued with it.
        self._conn_lock = threading.Lock()
        # Lease-only writes need no fsync; never more than the configured level, though.
        self._relaxed_synchronous = "OFF" if self._synchronous == "OFF" else "NORMAL"
        self._current_synchronous = self._synchronous
        self._data_version: int | None = None
        # Transactions committed, and writes they carried: the group commit's effect, observable.
        self.commits = 0
        self.writes = 0
        self._conn: sqlite3.Connection | None = None
        self._readers = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        # Commits through any store object of this process on this file wake waiters at once.
        self._signal = signal_for(
            f"sqlite:{os.path.realpath(self.path)}" if self.path != ":memory:" else str(id(self))
        )
        self._closed = False
        # Set on the writer thread once the connection has closed: a flush queued after that
        # (a write that raced the close from another thread) fails rather than reopen it.
        self._shut = False
        self._turns = WriteTurns(self.path, busy_timeout) if self.path != ":memory:" else None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # Connections opening a new file at once meet while one of them turns it to WAL
            # and creates the schema: SQLite may then refuse one at once ("database is
            # locked") rather than have it wait, to break a deadlock. It tries again.
            deadline = time.monotonic() + self._busy_timeout
            delay = 0.001
            while True:
                try:
                    conn = self._open()
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() + delay > deadline:
                        raise
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
            self._data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            self._conn = conn
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=OFF")
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("the store is closed")

        def call() -> T:
            try:
                with self._conn_lock:
                    return fn(self._connect())
            except (sqlite3.Error, OSError) as exc:
                raise StoreError(f"SQLite error on {self.path}: {exc}") from exc

        return await self._thread.run(call)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a small read (a row, a count) at once on the caller's thread.

        In WAL mode a reader never waits for the writer and reads what has committed, so a
        short query costs less than the hop to the writer thread and back. Each thread reads
        through a connection of its own; large reads (histories, pages) use :meth:`run`.
        """
        if self._closed:
            raise StoreError("the store is closed")
        if self._conn is None or self.path == ":memory:":
            return await self.run(fn)  # the first call makes the schema; memory: one connection
        try:
            return fn(self._reader())
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"SQLite error on {self.path}: {exc}") from exc

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self._busy_timeout
            )
            conn.execute("PRAGMA query_only=ON")
            self._readers.conn = conn
            with self._pending_lock:
                self._reader_connections.append(conn)
        return conn

    async def write(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        durable: bool = True,
        wakes: bool | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> T:
        """Run ``fn`` in a write transaction, sharing its commit with other pending writes.

        Writes queue while the writer thread commits; the next flush runs all of them in one
        transaction, each under a savepoint (one that raises rolls back alone), and commits
        once: one fsync for many episodes and activity results (group commit). ``durable=False``
        marks a write whose loss in a power cut costs a re-run at most: lease state (claims,
        renewals, releases) and activity results. A batch of those alone commits without an
        fsync; the WAL is written in order, so the next durable commit (the episode that
        applies an activity's result, say) makes them durable with it. ``wakes``
        (by default ``durable``) says whether the write may make work available, and so
        whether it wakes idle workers: a claim or a renewal never does, a release does.
        ``on_commit`` is called on the writer thread as soon as the write has committed,
        before its caller hears of it.
        """
        if self._closed:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        wakes = durable if wakes is None else wakes
        future: asyncio.Future[T] = loop.create_future()
        pending = _PendingWrite(fn, durable, wakes, loop, future, on_commit)
        with self._pending_lock:
            self._pending.append(pending)
            start_flush = not self._flush_scheduled
            self._flush_scheduled = True
        if start_flush:
            try:
                self._thread.submit(self._flush)
            except RuntimeError as exc:  # the store closed meanwhile, from another thread
                self._fail_pending(StoreError(f"the store is closed ({exc})"))
        return await future

    def write_blocking(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        durable: bool = True,
        wakes: bool | None = None,
        before_commit: Callable[[T], None] | None = None,
    ) -> T:
        """:meth:`write` for a thread that is not an event loop's (an activity thread going on
        with its instance's next step): it waits for the commit, and leads it itself when no
        commit is under way, with the writes queued meanwhile, rather than hand it to the
        writer thread and wait for that thread to wake. Under way, the commit in progress or
        the one after it takes this write along (group commit as for :meth:`write`).

        ``before_commit`` is called with ``fn``'s value once ``fn`` has run and only the
        commit (its fsync) is left, on whichever thread leads it: what the caller starts
        from it overlaps the wait for the disk. It is not called if ``fn`` raises; the commit
        may still fail after it (this call then raises)."""
        if self._closed:
            raise StoreError("the store is closed")
        wakes = durable if wakes is None else wakes
        waiter = Waiter()
        pending = _PendingWrite(
            fn, durable, wakes, None, None, waiter=waiter, before_commit=before_commit
        )
        with self._pending_lock:
            self._pending.append(pending)
            lead = not self._flush_scheduled
            self._flush_scheduled = True
        if lead:
            self._flush()
        result: T = waiter.wait()
        return result

    def _flush(self) -> None:
        """On the writer thread, or on a thread leading its own write: commit every pending
        write in one transaction."""
        with self._conn_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._pending_lock:
            batch, self._pending = self._pending, []
            self._flush_scheduled = False
        if not batch:
            return
        if self._shut:
            _settle_all([(p, False, StoreError("the store is closed")) for p in batch])
            return
        outcomes: list[tuple[bool, Any]] = []
        turns = self._turns
        turn = False
        try:
            conn = self._connect()
            durable = any(p.durable for p in batch)
            level = self._synchronous if durable else self._relaxed_synchronous
            if level != self._current_synchronous:
                conn.execute(f"PRAGMA synchronous={level}")
                self._current_synchronous = level
            changes = conn.total_changes
            if turns is not None and turns.taking:
                turn = turns.acquire()
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            waited = time.perf_counter() - started >= WriteTurns.WAITED
            # Waited, and another connection has committed (since this one last looked): most
            # likely it waited for that writer, not for the scheduler.
            if turns is not None and waited and self._poll_data_version(conn):
                turns.take()
            try:
                if len(batch) == 1:
                    # Alone in its transaction, a write needs no savepoint: if it raises, the
                    # whole transaction rolls back.
                    try:
                        outcomes.append((True, batch[0].fn(conn)))
                    except Exception as exc:
                        conn.execute("ROLLBACK")
                        batch[0].settle(False, self._store_error(exc))
                        return
                else:
                    for pending in batch:
                        outcomes.append(self._apply(conn, pending))
                _before_commit(batch, outcomes)
                conn.execute("COMMIT")
                self.commits += 1
                self.writes += len(batch)
            except BaseException:
                # Also after a failed COMMIT: SQLite asks callers to roll back explicitly.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if conn.total_changes != changes and any(p.wakes for p in batch):
                self._signal.changed()
        except BaseException as exc:
            error = self._store_error(exc)
            _settle_all([(pending, False, error) for pending in batch])
            return
        finally:
            if turn and turns is not None:
                turns.release()
        for pending, (ok, _) in zip(batch, outcomes, strict=True):
            if ok and pending.on_commit is not None:
                try:
                    pending.on_commit()
                except Exception:
                    log.exception("a commit hook failed")
        _settle_all([(p, ok, value) for p, (ok, value) in zip(batch, outcomes, strict=True)])

    def _fail_pending(self, error: StoreError) -> None:
        with self._pending_lock:
            stranded, self._pending = self._pending, []
            self._flush_scheduled = False
        _settle_all([(p, False, error) for p in stranded])

    def _apply(self, conn: sqlite3.Connection, pending: _PendingWrite) -> tuple[bool, Any]:
        # A savepoint per write: one that raises (a lost lease, a duplicate id) rolls back its
        # own statements only, and the rest of the batch commits.
        conn.execute("SAVEPOINT write")
        try:
            value = pending.fn(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
            return False, self._store_error(exc)
        conn.execute("RELEASE write")
        return True, value

    def _store_error(self, exc: BaseException) -> BaseException:
        if isinstance(exc, sqlite3.Error | OSError):
            error = StoreError(f"SQLite error on {self.path}: {exc}")
            error.__cause__ = exc
            return error
        return exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut_down() -> None:
            # On the writer thread, after every flush already queued: writes accepted before
            # the close commit on the connection they were meant for, then it closes.
            with self._conn_lock:
                self._flush_locked()
                conn, self._conn = self._conn, None
                self._shut = True
                if conn is not None:
                    conn.close()
            with self._pending_lock:
                readers, self._reader_connections = self._reader_connections, []
            for reader in readers:
                reader.close()
            if self._turns is not None:
                self._turns.close()

        await self._thread.run(shut_down)
        self._thread.shutdown(wait=True)

    # ------------------------------------------------------------------ change notification

    def token(self) -> int:
        return self._signal.version

    async def wait_for_change(self, token: object, timeout: float) -> None:
        # A commit in this process sets the signal at once. Other processes cannot tell us:
        # PRAGMA data_version changes when another connection commits and costs no disk I/O,
        # so a short poll of it, backing off to 50 ms, notices them (and sets the signal).
        deadline = time.monotonic() + max(0.0, timeout)
        interval = 0.002
        with self._signal.subscription() as changed:
            while self._signal.version == token:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(interval, remaining)):
                        await changed.wait()
                    return
                await self.run(self._poll_data_version)
                interval = min(interval * 2, 0.05)

    def _poll_data_version(self, conn: sqlite3.Connection) -> bool:
        """Whether another connection has committed since the last look (waiters are told)."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return False
        self._data_version = version
        self._signal.changed()
        return True
