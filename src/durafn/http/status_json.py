"""Instance statuses and histories in the JSON shapes of the Durable Functions HTTP API."""

from __future__ import annotations

import dataclasses
import sys
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from durafn.core import codec
from durafn.core.history import HistoryEvent
from durafn.core.status import OrchestrationStatus


def to_plain_json(value: Any) -> Any:
    """A value as plain JSON: dataclasses and models as objects, times as ISO text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): to_plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain_json(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    return str(value)


def timestamp(moment: datetime | None) -> str | None:
    """``2026-01-02T03:04:05Z``: UTC, whole seconds, as Durable Functions writes times."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def precise_timestamp(moment: datetime | None) -> str | None:
    """``2026-01-02T03:04:05.123456Z``: history times keep their fraction, as in Durable
    Functions, so events of one second can be told apart."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def status_to_json(
    status: OrchestrationStatus,
    *,
    show_history_output: bool = True,
    show_history_input: bool = True,
) -> dict[str, Any]:
    """The status document of ``GET /runtime/webhooks/durabletask/instances/{id}``.

    The two flags leave results and inputs out of the history events (when the status carries
    a history), as ``showHistoryOutput=false`` and ``showInput=false`` do.
    """
    output = to_plain_json(status.output)
    if status.failure_details is not None and output is None:
        output = f"{status.failure_details.error_type}: {status.failure_details.message}"
    document: dict[str, Any] = {
        "name": status.name,
        "instanceId": status.instance_id,
        "runtimeStatus": status.runtime_status.value,
        "input": to_plain_json(status.input),
        "customStatus": to_plain_json(status.custom_status),
        "output": output,
        "createdTime": timestamp(status.created_time),
        "lastUpdatedTime": timestamp(status.last_updated_time),
    }
    if status.failure_details is not None:
        document["failureDetails"] = {
            "errorType": status.failure_details.error_type,
            "errorMessage": status.failure_details.message,
            "stackTrace": status.failure_details.stack_trace,
        }
    if status.history is not None:
        document["historyEvents"] = history_to_json(
            status.history, show_output=show_history_output, show_input=show_history_input
        )
    return document


_HIDDEN = frozenset({"OrchestratorStarted", "OrchestratorCompleted"})
_COMPLETIONS = {
    "TaskCompleted": "task_scheduled_id",
    "TaskFailed": "task_scheduled_id",
    "SubOrchestrationInstanceCompleted": "task_scheduled_id",
    "SubOrchestrationInstanceFailed": "task_scheduled_id",
    "TimerFired": "timer_id",
    "EntityOperationCompleted": "task_scheduled_id",
    "EntityOperationFailed": "task_scheduled_id",
    "EntityLockGranted": "task_scheduled_id",
}


def history_to_json(
    history: list[HistoryEvent], *, show_output: bool = True, show_input: bool = True
) -> list[dict[str, Any]]:
    """History events as Durable Functions shows them: episode markers left out, and a
    completed step shown once, with the name, input and time it was scheduled.

    ``show_output=False`` leaves out every ``Result``, ``show_input=False`` every ``Input``.
    """
    scheduled = {getattr(e, "event_id"): e for e in history if hasattr(e, "event_id")}  # noqa: B009
    completed = {getattr(e, _COMPLETIONS[e.kind]) for e in history if e.kind in _COMPLETIONS}
    shown: list[dict[str, Any]] = []
    for event in history:
        if event.kind in _HIDDEN:
            continue
        if hasattr(event, "event_id") and getattr(event, "event_id") in completed:  # noqa: B009
            continue
        item: dict[str, Any] = {
            "EventType": event.kind,
            "Timestamp": precise_timestamp(event.timestamp),
        }
        origin_id = getattr(event, _COMPLETIONS.get(event.kind, "-"), None)
        origin = scheduled.get(origin_id) if origin_id is not None else None
        if origin is not None:
            name = getattr(origin, "name", None)
            if name is not None:
                item["FunctionName"] = name
            for source, target in (
                ("instance_id", "InstanceId"),
                ("operation", "Operation"),
                ("lock_set", "LockSet"),
            ):
                if getattr(origin, source, None) is not None:
                    item[target] = getattr(origin, source)
            scheduled_input = getattr(origin, "input", None)
            if scheduled_input is not None:
                item["Input"] = to_plain_json(codec.decode(scheduled_input))
            item["ScheduledTime"] = precise_timestamp(origin.timestamp)
        _add_fields(item, event)
        if not show_output:
            item.pop("Result", None)
        if not show_input:
            item.pop("Input", None)
        shown.append(item)
    return shown


def _add_fields(item: dict[str, Any], event: HistoryEvent) -> None:
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    if "name" in fields and fields["name"] is not None:
        # As in Durable Functions: the orchestrator's name is FunctionName, any other (an
        # activity or sub-orchestration not yet completed, an event) stays Name.
        item["FunctionName" if event.kind == "ExecutionStarted" else "Name"] = fields["name"]
    for source, target in (("input", "Input"), ("result", "Result")):
        if source in fields and fields[source] is not None:
            item[target] = to_plain_json(codec.decode(fields[source]))
    if fields.get("status") is not None:
        item["OrchestrationStatus"] = fields["status"].value
    if fields.get("failure") is not None:
        failure = fields["failure"]
        item["FailureDetails"] = {"ErrorType": failure.error_type, "ErrorMessage": failure.message}
    if fields.get("fire_at") is not None:
        item["FireAt"] = precise_timestamp(fields["fire_at"])
    if fields.get("instance_id") is not None:
        item["InstanceId"] = fields["instance_id"]
    if fields.get("operation") is not None:
        item["Operation"] = fields["operation"]
    if fields.get("lock_set") is not None:
        item["LockSet"] = fields["lock_set"]
    if fields.get("reason") is not None:
        # The Durable Task Framework keeps a termination's reason as the event's Input.
        item["Input" if event.kind == "ExecutionTerminated" else "Reason"] = fields["reason"]
    for source, target in (
        ("event_id", "EventId"),
        ("task_scheduled_id", "TaskScheduledId"),
        ("timer_id", "TimerId"),
    ):
        if fields.get(source) is not None:
            item[target] = fields[source]
