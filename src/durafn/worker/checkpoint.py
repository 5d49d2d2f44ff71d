"""Turn an episode's result into the checkpoint the store commits."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime

from durafn.core.history import (
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationSignaled,
    EntityUnlockSent,
    EventRaised,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.executor.actions import (
    Action,
    CallEntity,
    CreateTimer,
    LockEntities,
    ScheduleActivity,
    SendEvent,
    SignalEntity,
    StartSubOrchestration,
    UnlockEntity,
)
from durafn.executor.episode import EpisodeResult
from durafn.store.base import (
    ActivityTask,
    Checkpoint,
    NewInstance,
    OrchestrationWorkItem,
    OutgoingMessage,
)

IN_PLACE_SEQ = -1
"""The ``seq`` of a message that is the result of an activity the worker ran in place."""


def task_id_of(event: HistoryEvent) -> int:
    """The event id of the activity whose result ``event`` is."""
    assert isinstance(event, TaskCompleted | TaskFailed)
    return event.task_scheduled_id


def build_checkpoint(
    item: OrchestrationWorkItem, result: EpisodeResult, now: datetime
) -> Checkpoint:
    """Everything the store must do for ``result``, as one :class:`Checkpoint`."""
    applied = item.messages[: result.applied]
    leftover = item.messages[result.applied :]
    request = result.continue_as_new
    # Messages that came after the execution ended: a terminate, suspend or resume waits for
    # the next execution; events are carried over (when asked) or dropped and counted.
    kept_for_next = [
        m for m in leftover if request is not None and m.event.kind in _LIFECYCLE_KINDS
    ]
    carried = request is not None and bool(request.carryover_events)
    consumed = [m.seq for m in applied] + [m.seq for m in leftover if m not in kept_for_next]
    cp = Checkpoint(
        new_events=result.new_events,
        # Results of activities run in place never were in the inbox (``IN_PLACE_SEQ``).
        consumed=[seq for seq in consumed if seq != IN_PLACE_SEQ],
        status=result.status,
        output=result.output,
        custom_status=result.custom_status,
        failure=result.failure,
        dropped_events=0 if carried else sum(isinstance(m.event, EventRaised) for m in leftover),
    )
    for action in result.actions:
        _add_action(cp, item, action, now)
    for entity, section in result.locks_to_release:
        cp.messages.append(unlock_message(item.instance_id, entity, section, now))
    for child in result.children_to_terminate:
        reason = f"parent instance {item.instance_id!r} was terminated"
        cp.messages.append(
            OutgoingMessage(child, ExecutionTerminated(timestamp=now, reason=reason))
        )
    started = result.started
    if request is not None and started is not None:
        cp.restart = ExecutionStarted(
            timestamp=now,
            name=started.name,
            execution_id=new_execution_id(),
            input=request.input,
            parent_instance_id=started.parent_instance_id,
            parent_execution_id=started.parent_execution_id,
            parent_task_id=started.parent_task_id,
        )
        cp.carryover = request.carryover_events
    elif result.status.is_terminal and started is not None:
        cp.parent_message = parent_message(
            started, result.status, result.output, result.failure, now
        )
    return cp


def failed_checkpoint(
    item: OrchestrationWorkItem,
    started: ExecutionStarted | None,
    error: BaseException,
    now: datetime,
    locks: list[tuple[str, str]] | None = None,
) -> Checkpoint:
    """Fail the instance because its episode could not run (a runtime fault, not user code):
    every message is consumed, the parent, if any, learns of the failure, and the entity
    ``locks`` (``(entity, critical section)``) it held are released."""
    failure = FailureDetails.from_exception(error)
    completed = ExecutionCompleted(timestamp=now, status=RuntimeStatus.FAILED, failure=failure)
    cp = Checkpoint(
        new_events=[completed],
        consumed=[m.seq for m in item.messages],
        status=RuntimeStatus.FAILED,
        failure=failure,
    )
    for entity, section in locks or []:
        cp.messages.append(unlock_message(item.instance_id, entity, section, now))
    if started is not None:
        cp.parent_message = parent_message(started, RuntimeStatus.FAILED, None, failure, now)
    return cp


def _add_action(cp: Checkpoint, item: OrchestrationWorkItem, action: Action, now: datetime) -> None:
    if isinstance(action, ScheduleActivity):
        cp.activities.append(ActivityTask(action.event_id, action.name, action.input))
    elif isinstance(action, CreateTimer):
        fired = TimerFired(
            timestamp=action.fire_at, timer_id=action.event_id, fire_at=action.fire_at
        )
        cp.messages.append(
            OutgoingMessage(item.instance_id, fired, item.execution_id, action.fire_at)
        )
    elif isinstance(action, StartSubOrchestration):
        started = ExecutionStarted(
            timestamp=now,
            name=action.name,
            execution_id=new_execution_id(),
            input=action.input,
            parent_instance_id=item.instance_id,
            parent_execution_id=item.execution_id,
            parent_task_id=action.event_id,
        )
        cp.sub_orchestrations.append(NewInstance(action.instance_id, started))
    elif isinstance(action, SendEvent):
        raised = EventRaised(timestamp=now, name=action.name, input=action.input)
        cp.messages.append(OutgoingMessage(action.instance_id, raised))
    elif isinstance(action, CallEntity | SignalEntity | LockEntities):
        # The entity's message is the recorded event, signed with the sender's address.
        event = action.to_event(now)
        assert isinstance(
            event, EntityOperationCalled | EntityOperationSignaled | EntityLockRequested
        )
        target = action.lock_set[0] if isinstance(action, LockEntities) else action.instance_id
        message = dataclasses.replace(
            event, parent_instance_id=item.instance_id, parent_execution_id=item.execution_id
        )
        cp.messages.append(OutgoingMessage(target, message))
    elif isinstance(action, UnlockEntity):
        cp.messages.append(
            unlock_message(item.instance_id, action.instance_id, action.critical_section_id, now)
        )


def unlock_message(owner: str, entity: str, section: str, now: datetime) -> OutgoingMessage:
    """The message releasing ``owner``'s lock on ``entity`` (critical section ``section``)."""
    unlock = EntityUnlockSent(
        timestamp=now,
        event_id=-1,
        critical_section_id=section,
        instance_id=entity,
        parent_instance_id=owner,
    )
    return OutgoingMessage(entity, unlock)


def parent_message(
    started: ExecutionStarted,
    status: RuntimeStatus,
    output: str | None,
    failure: FailureDetails | None,
    now: datetime,
) -> OutgoingMessage | None:
    """What a finished sub-orchestration tells its parent (``None`` for a top-level one)."""
    if started.parent_instance_id is None or started.parent_task_id is None:
        return None
    event: HistoryEvent
    if status is RuntimeStatus.COMPLETED:
        event = SubOrchestrationInstanceCompleted(
            timestamp=now, task_scheduled_id=started.parent_task_id, result=output
        )
    else:
        failure = failure or FailureDetails(
            error_type="OrchestrationTerminated"
            if status is RuntimeStatus.TERMINATED
            else "OrchestrationFailed",
            message=f"sub-orchestration {started.name!r} ended as {status.value}",
        )
        event = SubOrchestrationInstanceFailed(
            timestamp=now, task_scheduled_id=started.parent_task_id, failure=failure
        )
    return OutgoingMessage(started.parent_instance_id, event, started.parent_execution_id)


def new_execution_id() -> str:
    return uuid.uuid4().hex


_LIFECYCLE_KINDS = frozenset({"ExecutionTerminated", "ExecutionSuspended", "ExecutionResumed"})
