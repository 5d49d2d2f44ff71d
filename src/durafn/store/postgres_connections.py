"""The connections of a PostgreSQL store: a thread per connection, transactions, errors.

Each connection belongs to a thread of its own that takes operations from one queue, runs them
with psycopg's blocking API and hands the outcome back to the caller's event loop; the store
never blocks an event loop, and a store object serves any number of loops (the host's, the
blocking client's portal, a test's ``asyncio.run``). Blocking psycopg waits on its socket in C
with the GIL released: an operation costs one hop to its thread and one back, where psycopg's
asyncio API adds a reader registration and a wake-up of a loop per round trip. Connections
open on demand, up to the store's ``max_size``, and stay open. A thread that waits for its
write (an activity's thread committing its instance's next step) runs it itself, on one more
connection kept for that, while no other thread does. The LISTEN connection of the
change feed (:mod:`durafn.store.postgres_changes`) runs apart, on a small event loop thread.

Every psycopg error becomes a ``StoreError`` here (the operations map the few that mean
something, like a unique violation, before that). A transaction that fails because its
connection broke, or because PostgreSQL chose it as a deadlock victim, is retried once on a
healthy connection: nothing of it was committed. A failure of the COMMIT itself is not retried,
nor a write of one statement in autocommit whose connection broke (it may have committed).
An operation runs to its end once its thread has taken it, even if its caller stopped waiting
(as a write queued for the SQLite writer does); one not yet taken is skipped.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from durafn.core.errors import StoreError
from durafn.core.threads import resolve
from durafn.loops import new_event_loop
from durafn.store.handoff import Waiter
from durafn.store.postgres_changes import NOTIFY_PAYLOAD, ChangeFeed
from durafn.store.postgres_schema import migrate, quote_schema

T = TypeVar("T")
Connection = psycopg.Connection[tuple[Any, ...]]
Cursor = psycopg.Cursor[tuple[Any, ...]]
Row = tuple[Any, ...]
Params = Sequence[Any] | dict[str, Any] | None

log = logging.getLogger("durafn.store.postgres")

# libpq parameters durafn sets unless the connection string does. The keepalives notice a
# server that vanished without closing its connections within about a minute, not hours.
_CONNECTION_DEFAULTS = {
    "connect_timeout": "10",
    "application_name": "durafn",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}


def complete_conninfo(conninfo: str) -> str:
    """``conninfo`` with durafn's defaults added; ``StoreError`` if libpq cannot parse it."""
    try:
        given = conninfo_to_dict(conninfo)
        extra = {k: v for k, v in _CONNECTION_DEFAULTS.items() if k not in given}
        return make_conninfo(conninfo, **extra)
    except psycopg.Error as exc:
        raise StoreError(f"invalid PostgreSQL connection string: {exc}") from exc


class Session:
    """One operation's statements, and what its commit must do besides committing.

    Its statements run on the connection's one cursor, kept from operation to operation: a
    cursor made per statement costs about a quarter of psycopg's time per statement.
    """

    def __init__(self, cursor: Cursor) -> None:
        self._cursor = cursor
        # The operation changed rows: count a change for this store's waiters.
        self.changed = False
        # The operation made work visible: NOTIFY the task hub's channel in the transaction.
        self.notify = False

    def execute(self, query: str, params: Params = None) -> int:
        """Run a statement; the number of rows it touched."""
        return self._cursor.execute(query, params).rowcount

    def fetchone(self, query: str, params: Params = None) -> Row | None:
        return self._cursor.execute(query, params).fetchone()

    def fetchall(self, query: str, params: Params = None) -> list[Row]:
        return self._cursor.execute(query, params).fetchall()


Body = Callable[[Session], T]
# Runs the members of several queued operations in one statement, in autocommit; returns each
# operation's result, in order. If it raises, nothing it did was committed (one statement),
# and each operation runs alone with its own body.
Group = Callable[[Session, list[Any]], list[Any]]

# The most operations one group statement takes.
_GROUP_MAX = 64


class _Operation:
    """An operation waiting for (or running on) a connection thread, and its caller."""

    __slots__ = (
        "body",
        "cancelled",
        "durable",
        "future",
        "group",
        "key",
        "loop",
        "member",
        "on_commit",
        "transaction",
        "waiter",
        "writes",
    )

    def __init__(
        self,
        body: Body[Any],
        transaction: bool,
        durable: bool,
        on_commit: Callable[[], None] | None,
        writes: bool = True,
        group: Group | None = None,
        key: str = "",
        member: Any = None,
        blocking: bool = False,
    ) -> None:
        self.body = body
        # Operations of one group with distinct keys may run together (see ``Group``).
        self.group = group
        self.key = key
        self.member = member
        self.transaction = transaction
        # A write outside a transaction commits as it runs: once its connection broke,
        # whether it took effect is unknown, and it is not run again.
        self.writes = writes
        self.durable = durable
        self.on_commit = on_commit
        # Its caller: an event loop's task awaiting ``future``, or (``blocking``) a thread
        # waiting on ``waiter``.
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: asyncio.Future[Any] | None = None
        self.waiter: Waiter | None = None
        if blocking:
            self.waiter = Waiter()
        else:
            self.loop = asyncio.get_running_loop()
            self.future = self.loop.create_future()
        # The caller stopped waiting: an operation not yet started is skipped.
        self.cancelled = False

    def committed(self) -> None:
        """On the connection thread, once the operation has committed: its commit hook (a hook
        that raises is logged; the commit stands)."""
        if self.on_commit is not None:
            try:
                self.on_commit()
            except Exception:
                log.exception("a commit hook failed")

    def settle(self, ok: bool, value: Any) -> None:
        """On the connection thread: hand the outcome to the caller (its loop, or its thread)."""
        if self.waiter is not None:
            self.waiter.settle(ok, value)
            return
        assert self.loop is not None and self.future is not None
        with contextlib.suppress(RuntimeError):  # the caller's loop has closed
            self.loop.call_soon_threadsafe(resolve, self.future, ok, value)


class Database:
    """The connection threads and the change feed of one store."""

    def __init__(self, conninfo: str, schema: str, channel: str, *, max_size: int) -> None:
        if max_size < 1:
            raise StoreError(f"invalid number of connections max_size={max_size}")
        self.schema = schema
        self._conninfo = complete_conninfo(conninfo)
        self._max_size = max_size
        self.changes = ChangeFeed(self._conninfo, channel)
        self._queue: collections.deque[_Operation] = collections.deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        # A thread is opening its connection: the next one starts once it is done.
        self._growing = False
        self._closed = False
        self._migrated = False
        self._migrating = threading.Lock()
        self._listener: _LoopThread | None = None
        self._cursors = threading.local()
        self._operations = 0
        # Group statements that committed, and the writes they carried: observable, as the
        # SQLite store's group commit is.
        self.group_statements = 0
        self.grouped_writes = 0
        # Group statements that failed, their writes then run one by one.
        self.group_fallbacks = 0
        # The connection of the threads that wait for their writes (``write_blocking``): one
        # of them runs its write itself on it while no other does, rather than hand it to a
        # connection thread and sleep until that thread wakes it (two wake-ups of a thread
        # per write, a chain's every step). One connection beyond ``max_size``, opened on
        # first use; a write that finds it taken goes to the connection threads.
        self._lead: Connection | None = None
        self._lead_lock = threading.Lock()

    # ------------------------------------------------------------------ caller's loop

    async def read(self, body: Body[T]) -> T:
        """Run ``body`` on a connection, statement by statement (autocommit)."""
        result: T = await self._submit(_Operation(body, False, True, None, writes=False))
        return result

    async def write(
        self,
        body: Body[T],
        *,
        transaction: bool = True,
        durable: bool = True,
        on_commit: Callable[[], None] | None = None,
    ) -> T:
        """Run ``body`` in one transaction (or, for one statement, in autocommit).

        ``durable=False`` commits without waiting for the WAL flush (``synchronous_commit`` off
        for this transaction only): for lease state and activity results, whose loss in a
        server crash costs a re-run at most. WAL is written in order, so the next durable
        commit makes them durable too; whatever depends on them commits after them.
        ``on_commit`` is called on the connection's thread as soon as ``body`` has committed,
        before the caller hears of it.
        """
        operation = _Operation(body, transaction or not durable, durable, on_commit)
        result: T = await self._submit(operation)
        return result

    async def write_grouped(
        self,
        body: Body[T],
        group: Group,
        key: str,
        member: Any,
        *,
        on_commit: Callable[[], None] | None = None,
    ) -> T:
        """Like ``write(body, transaction=False, on_commit=on_commit)``, for a write of one
        statement that may share its statement (and its commit) with other writes of ``group``
        queued meanwhile: the connection thread that takes the first runs ``group`` on the
        members of up to ``_GROUP_MAX`` of them, one per ``key``, which costs the server and
        this process much less than a statement each. ``body`` runs this write alone (it must
        do what ``group`` does for ``member``)."""
        operation = _Operation(body, False, True, on_commit, group=group, key=key, member=member)
        result: T = await self._submit(operation)
        return result

    def write_grouped_blocking(self, body: Body[T], group: Group, key: str, member: Any) -> T:
        """:meth:`write_grouped` for a thread that is not an event loop's (an activity thread
        going on with its instance's next step): it waits for the outcome."""
        operation = _Operation(
            body, False, True, None, group=group, key=key, member=member, blocking=True
        )
        result: T = self._submit_blocking(operation)
        return result

    def write_blocking(self, body: Body[T]) -> T:
        """:meth:`write` (one durable transaction) for a thread that waits for the outcome."""
        result: T = self._submit_blocking(_Operation(body, True, True, None, blocking=True))
        return result

    def _submit_blocking(self, operation: _Operation) -> Any:
        assert operation.waiter is not None
        if self._lead_lock.acquire(blocking=False):
            try:
                if self._closed:
                    raise StoreError("the store is closed")
                self._lead = self._run(operation, self._lead)
            finally:
                self._lead_lock.release()
        else:
            self._enqueue(operation)
        return operation.waiter.wait()

    async def _submit(self, operation: _Operation) -> Any:
        self._enqueue(operation)
        assert operation.future is not None
        try:
            return await operation.future
        except asyncio.CancelledError:
            operation.cancelled = True
            raise

    def _enqueue(self, operation: _Operation) -> None:
        with self._cond:
            if self._closed:
                raise StoreError("the store is closed")
            self._queue.append(operation)
            self._maybe_grow()
            self._cond.notify()

    async def change_token(self) -> object:
        if self.changes.ready:
            return self.changes.version
        return await self._on_listener(self.changes.token())

    async def wait_for_change(self, token: object, timeout: float) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        if not self.changes.started:
            await self._on_listener(self._start_listening())
        await self.changes.wait(token, timeout)

    async def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
            listener, self._listener = self._listener, None
            self._cond.notify_all()
        # The threads run what was submitted before the close, then close their connections
        # (no thread starts once closed: the list is whole).
        for thread in threads:
            await asyncio.to_thread(thread.join)
        await asyncio.to_thread(self._close_lead)
        if listener is not None:
            try:
                await asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(self.changes.stop(), listener.loop)
                )
            finally:
                await asyncio.to_thread(listener.stop)
        self.changes.bump()  # wake anyone still waiting

    def _close_lead(self) -> None:
        """Once closed: close the blocking writers' connection, after the write on it."""
        with self._lead_lock:
            lead, self._lead = self._lead, None
        if lead is not None:
            with contextlib.suppress(Exception):
                lead.close()

    # ------------------------------------------------------------------ the change feed

    async def _on_listener(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the change feed's loop thread (started on first use)."""
        with self._cond:
            if self._closed:
                work.close()
                raise StoreError("the store is closed")
            if self._listener is None:
                self._listener = _LoopThread("durafn-postgres-listen")
            future = asyncio.run_coroutine_threadsafe(work, self._listener.loop)
        return await asyncio.wrap_future(future)

    async def _start_listening(self) -> None:
        self.changes.start()

    # ------------------------------------------------------------------ connection threads

    def _maybe_grow(self) -> None:
        """Under ``_cond``: one thread (and connection) more while operations wait for one,
        up to ``max_size``, opened one at a time (as a pool grows): a burst that the open
        connections absorb meanwhile leaves their number as it was."""
        if (
            len(self._queue) > self._idle
            and len(self._threads) < self._max_size
            and not self._growing
            and not self._closed
        ):
            thread = threading.Thread(
                target=self._serve, name=f"durafn-postgres-{len(self._threads)}", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # no thread to be had (the interpreter is shutting down?)
                log.exception("could not start a PostgreSQL connection thread")
                if not self._threads:  # nothing will ever run what waits: fail it
                    error = StoreError("could not start a PostgreSQL connection thread")
                    waiting, self._queue = self._queue, collections.deque()
                    for operation in waiting:
                        operation.settle(False, error)
                return
            self._growing = True
            self._threads.append(thread)

    def _serve(self) -> None:
        conn: Connection | None = None
        try:
            try:
                conn = self._connect()
            except StoreError:
                pass  # the operations it takes try again, and fail with the reason
            finally:
                with self._cond:
                    self._growing = False
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        self._idle += 1
                        self._cond.wait()
                        self._idle -= 1
                    if not self._queue:
                        return  # closed, and everything submitted before has run
                    operation = self._queue.popleft()
                    together = self._group_of(operation)
                    self._maybe_grow()
                    self._operations += 1
                    analyze = self._operations == _ANALYZE_AFTER
                if together:
                    conn = self._run_group([operation, *together], conn)
                    continue
                if operation.cancelled:
                    continue
                conn = self._run(operation, conn)
                if analyze and conn is not None:
                    self._analyze(conn)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _group_of(self, first: _Operation) -> list[_Operation]:
        """Under ``_cond``: take the queued operations that may run with ``first`` (same
        group, another key, still awaited), in queue order."""
        group = first.group
        if group is None or first.cancelled:
            return []
        keys = {first.key}
        together: list[_Operation] = []
        for operation in self._queue:
            if operation.group == group and operation.key not in keys and not operation.cancelled:
                keys.add(operation.key)
                together.append(operation)
                if len(together) == _GROUP_MAX - 1:
                    break
        for operation in together:
            self._queue.remove(operation)
        return together

    def _run_group(
        self, operations: list[_Operation], conn: Connection | None
    ) -> Connection | None:
        """Run ``operations`` (of one group) in one statement and settle them; if that
        statement fails, nothing of it committed, and each runs alone. Returns the
        connection to keep."""
        group = operations[0].group
        assert group is not None
        try:
            if conn is None:
                conn = self._connect()
            session = Session(self._cursor_of(conn))
            results = group(session, [operation.member for operation in operations])
        except psycopg.OperationalError as exc:
            if conn is not None and conn.broken:
                with contextlib.suppress(Exception):
                    conn.close()
                # In autocommit, whether the statement committed before the connection broke
                # is unknown: like a lone write, it is not run again.
                error = _store_error(exc)
                for operation in operations:
                    operation.settle(False, error)
                return None
            results = None
        except psycopg.Error as exc:
            # One statement in autocommit failed: nothing of it committed.
            log.debug("a group statement failed (%s); its writes run one by one", exc)
            results = None
        except Exception as exc:
            for operation in operations:
                operation.settle(False, exc)
            return conn
        if results is None:
            self.group_fallbacks += 1
            for operation in operations:
                if not operation.cancelled:
                    conn = self._run(operation, conn)
            return conn
        self.group_statements += 1
        self.grouped_writes += len(operations)
        if session.changed or session.notify:
            self.changes.bump()
        for operation in operations:
            operation.committed()
        for operation, result in zip(operations, results, strict=True):
            operation.settle(True, result)
        return conn

    def _cursor_of(self, conn: Connection) -> Cursor:
        """The cursor this thread keeps for ``conn``, its connection."""
        kept: tuple[Connection, Cursor] | None = getattr(self._cursors, "kept", None)
        if kept is None or kept[0] is not conn:
            kept = self._cursors.kept = (conn, conn.cursor())
        return kept[1]

    def _connect(self) -> Connection:
        try:
            conn = psycopg.Connection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            if not self._migrated:
                with self._migrating:
                    if not self._migrated:
                        migrate(conn, self.schema)
                        self._migrated = True
            # The claims and fences reason in READ COMMITTED terms (each statement sees what
            # committed before it began; a row lock wait ends on the row's latest version),
            # whatever the server's default isolation is: for the statements run in autocommit
            # (the session default) as for the transactions.
            conn.execute("SET default_transaction_isolation TO 'read committed'")
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise _store_error(exc) from exc
            raise
        return conn

    def _run(self, operation: _Operation, conn: Connection | None) -> Connection | None:
        """Run ``operation`` and settle it; returns the connection to keep (None: broken)."""
        for attempt in (1, 2):
            committing = False
            session: Session | None = None
            try:
                if conn is None:
                    conn = self._connect()
                session = Session(self._cursor_of(conn))
                if not operation.transaction:
                    result = operation.body(session)
                else:
                    with conn.transaction():
                        if not operation.durable:
                            conn.execute("SET LOCAL synchronous_commit TO OFF")
                        result = operation.body(session)
                        if session.notify:
                            conn.execute(
                                "SELECT pg_notify(%s, %s)", (self.changes.channel, NOTIFY_PAYLOAD)
                            )
                        committing = True
            except psycopg.OperationalError as exc:
                broken = conn is not None and conn.broken
                if broken:
                    assert conn is not None
                    with contextlib.suppress(Exception):
                        conn.close()
                    conn = None
                # Deadlock victims and serialization failures were rolled back; a broken
                # connection rolled back an open transaction, but not a write in autocommit.
                unknown = broken and operation.writes and not operation.transaction
                retry = not committing and not unknown and (broken or isinstance(exc, _ROLLED_BACK))
                if attempt == 2 or not retry:
                    operation.settle(False, _store_error(exc))
                    return conn
                continue
            except psycopg.Error as exc:
                operation.settle(False, _store_error(exc))
                return conn
            except Exception as exc:
                operation.settle(False, exc)
                return conn
            if session.changed or session.notify:
                self.changes.bump()
            operation.committed()
            operation.settle(True, result)
            return conn
        raise AssertionError("unreachable")

    def _analyze(self, conn: Connection) -> None:
        """Once the store has run ``_ANALYZE_AFTER`` operations: give the task hub's tables
        their first statistics if they have none. Without any, the planner may find an
        instance by key through an index that merely starts with the task hub, reading every
        instance of the hub, until autovacuum first analyzes the tables (about a minute after
        a fresh schema fills); a few rows of statistics settle it."""
        try:
            rows = conn.execute(
                "SELECT c.relname FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.reltuples <= 0",
                (self.schema, list(_HUB_TABLES)),
            ).fetchall()
            for (table,) in rows:
                conn.execute(f'ANALYZE {quote_schema(self.schema)}."{table}"')
        except psycopg.Error as exc:  # not the owner, say: autovacuum will do it
            log.debug("could not analyze the task hub's tables: %s", exc)


_ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
# Operations after which the task hub's tables get statistics, if they have none yet.
_ANALYZE_AFTER = 200
_HUB_TABLES = ("instances", "inbox", "history", "activity_tasks")


def _store_error(exc: psycopg.Error) -> StoreError:
    text = str(exc).strip() or type(exc).__name__
    error = StoreError(f"PostgreSQL error: {text}")
    error.__cause__ = exc
    return error


class _LoopThread:
    """An event loop running on a daemon thread: the change feed's."""

    def __init__(self, name: str) -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            leftovers = asyncio.all_tasks(self.loop)
            for task in leftovers:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
