"""Running one activity: decode its input, call the function, encode the result or failure."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from durafn.app import App
from durafn.core import codec
from durafn.core.history import HistoryEvent, TaskCompleted, TaskFailed
from durafn.core.status import FailureDetails
from durafn.core.threads import Threads
from durafn.store.base import ActivityWorkItem


async def run_activity(
    app: App, item: ActivityWorkItem, threads: Threads, now: datetime
) -> HistoryEvent:
    """Run the activity of ``item``; returns its ``TaskCompleted`` or ``TaskFailed`` event.

    ``now`` is only the default timestamp; the event is stamped when the activity finishes.
    A sync function runs on one of ``threads``, with the decoding of its input and the
    encoding of its result.
    """
    try:
        registered = app.get_activity(item.name)
        if not registered.is_async:
            outcome = await threads.run(lambda: run_sync_activity(app, item, now))
            if isinstance(outcome, TaskCompleted | TaskFailed):
                return outcome
            return await finish_awaitable(item, outcome, now)
        argument = codec.decode(item.input)
        value = await registered.func(*_arguments(registered.func, argument))
        return _completed(item, value, now)
    except asyncio.CancelledError as exc:
        if _cancelled_from_outside():
            raise
        return _failed(item, exc, now)
    except BaseException as exc:
        # SystemExit or KeyboardInterrupt raised by user code is the activity's failure, not a
        # reason to take the worker down.
        return _failed(item, exc, now)


def run_sync_activity(
    app: App, item: ActivityWorkItem, now: datetime
) -> TaskCompleted | TaskFailed | Awaitable[Any]:
    """Run the sync activity of ``item`` on the calling thread (an activity thread): its
    result event, or the awaitable the function returned, for the event loop to finish
    (:func:`finish_awaitable`)."""
    try:
        registered = app.get_activity(item.name)
        value = registered.func(*_arguments(registered.func, codec.decode(item.input)))
        if inspect.isawaitable(value):
            return value
        return _completed(item, value, now)
    except BaseException as exc:  # the activity's failure (see run_activity)
        return _failed(item, exc, now)


async def finish_awaitable(
    item: ActivityWorkItem, value: Awaitable[Any], now: datetime
) -> HistoryEvent:
    """Await what a sync activity returned, on the event loop; its result event."""
    try:
        return _completed(item, await value, now)
    except asyncio.CancelledError as exc:
        if _cancelled_from_outside():
            raise
        return _failed(item, exc, now)
    except BaseException as exc:
        return _failed(item, exc, now)


def _cancelled_from_outside() -> bool:
    """Whether a ``CancelledError`` is the running task's own cancellation (the worker
    stops, or lets the instance go), rather than one the activity's code raised or let
    through, which is its failure."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def _completed(item: ActivityWorkItem, value: Any, now: datetime) -> TaskCompleted:
    encoded = codec.encode_optional(value, what=f"result of activity {item.name!r}")
    return TaskCompleted(timestamp=now, task_scheduled_id=item.event_id, result=encoded)


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
