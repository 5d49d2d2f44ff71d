"""Actions: the work an episode asks the runtime to do, each recorded as a scheduling event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from durafn.core.history import (
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationSignaled,
    EntityUnlockSent,
    EventSent,
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
)


@dataclass(frozen=True)
class Action:
    """Base of the outgoing actions; ``event_id`` is the step's sequence number."""

    event_id: int

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def matches(self, event: HistoryEvent) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class ScheduleActivity(Action):
    name: str
    input: str | None

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return TaskScheduled(
            timestamp=timestamp, event_id=self.event_id, name=self.name, input=self.input
        )

    def describe(self) -> str:
        return f"CallActivity {self.name!r}"

    def matches(self, event: HistoryEvent) -> bool:
        return isinstance(event, TaskScheduled) and event.name == self.name


@dataclass(frozen=True)
class CreateTimer(Action):
    fire_at: datetime

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return TimerCreated(timestamp=timestamp, event_id=self.event_id, fire_at=self.fire_at)

    def describe(self) -> str:
        return f"CreateTimer at {self.fire_at.isoformat()}"

    def matches(self, event: HistoryEvent) -> bool:
        return isinstance(event, TimerCreated)


@dataclass(frozen=True)
class StartSubOrchestration(Action):
    name: str
    instance_id: str
    input: str | None

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return SubOrchestrationInstanceCreated(
            timestamp=timestamp,
            event_id=self.event_id,
            name=self.name,
            instance_id=self.instance_id,
            input=self.input,
        )

    def describe(self) -> str:
        return f"CallSubOrchestrator {self.name!r}"

    def matches(self, event: HistoryEvent) -> bool:
        return isinstance(event, SubOrchestrationInstanceCreated) and event.name == self.name


@dataclass(frozen=True)
class SendEvent(Action):
    instance_id: str
    name: str
    input: str | None

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return EventSent(
            timestamp=timestamp,
            event_id=self.event_id,
            instance_id=self.instance_id,
            name=self.name,
            input=self.input,
        )

    def describe(self) -> str:
        return f"SendEvent {self.name!r} to {self.instance_id!r}"

    def matches(self, event: HistoryEvent) -> bool:
        return isinstance(event, EventSent) and event.name == self.name


@dataclass(frozen=True)
class CallEntity(Action):
    instance_id: str
    operation: str
    input: str | None
    request_id: str

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return EntityOperationCalled(
            timestamp=timestamp,
            event_id=self.event_id,
            request_id=self.request_id,
            instance_id=self.instance_id,
            operation=self.operation,
            input=self.input,
        )

    def describe(self) -> str:
        return f"CallEntity {self.instance_id!r} {self.operation!r}"

    def matches(self, event: HistoryEvent) -> bool:
        return (
            isinstance(event, EntityOperationCalled)
            and event.instance_id == self.instance_id
            and event.operation == self.operation
        )


@dataclass(frozen=True)
class SignalEntity(Action):
    instance_id: str
    operation: str
    input: str | None
    request_id: str

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return EntityOperationSignaled(
            timestamp=timestamp,
            event_id=self.event_id,
            request_id=self.request_id,
            instance_id=self.instance_id,
            operation=self.operation,
            input=self.input,
        )

    def describe(self) -> str:
        return f"SignalEntity {self.instance_id!r} {self.operation!r}"

    def matches(self, event: HistoryEvent) -> bool:
        return (
            isinstance(event, EntityOperationSignaled)
            and event.instance_id == self.instance_id
            and event.operation == self.operation
        )


@dataclass(frozen=True)
class LockEntities(Action):
    lock_set: tuple[str, ...]
    critical_section_id: str

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return EntityLockRequested(
            timestamp=timestamp,
            event_id=self.event_id,
            critical_section_id=self.critical_section_id,
            lock_set=list(self.lock_set),
        )

    def describe(self) -> str:
        return f"LockEntities {list(self.lock_set)!r}"

    def matches(self, event: HistoryEvent) -> bool:
        return isinstance(event, EntityLockRequested) and tuple(event.lock_set) == self.lock_set


@dataclass(frozen=True)
class UnlockEntity(Action):
    instance_id: str
    critical_section_id: str

    def to_event(self, timestamp: datetime) -> HistoryEvent:
        return EntityUnlockSent(
            timestamp=timestamp,
            event_id=self.event_id,
            critical_section_id=self.critical_section_id,
            instance_id=self.instance_id,
        )

    def describe(self) -> str:
        return f"UnlockEntity {self.instance_id!r}"

    def matches(self, event: HistoryEvent) -> bool:
        return isinstance(event, EntityUnlockSent) and event.instance_id == self.instance_id


def describe_event(event: HistoryEvent) -> str:
    """``TaskScheduled 'charge'``: how a scheduling event is named in error messages."""
    name = getattr(event, "name", None)
    if isinstance(event, EntityOperationCalled | EntityOperationSignaled):
        name = f"{event.instance_id} {event.operation}"
    elif isinstance(event, EntityLockRequested):
        name = ", ".join(event.lock_set)
    elif isinstance(event, EntityUnlockSent):
        name = event.instance_id
    return f"{event.kind} {name!r}" if name is not None else event.kind
