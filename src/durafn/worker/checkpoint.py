"""Turn an episode's result into the checkpoint the store commits."""

from __future__ import annotations

import uuid
from datetime import datetime

from durafn.core.history import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TimerFired,
)
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.executor.actions import CreateTimer, ScheduleActivity, SendEvent, StartSubOrchestration
from durafn.executor.orchestration import EpisodeResult
from durafn.store.base import (
    ActivityTask,
    Checkpoint,
    NewInstance,
    OrchestrationWorkItem,
    OutgoingMessage,
)


def build_checkpoint(
    item: OrchestrationWorkItem, result: EpisodeResult, now: datetime
) -> Checkpoint:
    """Everything the store must do for ``result``, as one :class:`Checkpoint`."""
    cp = Checkpoint(
        new_events=result.new_events,
        consumed=[m.seq for m in item.messages],
        status=result.status,
        output=result.output,
        custom_status=result.custom_status,
        failure=result.failure,
    )
    for action in result.actions:
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
    request = result.continue_as_new
    if request is not None and result.started is not None:
        cp.restart = ExecutionStarted(
            timestamp=now,
            name=result.started.name,
            execution_id=new_execution_id(),
            input=request.input,
            parent_instance_id=result.started.parent_instance_id,
            parent_execution_id=result.started.parent_execution_id,
            parent_task_id=result.started.parent_task_id,
        )
        cp.carryover = request.carryover_events
    elif result.status.is_terminal and result.started is not None:
        cp.parent_message = _parent_message(result, now)
    return cp


def _parent_message(result: EpisodeResult, now: datetime) -> OutgoingMessage | None:
    started = result.started
    if started is None or started.parent_instance_id is None or started.parent_task_id is None:
        return None
    event: HistoryEvent
    if result.status is RuntimeStatus.COMPLETED:
        event = SubOrchestrationInstanceCompleted(
            timestamp=now, task_scheduled_id=started.parent_task_id, result=result.output
        )
    else:
        failure = result.failure or FailureDetails(
            error_type="OrchestrationTerminated"
            if result.status is RuntimeStatus.TERMINATED
            else "OrchestrationFailed",
            message=f"sub-orchestration {started.name!r} ended as {result.status.value}",
        )
        event = SubOrchestrationInstanceFailed(
            timestamp=now, task_scheduled_id=started.parent_task_id, failure=failure
        )
    return OutgoingMessage(started.parent_instance_id, event, started.parent_execution_id)


def new_execution_id() -> str:
    return uuid.uuid4().hex
