"""The JSON the dashboard's pages read: instance rows, an instance's detail, its history."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from durafn.core import codec
from durafn.core.history import HistoryEvent
from durafn.core.status import FailureDetails, OrchestrationStatus
from durafn.http.status_json import status_to_json, to_plain_json

_PAYLOAD_FIELDS = ("input", "result")
# Fields shown by their own column (or not at all) rather than among an event's details.
_OWN_COLUMNS = frozenset({"timestamp", "name", "event_id", "task_scheduled_id", "timer_id"})


def precise(moment: datetime | None) -> str | None:
    """UTC with microseconds, so that durations under a second can be shown."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def instance_row(status: OrchestrationStatus) -> dict[str, Any]:
    """One row of the instance list."""
    return {
        "instanceId": status.instance_id,
        "name": status.name,
        "runtimeStatus": status.runtime_status.value,
        "createdTime": precise(status.created_time),
        "lastUpdatedTime": precise(status.last_updated_time),
        "customStatus": to_plain_json(status.custom_status),
        "parentInstanceId": status.parent_instance_id,
    }


def instance_detail(status: OrchestrationStatus) -> dict[str, Any]:
    """The management API's status document, with precise times, the parent and the whole
    failure (stack traces and causes)."""
    document = status_to_json(dataclasses.replace(status, history=None))
    document.update(instance_row(status))
    document["scheduledStartTime"] = precise(status.scheduled_start_time)
    document["failure"] = failure_json(status.failure_details)
    return document


def failure_json(failure: FailureDetails | None) -> dict[str, Any] | None:
    if failure is None:
        return None
    return {
        "errorType": failure.error_type,
        "errorMessage": failure.message,
        "stackTrace": failure.stack_trace,
        "inner": failure_json(failure.inner),
    }


def history_json(history: list[HistoryEvent]) -> list[dict[str, Any]]:
    """Every event of the execution, episode markers included, with decoded payloads."""
    return [_event_json(index, event) for index, event in enumerate(history)]


def _event_json(index: int, event: HistoryEvent) -> dict[str, Any]:
    item: dict[str, Any] = {
        "index": index,
        "eventType": event.kind,
        "timestamp": precise(event.timestamp),
        # An entity operation is named by its operation.
        "name": getattr(event, "name", None) or getattr(event, "operation", None),
        "eventId": getattr(event, "event_id", None),
        "taskScheduledId": getattr(event, "task_scheduled_id", getattr(event, "timer_id", None)),
    }
    details: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if value is None or f.name in _OWN_COLUMNS:
            continue
        if f.name in _PAYLOAD_FIELDS:
            value = codec.decode(value)
        elif isinstance(value, FailureDetails):
            value = failure_json(value)
        elif isinstance(value, datetime):
            value = precise(value)
        details[f.name] = to_plain_json(value)
    item["details"] = details
    return item
