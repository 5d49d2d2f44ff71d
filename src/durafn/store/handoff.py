"""Outcomes handed from a store's thread back to the event loops of the callers waiting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from durafn.core.threads import Latch, resolve

log = logging.getLogger("durafn.store")

# A caller's loop, its future, whether the operation succeeded, and its result or exception.
Outcome = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", bool, Any]


def settle_all(outcomes: Iterable[Outcome]) -> None:
    """From a store's thread, tell the callers of a batch how their operations went: one
    wake-up per event loop, not one per operation (a wake-up costs a system call on each
    side)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
    for loop, future, ok, value in outcomes:
        by_loop.setdefault(loop, []).append((future, ok, value))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the caller's loop has closed
            loop.call_soon_threadsafe(_resolve_all, settled)


def _resolve_all(settled: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in settled:
        try:
            resolve(future, ok, value)
        except Exception:  # one caller's trouble must not strand the others
            log.exception("could not settle a store operation")


class Waiter:
    """The outcome of an operation for a caller that is a thread waiting for it (not an event
    loop): set once by the store's thread, or by the caller's own thread when it ran the
    operation itself."""

    __slots__ = ("_outcome", "_settled")

    def __init__(self) -> None:
        self._settled = Latch()
        self._outcome: tuple[bool, Any] | None = None

    def settle(self, ok: bool, value: Any) -> None:
        self._outcome = (ok, value)
        self._settled.set()

    def wait(self) -> Any:
        """The operation's result, once settled; raises its exception."""
        self._settled.wait()
        assert self._outcome is not None
        ok, value = self._outcome
        if not ok:
            raise value
        return value
