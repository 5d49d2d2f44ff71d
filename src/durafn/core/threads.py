"""Threads that run the calls handed to them: the store's writer, the activity threads.

A ``concurrent.futures.ThreadPoolExecutor`` makes a ``Future`` (with its condition variable
and lock) and a work item for every call, and wakes a thread through a semaphore: about 10 µs
a call here, paid at every step of a workflow, twice (the checkpoint to the writer thread, the
next activity to its thread). The callers of these threads need none of it: each learns the
outcome of its call its own way (a store hands it back to the caller's event loop; an activity
hands its result to the worker's queue of arrivals). :class:`Threads` only queues the call on a
``queue.SimpleQueue`` (written in C), starting threads on demand up to a limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("durafn")
T = TypeVar("T")


class Job:
    """A call handed to :class:`Threads`. Cancelled before a thread takes it, it never runs
    (and ``on_cancel``, if given, is called: the caller may be waiting for it)."""

    __slots__ = ("call", "cancelled", "on_cancel")

    def __init__(
        self, call: Callable[[], object], on_cancel: Callable[[], None] | None = None
    ) -> None:
        self.call = call
        self.cancelled = False
        self.on_cancel = on_cancel

    def cancel(self) -> None:
        """Keep the call from running if no thread has taken it yet; one already running
        goes on to its end."""
        if self.cancelled:
            return
        self.cancelled = True
        if self.on_cancel is not None:
            self.on_cancel()


class Latch:
    """A flag that is set once, by one thread, and that threads wait for: a
    ``threading.Event`` for that one use, at a tenth of its cost (a lock held until the flag
    is set, where an ``Event`` makes a condition variable and its lock). A step of a workflow
    committed on an activity's thread makes two."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        """Set the flag, releasing the threads that wait for it. Again, nothing; but never
        from two threads at once (the second could release the lock twice): each of its
        users has one thread that sets it."""
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self) -> None:
        """Return once the flag is set."""
        if not self._set:
            # Each waiter takes the lock in turn once it is released, and gives it back.
            with self._lock:
                pass


class Threads:
    """Up to ``size`` threads named ``name``-0, -1, … that run submitted calls in the order
    they come, each on whichever thread is free. Threads start when calls need them and stay
    until :meth:`shutdown`. A call's exception is logged; the thread goes on serving.

    The threads are daemon threads: a process that ends without shutting them down does not
    wait for them (as it would not wait for a crash). Whoever owns them shuts them down.
    """

    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("a set of threads needs at least one thread")
        self._size = size
        self._name = name
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # A token per thread done with its last call, that will take the next one queued (an
        # estimate on the high side: a thread counted idle may take a call queued while all
        # were busy). Threads add theirs without the lock (appending to a list is atomic), so
        # that the thread submitting never waits for one that holds the lock but not the GIL.
        self._idle: list[None] = []
        self._closed = False

    def submit(
        self, call: Callable[[], object], on_cancel: Callable[[], None] | None = None
    ) -> Job:
        """Queue ``call`` for the next free thread. Raises RuntimeError once shut down, or
        when the thread it needs cannot start (the call is then cancelled, never run)."""
        job = Job(call, on_cancel)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self._name} threads have shut down")
            self._queue.put(job)
            if self._idle:
                self._idle.pop()
            elif len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                try:
                    thread.start()
                except BaseException:
                    job.cancel()
                    raise
                self._threads.append(thread)
        return job

    def has_waiting(self) -> bool:
        """Whether calls wait in the queue for a free thread (an estimate: a thread may be
        taking one at this moment)."""
        return not self._queue.empty()

    def run(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """``call()`` on one of the threads; its value or exception on the running event loop,
        in one hop back (``loop.run_in_executor`` chains a second future). Raises RuntimeError
        once shut down."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def run() -> None:
            try:
                value = call()
            except BaseException as exc:
                _hand_back(loop, future, False, exc)
            else:
                _hand_back(loop, future, True, value)

        def cancelled() -> None:
            # Dropped by a shutdown before it ran: the caller must not wait forever.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(future.cancel)

        self.submit(run, cancelled)
        return future

    def shutdown(self, *, wait: bool = False, cancel_pending: bool = False) -> None:
        """Take no more calls; the threads end once the calls queued before have run (or, with
        ``cancel_pending``, once the calls already running have ended; the others never run).
        ``wait`` joins the threads (never from one of them)."""
        with self._lock:
            # One end per thread, asked for once (a second shutdown may still cancel).
            ends = 0 if self._closed else len(self._threads)
            self._closed = True
            if cancel_pending:
                while True:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        ends += 1  # a thread's end, asked for by an earlier shutdown
                    else:
                        job.cancel()
            for _ in range(ends):
                self._queue.put(None)
        if wait:
            current = threading.current_thread()
            for thread in self._threads:
                if thread is not current:
                    thread.join()

    def _serve(self) -> None:
        take = self._queue.get
        while True:
            job = take()
            if job is None:
                return
            if not job.cancelled:
                try:
                    job.call()
                except BaseException:
                    log.exception("a call on the %s threads failed", self._name)
            job = None  # what the call holds (its closure, a result) may go now
            self._idle.append(None)


def resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """On the caller's loop: settle ``future`` with a result (``ok``) or an exception, unless
    the caller stopped waiting (cancelled) meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _hand_back(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], ok: bool, value: Any
) -> None:
    with contextlib.suppress(RuntimeError):  # the caller's loop has closed
        loop.call_soon_threadsafe(resolve, future, ok, value)
