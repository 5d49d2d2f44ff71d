"""Change signals between store objects of one process: a commit wakes idle waiters at once.

Workers sleep until the task hub may hold new work. A write made through any store object of
this process on the same database sets the database's signal, waking every waiter, whatever its
thread and event loop, without polling. Writes by other processes are the stores' own business
(PostgreSQL notifies; SQLite polls its ``data_version``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class ChangeSignal:
    """A version counter and the waiters to wake when it moves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def version(self) -> int:
        return self._version

    def changed(self) -> None:
        """Record a write and wake every waiter (callable from any thread)."""
        with self._lock:
            self._version += 1
            waiters, self._waiters = self._waiters, []
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # the waiter's loop has closed
                loop.call_soon_threadsafe(event.set)

    @contextlib.contextmanager
    def subscription(self) -> Iterator[asyncio.Event]:
        """An event set by the next :meth:`changed` (call inside a running event loop)."""
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.append(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(waiter)


_SIGNALS: dict[str, ChangeSignal] = {}
_SIGNALS_LOCK = threading.Lock()


def signal_for(key: str) -> ChangeSignal:
    """The process-wide signal of the database named ``key`` (e.g. a file's real path)."""
    with _SIGNALS_LOCK:
        return _SIGNALS.setdefault(key, ChangeSignal())
