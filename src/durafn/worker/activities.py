"""Running one activity: decode its input, call the function, encode the result or failure."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from durafn.app import App
from durafn.core import codec
from durafn.core.history import HistoryEvent, TaskCompleted, TaskFailed
from durafn.core.status import FailureDetails
from durafn.store.base import ActivityWorkItem


async def run_activity(
    app: App, item: ActivityWorkItem, threads: ThreadPoolExecutor, now: datetime
) -> HistoryEvent:
    """Run the activity of ``item``; returns its ``TaskCompleted`` or ``TaskFailed`` event.

    ``now`` is only the default timestamp; the event is stamped when the activity finishes.
    """
    try:
        registered = app.get_activity(item.name)
        argument = codec.decode(item.input)
        call_args = _arguments(registered.func, argument)
        if registered.is_async:
            value = await registered.func(*call_args)
        else:
            value = await _in_thread(threads, lambda: registered.func(*call_args))
        if inspect.isawaitable(value):
            value = await value
        encoded = codec.encode_optional(value, what=f"result of activity {item.name!r}")
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        # SystemExit or KeyboardInterrupt raised by user code is the activity's failure, not a
        # reason to take the worker down.
        return _failed(item, exc, now)
    return TaskCompleted(timestamp=now, task_scheduled_id=item.event_id, result=encoded)


def _in_thread(threads: ThreadPoolExecutor, call: Callable[[], Any]) -> asyncio.Future[Any]:
    """``call()`` on one of ``threads``; its outcome on the caller's loop. Lighter than
    ``run_in_executor``: one hop back, no chaining of a second future."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def run() -> None:
        try:
            value = call()
        except BaseException as exc:  # the activity's failure, reported on the loop
            loop.call_soon_threadsafe(_settle, future, None, exc)
        else:
            loop.call_soon_threadsafe(_settle, future, value, None)

    threads.submit(run)
    return future


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the waiting task was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _failed(item: ActivityWorkItem, exc: BaseException, now: datetime) -> TaskFailed:
    return TaskFailed(
        timestamp=now, task_scheduled_id=item.event_id, failure=FailureDetails.from_exception(exc)
    )


def _arguments(func: Any, argument: Any) -> tuple[Any, ...]:
    """An activity takes its input as its one positional argument, or no argument at all."""
    if argument is None and not _takes_positional(func):
        return ()
    return (argument,)


@functools.lru_cache(maxsize=1024)
def _takes_positional(func: Any) -> bool:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind in (*kinds, inspect.Parameter.VAR_POSITIONAL) for p in parameters)
