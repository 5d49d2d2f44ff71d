"""The connections of a PostgreSQL store: a private event loop, a pool, transactions, errors.

A store object is used from several event loops (the host's loop and the blocking client's
portal thread; tests that run each step under its own ``asyncio.run``), while a psycopg pool
belongs to the loop that opened it. So, as the SQLite store keeps its connection on a private
thread, a :class:`Database` keeps its pool and its LISTEN connection on a private event loop
thread, started on first use, and every operation hops there and back.

Every psycopg error becomes a ``StoreError`` here (the operations map the few that mean
something, like a unique violation, before that). A transaction that fails because its
connection broke, or because PostgreSQL chose it as a deadlock victim, is retried once on a
healthy connection: nothing of it was committed. A failure of the COMMIT itself is not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from durafn.core.errors import StoreError
from durafn.store.postgres_changes import NOTIFY_PAYLOAD, ChangeFeed
from durafn.store.postgres_schema import migrate

T = TypeVar("T")
Connection = psycopg.AsyncConnection[tuple[Any, ...]]
Row = tuple[Any, ...]
Params = Sequence[Any] | dict[str, Any] | None

# Seconds to wait for a pooled connection before an operation fails with StoreError.
POOL_TIMEOUT = 15.0
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
    """One operation's connection, and what its commit must do besides committing."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # The operation changed rows: count a change for this store's waiters.
        self.changed = False
        # The operation made work visible: NOTIFY the task hub's channel in the transaction.
        self.notify = False

    async def execute(self, query: str, params: Params = None) -> int:
        """Run a statement; the number of rows it touched."""
        cursor = await self.conn.execute(query, params)
        return cursor.rowcount

    async def fetchone(self, query: str, params: Params = None) -> Row | None:
        cursor = await self.conn.execute(query, params)
        return await cursor.fetchone()

    async def fetchall(self, query: str, params: Params = None) -> list[Row]:
        cursor = await self.conn.execute(query, params)
        return await cursor.fetchall()


class Database:
    """The pool and the change feed of one store, on a private event loop thread."""

    def __init__(
        self, conninfo: str, schema: str, channel: str, *, min_size: int, max_size: int
    ) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise StoreError(f"invalid pool sizes min_size={min_size}, max_size={max_size}")
        self.schema = schema
        self._conninfo = complete_conninfo(conninfo)
        self._min_size = min_size
        self._max_size = max_size
        self.changes = ChangeFeed(self._conninfo, channel)
        self._lock = threading.Lock()
        self._thread: _LoopThread | None = None
        self._closed = False
        # Used on the private loop only.
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._opening: asyncio.Lock | None = None

    # ------------------------------------------------------------------ caller's loop

    async def call(self, work: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``work()`` on the private loop and wait for its result."""
        with self._lock:
            # Submitted under the lock: once ``close`` has the lock, nothing more is submitted,
            # so everything submitted runs before the shutdown does.
            if self._closed:
                raise StoreError("the store is closed")
            if self._thread is None:
                self._thread = _LoopThread("durafn-postgres")
            call = self._thread.submit(work())
        return await call.result()

    async def read(self, body: Callable[[Session], Awaitable[T]]) -> T:
        """Run ``body`` on a pooled connection, statement by statement (autocommit)."""
        return await self.call(lambda: self._run(body, transaction=False))

    async def write(
        self,
        body: Callable[[Session], Awaitable[T]],
        *,
        transaction: bool = True,
        durable: bool = True,
    ) -> T:
        """Run ``body`` in one transaction (or, for one statement, in autocommit).

        ``durable=False`` commits without waiting for the WAL flush (``synchronous_commit`` off
        for this transaction only): for lease state and activity results, whose loss in a
        server crash costs a re-run at most. WAL is written in order, so the next durable
        commit makes them durable too; whatever depends on them commits after them.
        """
        return await self.call(
            lambda: self._run(body, transaction=transaction or not durable, durable=durable)
        )

    async def change_token(self) -> object:
        if self.changes.ready:
            return self.changes.version
        return await self.call(self.changes.token)

    async def wait_for_change(self, token: object, timeout: float) -> None:
        if self._closed:
            raise StoreError("the store is closed")
        if not self.changes.started:
            await self.call(self._start_listening)
        await self.changes.wait(token, timeout)

    async def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            try:
                await thread.submit(self._shutdown()).result()
            finally:
                thread.stop()
        self.changes.bump()  # wake anyone still waiting

    # ------------------------------------------------------------------ private loop

    async def _start_listening(self) -> None:
        self.changes.start()

    async def _ready(self) -> AsyncConnectionPool[Connection]:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                # A direct connection first: a bad address or password fails at once with
                # libpq's own message, rather than as a pool timeout.
                try:
                    conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                except psycopg.Error as exc:
                    raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
                try:
                    async with conn:
                        await migrate(conn, self.schema)
                except psycopg.Error as exc:
                    raise _store_error(exc) from exc
                pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
                    self._conninfo,
                    kwargs={"autocommit": True},
                    configure=_configure,
                    min_size=self._min_size,
                    max_size=self._max_size,
                    open=False,
                    timeout=POOL_TIMEOUT,
                    name=f"durafn-{self.schema}",
                )
                await pool.open(wait=False)
                self._pool = pool
        return self._pool

    async def _run(
        self, body: Callable[[Session], Awaitable[T]], *, transaction: bool, durable: bool = True
    ) -> T:
        pool = await self._ready()
        for attempt in (1, 2):
            committing = False
            broken = False
            try:
                async with pool.connection() as conn:
                    session = Session(conn)
                    try:
                        if not transaction:
                            result = await body(session)
                        else:
                            async with conn.transaction():
                                if not durable:
                                    await conn.execute("SET LOCAL synchronous_commit TO OFF")
                                result = await body(session)
                                if session.notify:
                                    await conn.execute(
                                        "SELECT pg_notify(%s, %s)",
                                        (self.changes.channel, NOTIFY_PAYLOAD),
                                    )
                                committing = True
                    except psycopg.OperationalError:
                        broken = conn.broken
                        raise
            except psycopg.OperationalError as exc:
                retry = not committing and (broken or isinstance(exc, _ROLLED_BACK))
                if attempt == 2 or not retry:
                    raise _store_error(exc) from exc
                if broken:
                    # The server may have dropped every connection (a restart): test the idle
                    # ones before trying again.
                    await pool.check()
                continue
            except psycopg.Error as exc:
                raise _store_error(exc) from exc
            if session.changed or session.notify:
                self.changes.bump()
            return result
        raise AssertionError("unreachable")

    async def _shutdown(self) -> None:
        await self.changes.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def _configure(conn: Connection) -> None:
    # The claims and fences reason in READ COMMITTED terms (each statement sees what committed
    # before it began; a row lock wait ends on the row's latest version), whatever the
    # server's default isolation is.
    await conn.set_isolation_level(psycopg.IsolationLevel.READ_COMMITTED)


_ROLLED_BACK = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def _store_error(exc: psycopg.Error) -> StoreError:
    text = str(exc).strip() or type(exc).__name__
    return StoreError(f"PostgreSQL error: {text}")


class _LoopThread:
    """An event loop running on a daemon thread, owned by one store."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
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

    def submit(self, coro: Coroutine[Any, Any, T]) -> _Call[T]:
        """Start ``coro`` on this loop; the caller awaits ``.result()`` on its own loop."""
        call = _Call(coro, self.loop, asyncio.get_running_loop())
        self.loop.call_soon_threadsafe(call.start)
        return call

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()


class _Call(Generic[T]):
    """A coroutine running on the private loop for a caller on another loop.

    Leaner than ``run_coroutine_threadsafe`` + ``wrap_future``: two loop wake-ups and nothing
    in between, which halves the cost of the hop.
    """

    def __init__(
        self,
        coro: Coroutine[Any, Any, T],
        loop: asyncio.AbstractEventLoop,
        caller: asyncio.AbstractEventLoop,
    ) -> None:
        self._coro = coro
        self._loop = loop
        self._caller = caller
        self._answer: asyncio.Future[T] = caller.create_future()
        self._task: asyncio.Task[T] | None = None

    async def result(self) -> T:
        try:
            return await self._answer
        except asyncio.CancelledError:
            # Runs after ``start`` (the loop keeps the order of its callbacks).
            with contextlib.suppress(RuntimeError):  # the private loop has stopped
                self._loop.call_soon_threadsafe(self._cancel)
            raise

    def start(self) -> None:
        self._task = self._loop.create_task(self._coro)
        self._task.add_done_callback(self._finished)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _finished(self, task: asyncio.Task[T]) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop has closed
            self._caller.call_soon_threadsafe(self._deliver, task)

    def _deliver(self, task: asyncio.Task[T]) -> None:
        if self._answer.done():
            return
        if task.cancelled():
            self._answer.set_exception(StoreError("the store was closed during the operation"))
        elif (error := task.exception()) is not None:
            self._answer.set_exception(error)
        else:
            self._answer.set_result(task.result())
