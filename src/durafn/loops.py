"""The event loops durafn creates: uvloop's where it is installed, else asyncio's own.

A step of a workflow crosses threads several times (the store's writer, an activity's thread,
back to the loop), and uvloop makes each crossing and each turn of the loop cheaper. Loops that
an application creates itself (``asyncio.run`` around an ``AsyncClient`` or an async
``Runtime``) are the application's choice; these helpers serve the loops durafn owns: the
background loop of the blocking ``Client``/``Runtime`` and the CLI's commands.

``DURAFN_EVENT_LOOP=asyncio`` chooses asyncio's loop everywhere (its debug mode, say);
``DURAFN_EVENT_LOOP=uvloop`` insists on uvloop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

EVENT_LOOP_ENV_VAR = "DURAFN_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop: uvloop's unless ``$DURAFN_EVENT_LOOP`` says ``asyncio``
    or uvloop is not installed (Windows, PyPy). Raises ``ValueError`` for another value, or
    for ``uvloop`` asked by name where it is not installed."""
    choice = os.environ.get(EVENT_LOOP_ENV_VAR, "").strip().lower()
    if choice not in ("", "uvloop", "asyncio"):
        raise ValueError(f"{EVENT_LOOP_ENV_VAR} must be uvloop or asyncio, not {choice!r}")
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError(f"{EVENT_LOOP_ENV_VAR}=uvloop, but uvloop is not installed") from None
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def new_event_loop() -> asyncio.AbstractEventLoop:
    return loop_factory()()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a loop from :func:`loop_factory`."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
