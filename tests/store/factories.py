"""Small factories of events, instances and episodes for the store conformance suite.

Every time is explicit: :data:`T0` plus offsets (:func:`at`). The stores never read the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from durafn.core.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    TaskCompleted,
    TaskScheduled,
    TimerFired,
)
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.store.base import (
    ActivityTask,
    Checkpoint,
    NewInstance,
    OrchestrationWorkItem,
    OutgoingMessage,
    Store,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def started(
    name: str = "wf",
    execution_id: str = "e1",
    *,
    input: str | None = None,
    parent_instance_id: str | None = None,
    parent_execution_id: str | None = None,
    parent_task_id: int | None = None,
    now: datetime = T0,
) -> ExecutionStarted:
    return ExecutionStarted(
        timestamp=now,
        name=name,
        execution_id=execution_id,
        input=input,
        parent_instance_id=parent_instance_id,
        parent_execution_id=parent_execution_id,
        parent_task_id=parent_task_id,
    )


def new_instance(
    instance_id: str,
    name: str = "wf",
    execution_id: str = "e1",
    *,
    input: str | None = None,
    start_at: datetime | None = None,
) -> NewInstance:
    return NewInstance(instance_id, started(name, execution_id, input=input), start_at)


def raised(name: str = "evt", input: str | None = None, now: datetime = T0) -> EventRaised:
    return EventRaised(timestamp=now, name=name, input=input)


def terminated(reason: str | None = None, now: datetime = T0) -> ExecutionTerminated:
    return ExecutionTerminated(timestamp=now, reason=reason)


def task_scheduled(event_id: int, name: str = "act", now: datetime = T0) -> TaskScheduled:
    return TaskScheduled(timestamp=now, event_id=event_id, name=name)


def task_completed(event_id: int, result: str | None = None, now: datetime = T0) -> TaskCompleted:
    return TaskCompleted(timestamp=now, task_scheduled_id=event_id, result=result)


def timer_fired(timer_id: int, fire_at: datetime) -> TimerFired:
    return TimerFired(timestamp=fire_at, timer_id=timer_id, fire_at=fire_at)


def completed(status: RuntimeStatus = RuntimeStatus.COMPLETED, now: datetime = T0) -> HistoryEvent:
    return ExecutionCompleted(timestamp=now, status=status)


def episode(*events: HistoryEvent, now: datetime = T0) -> list[HistoryEvent]:
    """The new history of one episode: ``events`` between OrchestratorStarted/Completed."""
    return [OrchestratorStarted(timestamp=now), *events, OrchestratorCompleted(timestamp=now)]


def failure(message: str = "boom") -> FailureDetails:
    return FailureDetails(error_type="ValueError", message=message, stack_trace="trace")


def activity(event_id: int, name: str = "act", input: str | None = None) -> ActivityTask:
    return ActivityTask(event_id, name, input)


def to_self(
    item: OrchestrationWorkItem, event: HistoryEvent, visible_at: datetime
) -> OutgoingMessage:
    """A message to the item's own execution at a later time: a timer."""
    return OutgoingMessage(item.instance_id, event, item.execution_id, visible_at)


# ------------------------------------------------------------------ store helpers


async def lock_instance(
    store: Store, instance_id: str, now: datetime = T0, owner: str = "w1"
) -> OrchestrationWorkItem:
    """Lease ``instance_id`` (it must have a visible message), releasing any other leased first."""
    others: list[OrchestrationWorkItem] = []
    try:
        while True:
            item = await store.lock_next_orchestration(owner, LEASE, now)
            assert item is not None, f"{instance_id!r} has no visible message at {now}"
            if item.instance_id == instance_id:
                return item
            others.append(item)
    finally:
        for other in others:
            await store.abandon_orchestration(other)


async def commit(
    store: Store,
    item: OrchestrationWorkItem,
    now: datetime = T0,
    status: RuntimeStatus = RuntimeStatus.RUNNING,
    events: list[HistoryEvent] | None = None,
    **fields: Any,
) -> None:
    """Checkpoint ``item`` consuming all its messages, with ``fields`` of :class:`Checkpoint`."""
    cp = Checkpoint(
        new_events=episode(now=now) if events is None else events,
        consumed=[m.seq for m in item.messages],
        status=status,
        **fields,
    )
    await store.checkpoint(item, cp, now)


async def start_running(
    store: Store, instance_id: str, name: str = "wf", execution_id: str = "e1", now: datetime = T0
) -> OrchestrationWorkItem:
    """Create ``instance_id`` and run its first episode: Running, three history events."""
    await store.create_instance(new_instance(instance_id, name, execution_id), now)
    item = await lock_instance(store, instance_id, now)
    await commit(store, item, now, events=episode(item.messages[0].event, now=now))
    return item


async def finish(
    store: Store,
    instance_id: str,
    now: datetime = T0,
    status: RuntimeStatus = RuntimeStatus.COMPLETED,
    **fields: Any,
) -> None:
    """Bring an unfinished instance to ``status`` through a terminate message and an episode."""
    await store.send_message(instance_id, terminated(now=now), now)
    item = await lock_instance(store, instance_id, now)
    await commit(store, item, now, status, episode(completed(status, now), now=now), **fields)


async def create_finished(
    store: Store,
    instance_id: str,
    now: datetime = T0,
    status: RuntimeStatus = RuntimeStatus.COMPLETED,
    name: str = "wf",
) -> None:
    await store.create_instance(new_instance(instance_id, name), now)
    await finish(store, instance_id, now, status)


async def start_held(
    store: Store, *event_ids: int, instance_id: str = "a"
) -> OrchestrationWorkItem:
    """Start ``instance_id`` with an episode that schedules activities ``event_ids`` (named
    ``act<id>``) held by the worker, which keeps the instance's lease."""
    await store.create_instance(new_instance(instance_id), T0)
    item = await lock_instance(store, instance_id)
    events = episode(item.messages[0].event, *(task_scheduled(i) for i in event_ids))
    cp = Checkpoint(
        new_events=events,
        consumed=[m.seq for m in item.messages],
        status=RuntimeStatus.RUNNING,
        activities=[activity(i, f"act{i}") for i in event_ids],
        hold_until=T0 + LEASE,
    )
    await store.checkpoint(item, cp, T0)
    item.history_length += len(events)
    item.locked_until = T0 + LEASE
    return item
