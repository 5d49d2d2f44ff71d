"""History events: the append-only record of an execution, with Durable Task Framework names.

Payloads (``input``, ``result``) are kept as the codec's JSON text, exactly as stored, so replay
never re-encodes a value. Scheduling events carry the action sequence number ``event_id``;
completion events point back at it with ``task_scheduled_id`` or ``timer_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from durafn.core import codec
from durafn.core.status import FailureDetails, RuntimeStatus


@dataclass(frozen=True, kw_only=True)
class HistoryEvent:
    """Base of every history event. ``timestamp`` is when the event happened (UTC)."""

    kind: ClassVar[str] = "HistoryEvent"
    timestamp: datetime


@dataclass(frozen=True, kw_only=True)
class ExecutionStarted(HistoryEvent):
    kind: ClassVar[str] = "ExecutionStarted"
    name: str
    execution_id: str
    input: str | None = None
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None
    scheduled_start_time: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionCompleted(HistoryEvent):
    kind: ClassVar[str] = "ExecutionCompleted"
    status: RuntimeStatus
    result: str | None = None
    failure: FailureDetails | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionTerminated(HistoryEvent):
    kind: ClassVar[str] = "ExecutionTerminated"
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionSuspended(HistoryEvent):
    kind: ClassVar[str] = "ExecutionSuspended"
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionResumed(HistoryEvent):
    kind: ClassVar[str] = "ExecutionResumed"
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class TaskScheduled(HistoryEvent):
    kind: ClassVar[str] = "TaskScheduled"
    event_id: int
    name: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True)
class TaskCompleted(HistoryEvent):
    kind: ClassVar[str] = "TaskCompleted"
    task_scheduled_id: int
    result: str | None = None


@dataclass(frozen=True, kw_only=True)
class TaskFailed(HistoryEvent):
    kind: ClassVar[str] = "TaskFailed"
    task_scheduled_id: int
    failure: FailureDetails


@dataclass(frozen=True, kw_only=True)
class SubOrchestrationInstanceCreated(HistoryEvent):
    kind: ClassVar[str] = "SubOrchestrationInstanceCreated"
    event_id: int
    name: str
    instance_id: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True)
class SubOrchestrationInstanceCompleted(HistoryEvent):
    kind: ClassVar[str] = "SubOrchestrationInstanceCompleted"
    task_scheduled_id: int
    result: str | None = None


@dataclass(frozen=True, kw_only=True)
class SubOrchestrationInstanceFailed(HistoryEvent):
    kind: ClassVar[str] = "SubOrchestrationInstanceFailed"
    task_scheduled_id: int
    failure: FailureDetails


@dataclass(frozen=True, kw_only=True)
class TimerCreated(HistoryEvent):
    kind: ClassVar[str] = "TimerCreated"
    event_id: int
    fire_at: datetime


@dataclass(frozen=True, kw_only=True)
class TimerFired(HistoryEvent):
    kind: ClassVar[str] = "TimerFired"
    timer_id: int
    fire_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrchestratorStarted(HistoryEvent):
    kind: ClassVar[str] = "OrchestratorStarted"


@dataclass(frozen=True, kw_only=True)
class OrchestratorCompleted(HistoryEvent):
    kind: ClassVar[str] = "OrchestratorCompleted"


@dataclass(frozen=True, kw_only=True)
class EventSent(HistoryEvent):
    kind: ClassVar[str] = "EventSent"
    event_id: int
    instance_id: str
    name: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True)
class EventRaised(HistoryEvent):
    kind: ClassVar[str] = "EventRaised"
    name: str
    input: str | None = None


@dataclass(frozen=True, kw_only=True)
class ContinueAsNew(HistoryEvent):
    kind: ClassVar[str] = "ContinueAsNew"
    input: str | None = None


@dataclass(frozen=True, kw_only=True)
class EntityOperationSignaled(HistoryEvent):
    """A one-way operation for entity ``instance_id``: in the sender's history (``event_id``
    is its step) and, as a message, in the entity's inbox. ``parent_*`` name the sender."""

    kind: ClassVar[str] = "EntityOperationSignaled"
    event_id: int
    request_id: str
    instance_id: str
    operation: str
    input: str | None = None
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class EntityOperationCalled(HistoryEvent):
    """A two-way operation: the entity answers with ``EntityOperationCompleted``/``Failed``
    pointing back at ``event_id``."""

    kind: ClassVar[str] = "EntityOperationCalled"
    event_id: int
    request_id: str
    instance_id: str
    operation: str
    input: str | None = None
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class EntityOperationCompleted(HistoryEvent):
    kind: ClassVar[str] = "EntityOperationCompleted"
    task_scheduled_id: int
    request_id: str
    result: str | None = None


@dataclass(frozen=True, kw_only=True)
class EntityOperationFailed(HistoryEvent):
    kind: ClassVar[str] = "EntityOperationFailed"
    task_scheduled_id: int
    request_id: str
    failure: FailureDetails


@dataclass(frozen=True, kw_only=True)
class EntityLockRequested(HistoryEvent):
    """A request to lock every entity of ``lock_set`` (sorted) for critical section
    ``critical_section_id``; it travels along the set, ``position`` being where it is now."""

    kind: ClassVar[str] = "EntityLockRequested"
    event_id: int
    critical_section_id: str
    lock_set: list[str]
    position: int = 0
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class EntityLockGranted(HistoryEvent):
    """Every entity of the critical section is locked (sent by the last one)."""

    kind: ClassVar[str] = "EntityLockGranted"
    task_scheduled_id: int
    critical_section_id: str


@dataclass(frozen=True, kw_only=True)
class EntityUnlockSent(HistoryEvent):
    """The owner releases its lock on entity ``instance_id``."""

    kind: ClassVar[str] = "EntityUnlockSent"
    event_id: int
    critical_section_id: str
    instance_id: str
    parent_instance_id: str | None = None


EVENT_TYPES: dict[str, type[HistoryEvent]] = {
    cls.kind: cls
    for cls in (
        ExecutionStarted,
        ExecutionCompleted,
        ExecutionTerminated,
        ExecutionSuspended,
        ExecutionResumed,
        TaskScheduled,
        TaskCompleted,
        TaskFailed,
        SubOrchestrationInstanceCreated,
        SubOrchestrationInstanceCompleted,
        SubOrchestrationInstanceFailed,
        TimerCreated,
        TimerFired,
        OrchestratorStarted,
        OrchestratorCompleted,
        EventSent,
        EventRaised,
        ContinueAsNew,
        EntityOperationSignaled,
        EntityOperationCalled,
        EntityOperationCompleted,
        EntityOperationFailed,
        EntityLockRequested,
        EntityLockGranted,
        EntityUnlockSent,
    )
}

_DATETIME_FIELDS = frozenset({"timestamp", "fire_at", "scheduled_start_time"})


def _failure_dict(failure: FailureDetails) -> dict[str, Any]:
    return failure.to_dict()


def _status_value(status: RuntimeStatus) -> str:
    return status.value


def _datetime_text(value: datetime) -> str:
    return value.isoformat()


def _utc_or_text(value: datetime) -> datetime | str:
    # orjson writes a UTC datetime as the very text of ``isoformat()`` (checked by a test),
    # in a third of the time; other offsets (which may have seconds) keep the text.
    return value if value.tzinfo is UTC else value.isoformat()


# How a field of an event becomes JSON: as plain values (``event_to_dict``), and as values
# orjson writes itself (``dump_event``). Fields not named here are plain already.
_TO_PLAIN: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(_DATETIME_FIELDS, _datetime_text),
    "failure": _failure_dict,
    "status": _status_value,
}
_TO_ORJSON: dict[str, Callable[[Any], Any]] = {
    **_TO_PLAIN,
    **dict.fromkeys(_DATETIME_FIELDS, _utc_or_text),
}


def _fields(event: HistoryEvent, converters: dict[str, Callable[[Any], Any]]) -> dict[str, Any]:
    # Read from the instance's ``__dict__``, which holds the fields in their declared order
    # (the dataclass's ``__init__`` sets them so): this runs for every event stored.
    out: dict[str, Any] = {"kind": event.kind}
    for name, value in event.__dict__.items():
        if value is None:
            continue
        convert = converters.get(name)
        out[name] = value if convert is None else convert(value)
    return out


def event_to_dict(event: HistoryEvent) -> dict[str, Any]:
    """A JSON-ready dict of ``event`` with its ``kind``; ``None`` fields are left out."""
    return _fields(event, _TO_PLAIN)


def event_from_dict(data: dict[str, Any]) -> HistoryEvent:
    """Rebuild an event written by :func:`event_to_dict`."""
    fields = dict(data)
    kind = fields.pop("kind")
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown history event kind {kind!r}")
    for name in _DATETIME_FIELDS & fields.keys():
        fields[name] = datetime.fromisoformat(fields[name])
    if "failure" in fields:
        fields["failure"] = FailureDetails.from_dict(fields["failure"])
    if "status" in fields:
        fields["status"] = RuntimeStatus(fields["status"])
    return cls(**fields)


def dump_event(event: HistoryEvent) -> str:
    """Serialize one event to compact JSON text (the stored form): the text of
    ``codec.dumps(event_to_dict(event))``, written faster."""
    try:
        return orjson.dumps(_fields(event, _TO_ORJSON)).decode()
    except TypeError:  # an int beyond 64 bits: the codec writes any int
        return codec.dumps(event_to_dict(event))


def load_event(text: str) -> HistoryEvent:
    """Parse the stored form written by :func:`dump_event`."""
    return event_from_dict(codec.loads(text))


def dump_events(events: Sequence[HistoryEvent]) -> str:
    """Serialize events appended together (a checkpoint's) to one text: the JSON array of
    their stored forms, or (one event) its own stored form. One row of a history table holds
    them: a step's four events cost one row, not four."""
    if len(events) == 1:
        return dump_event(events[0])
    try:
        return orjson.dumps([_fields(e, _TO_ORJSON) for e in events]).decode()
    except TypeError:  # an int beyond 64 bits: the codec writes any int
        return codec.dumps([event_to_dict(e) for e in events])


# About the most text one history row holds when a checkpoint appends many events: far below
# what a database takes in one value (1 GB), whatever the events' payloads (16 MiB at most each).
HISTORY_ROW_BYTES = 1 << 20
# A checkpoint with no more events than this appends them in one row (16 payloads at most).
_ONE_ROW_EVENTS = 16


def history_rows(first: int, events: Sequence[HistoryEvent]) -> list[tuple[int, str]]:
    """The history rows of ``events`` appended together from sequence number ``first``: each
    the sequence number of its first event and the text of its events (:func:`dump_events`).
    One row, unless they are many: rows of about :data:`HISTORY_ROW_BYTES` then (an event at
    least each), so that no value nears a database's limit on one value."""
    if len(events) <= _ONE_ROW_EVENTS:
        return [(first, dump_events(events))] if events else []
    rows: list[tuple[int, str]] = []
    texts: list[str] = []
    size, start = 0, first
    for sequence, event in enumerate(events, start=first):
        text = dump_event(event)
        if texts and size + len(text) > HISTORY_ROW_BYTES:
            rows.append((start, _joined(texts)))
            texts, size, start = [], 0, sequence
        texts.append(text)
        size += len(text) + 1
    rows.append((start, _joined(texts)))
    return rows


def _joined(texts: list[str]) -> str:
    # The text ``dump_events`` writes for the events whose stored forms these are.
    return texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"


def load_events(text: str) -> list[HistoryEvent]:
    """Parse the text written by :func:`dump_events` (or :func:`dump_event`)."""
    data = codec.loads(text)
    if isinstance(data, list):
        return [event_from_dict(d) for d in data]
    return [event_from_dict(data)]
