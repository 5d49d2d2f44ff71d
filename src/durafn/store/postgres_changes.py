"""Change notification of the PostgreSQL store: LISTEN on the task hub's channel, count changes.

Every transaction that makes work visible runs ``SELECT pg_notify(channel, sender)``, so the
notification goes out when (and only if) it commits. A :class:`ChangeFeed` keeps one LISTEN
connection per store and counts what it hears, plus the commits of every store object of this
process on the same channel (they share one :class:`~durafn.store.signals.ChangeSignal`, so they
see each other's commits at once, and ignore their echo from the server, which the ``sender``
payload marks); the count is the store's change token. Reading it costs no round trip: a
notification heard after the token was taken moves the count, and so wakes the waiter,
whenever it arrives. Waiters sleep on an event, never poll, while the LISTEN
connection is up. When it drops, the feed reconnects with back-off; meanwhile waiters sleep
:data:`FALLBACK_WAIT` at most, so a change made while nobody listened is never waited out.

The listener runs on an event loop thread of its own (see ``postgres_connections``);
:meth:`ChangeFeed.bump` and :meth:`ChangeFeed.wait` may be called from any thread and loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import uuid
from typing import Any

import psycopg

from durafn.store.signals import signal_for

log = logging.getLogger("durafn.store.postgres")

# How long a waiter sleeps while no LISTEN connection is up (then its caller looks again).
FALLBACK_WAIT = 0.25
MIN_BACKOFF = 0.05
MAX_BACKOFF = 5.0
# A round trip on the LISTEN connection slower than this means the connection is dead.
ROUND_TRIP_TIMEOUT = 10.0


# The payload of this process's notifications. Its own commits wake its waiters at once (the
# shared signal), so hearing them again from the server would only wake everyone twice.
NOTIFY_PAYLOAD = uuid.uuid4().hex


def channel_name(schema: str, task_hub: str) -> str:
    """The NOTIFY channel of a task hub: a plain identifier, whatever the names contain."""
    digest = hashlib.blake2b(f"{schema}\x00{task_hub}".encode(), digest_size=16).hexdigest()
    return f"durafn_{digest}"


class ChangeFeed:
    """The count of changes a store has seen: notifications heard and its own commits."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self.channel = channel
        self._conninfo = conninfo
        self._lock = threading.Lock()
        self._signal = signal_for(f"postgres:{channel}")
        self._listening = False
        self._ready = False
        # Used on the listener's loop only.
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._first_attempt: asyncio.Future[None] | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    @property
    def listening(self) -> bool:
        """Whether a LISTEN connection is up (waiters sleep until notified)."""
        with self._lock:
            return self._listening

    @property
    def ready(self) -> bool:
        """Whether the first attempt to LISTEN is over (the token can be read directly)."""
        return self._ready

    @property
    def version(self) -> int:
        return self._signal.version

    def bump(self) -> None:
        """Count a change and wake every waiter, whatever its thread and loop."""
        self._signal.changed()

    # ------------------------------------------------------------------ caller's loop

    async def wait(self, token: object, timeout: float) -> None:
        """Sleep until the count differs from ``token``, or ``timeout`` seconds."""
        with self._signal.subscription() as changed:
            if self._signal.version != token:
                return
            if not self.listening:
                await asyncio.sleep(min(max(0.0, timeout), FALLBACK_WAIT))
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, timeout)):
                    await changed.wait()

    # ------------------------------------------------------------------ listener loop

    def start(self) -> None:
        """Start listening (once), on the running loop."""
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._first_attempt = loop.create_future()
            self._task = loop.create_task(self._listen(), name=f"durafn-listen-{self.channel}")

    async def token(self) -> int:
        """The count, once the first attempt to LISTEN is over (up or failed)."""
        self.start()
        assert self._first_attempt is not None
        await asyncio.shield(self._first_attempt)
        return self._signal.version

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._attempted()
        self._set_listening(False)

    async def _listen(self) -> None:
        delay = MIN_BACKOFF
        failures = 0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
            except psycopg.Error as exc:
                # Said once per outage; the retries are only logged at debug level.
                level = logging.WARNING if failures == 0 else logging.DEBUG
                log.log(level, "cannot LISTEN for changes (%s); retrying with back-off", exc)
                failures += 1
                self._attempted()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            try:
                conn.add_notify_handler(self._heard)
                await conn.execute(f"LISTEN {self.channel}")
                self._set_listening(True)
                self._attempted()
                if failures:
                    log.warning("listening for changes again")
                delay, failures = MIN_BACKOFF, 0
                await self._serve(conn)
            except (psycopg.Error, TimeoutError) as exc:
                log.warning(
                    "lost the LISTEN connection (%s); reconnecting", str(exc) or "no answer"
                )
                failures += 1
            finally:
                self._set_listening(False)
                await conn.close()
            self._attempted()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _serve(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Read notifications whenever the server sends some."""
        loop = asyncio.get_running_loop()
        fd = conn.fileno()
        while True:
            loop.add_reader(fd, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                loop.remove_reader(fd)
            self._wake.clear()
            # A round trip makes psycopg read what the server sent: every notification
            # reaches ``_heard``, and a dead connection shows.
            async with asyncio.timeout(ROUND_TRIP_TIMEOUT):
                await conn.execute("")

    def _heard(self, notify: psycopg.Notify) -> None:
        if notify.payload != NOTIFY_PAYLOAD:
            self.bump()

    def _attempted(self) -> None:
        self._ready = True
        if self._first_attempt is not None and not self._first_attempt.done():
            self._first_attempt.set_result(None)

    def _set_listening(self, listening: bool) -> None:
        with self._lock:
            was, self._listening = self._listening, listening
        if was != listening:
            # Up: changes made while nobody listened were missed. Down: waiters must fall back
            # to sleeping briefly. Either way, wake them.
            self.bump()
