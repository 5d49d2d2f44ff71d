"""The timeline of an execution: its history read as lanes of time spans (a Gantt chart).

A pure function of the history, like the executors: no store, no clock (``now`` is given).

* An **activity** or **sub-orchestration** is a lane from its scheduling to its completion.
  Retries stay on the lane of the first attempt: the runtime schedules a backoff timer in the
  episode that saw an attempt fail, and the next attempt (same name) in the episode where that
  timer fired, so the timeline shows attempt 1, a backoff, attempt 2, ...
* An **entity** call (``call_entity``) is a lane from the call to the entity's answer, and a
  critical section's lock request (``ctx.lock``) a lane from the request to the grant; a
  one-way signal is a marker.
* A **timer** is a lane from its creation to its firing; a timer still open when the instance
  ended was cancelled (the loser of a ``task_any``).
* A **wait** for an external event is drawn from the start of the episode before the one that
  received the event (the orchestrator's last chance to start waiting) to the event's arrival.
  History does not record when a wait began, so this is the latest such moment, not a record.
  A running instance with nothing scheduled is drawn as waiting since its last episode.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durafn.core.history import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
)
from durafn.core.status import RuntimeStatus

MAX_LANES = 300


@dataclass
class Span:
    """One bar: ``end`` is ``None`` while it is still open (drawn up to now)."""

    start: datetime
    end: datetime | None
    state: str  # running, completed, failed, backoff, waiting, fired, cancelled, received
    attempt: int | None = None
    label: str | None = None


@dataclass
class Lane:
    kind: str  # activity, suborchestration, entity, timer, event
    name: str
    spans: list[Span] = field(default_factory=list)
    instance_id: str | None = None  # the child of a sub-orchestration lane
    fire_at: datetime | None = None  # when a timer lane's timer is due

    @property
    def attempts(self) -> int:
        return sum(1 for s in self.spans if s.attempt is not None)


@dataclass
class Marker:
    """A moment without duration: suspended, resumed, terminated, an event sent."""

    at: datetime
    label: str


@dataclass
class Timeline:
    start: datetime
    end: datetime
    running: bool
    lanes: list[Lane]
    markers: list[Marker]
    hidden_lanes: int = 0


_COMPLETED = {
    "TaskCompleted": "completed",
    "TaskFailed": "failed",
    "SubOrchestrationInstanceCompleted": "completed",
    "SubOrchestrationInstanceFailed": "failed",
    "EntityOperationCompleted": "completed",
    "EntityOperationFailed": "failed",
    "EntityLockGranted": "completed",
}
_MARKERS = {
    "ExecutionSuspended": "suspended",
    "ExecutionResumed": "resumed",
    "ExecutionTerminated": "terminated",
    "ContinueAsNew": "continued as new",
}


def build_timeline(
    history: list[HistoryEvent], status: RuntimeStatus, created: datetime, now: datetime
) -> Timeline:
    """Lanes and markers of one execution's history (see the module docstring)."""
    builder = _Builder(now)
    for event in history:
        builder.add(event)
    return builder.finish(status, created)


class _Builder:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.lanes: list[Lane] = []
        self.markers: list[Marker] = []
        self.start: datetime | None = None
        self.last_time: datetime | None = None
        self.episode = -1
        self.episode_starts: list[datetime] = []
        # event_id of a scheduling event -> its lane (and span) while it is open
        self.open: dict[int, tuple[Lane, Span]] = {}
        # lanes whose attempt failed in an episode, waiting for their backoff timer
        self.failed_in: dict[int, list[Lane]] = defaultdict(list)
        # lanes whose backoff timer fired in an episode, waiting for their next attempt
        self.retrying_in: dict[int, list[Lane]] = defaultdict(list)
        self.backoff_timers: set[int] = set()

    def add(self, event: HistoryEvent) -> None:
        self.last_time = event.timestamp
        kind = event.kind
        if kind == "OrchestratorStarted":
            self.episode += 1
            self.episode_starts.append(event.timestamp)
        elif isinstance(event, ExecutionStarted):
            self.start = self.start or event.timestamp
        elif isinstance(event, TaskScheduled | SubOrchestrationInstanceCreated):
            self._scheduled(event)
        elif isinstance(event, TimerCreated):
            self._timer_created(event)
        elif kind == "TimerFired":
            self._timer_fired(event)
        elif kind in _COMPLETED:
            self._completed(event, _COMPLETED[kind])
        elif isinstance(event, EventRaised):
            self._event_raised(event)
        elif kind in ("EntityOperationCalled", "EntityLockRequested"):
            self._entity_request(event)
        elif kind == "EntityOperationSignaled":
            operation, target = getattr(event, "operation", ""), getattr(event, "instance_id", "")
            self.markers.append(Marker(event.timestamp, f"signalled {operation} to {target}"))
        elif kind == "EventSent":
            target = getattr(event, "instance_id", "")
            self.markers.append(
                Marker(event.timestamp, f"sent {getattr(event, 'name', '')!s} to {target}")
            )
        elif kind in _MARKERS:
            self.markers.append(Marker(event.timestamp, _MARKERS[kind]))

    def _scheduled(self, event: TaskScheduled | SubOrchestrationInstanceCreated) -> None:
        kind = "activity" if isinstance(event, TaskScheduled) else "suborchestration"
        child = event.instance_id if isinstance(event, SubOrchestrationInstanceCreated) else None
        retrying = self.retrying_in.get(self.episode, [])
        lane = next((ln for ln in retrying if ln.kind == kind and ln.name == event.name), None)
        if lane is not None:
            retrying.remove(lane)
            lane.instance_id = child or lane.instance_id
        else:
            lane = Lane(kind, event.name, instance_id=child)
            self.lanes.append(lane)
        span = Span(event.timestamp, None, "running", attempt=lane.attempts + 1)
        lane.spans.append(span)
        self.open[event.event_id] = (lane, span)

    def _entity_request(self, event: HistoryEvent) -> None:
        if event.kind == "EntityOperationCalled":
            name = f"{getattr(event, 'instance_id', '')} {getattr(event, 'operation', '')}"
        else:
            name = "lock " + ", ".join(getattr(event, "lock_set", []))
        lane = Lane("entity", name)
        span = Span(event.timestamp, None, "running")
        lane.spans.append(span)
        self.lanes.append(lane)
        self.open[getattr(event, "event_id", -1)] = (lane, span)

    def _completed(self, event: HistoryEvent, state: str) -> None:
        scheduled_id = getattr(event, "task_scheduled_id", -1)
        found = self.open.pop(scheduled_id, None)
        if found is None:
            return
        lane, span = found
        span.end, span.state = event.timestamp, state
        if state == "failed":
            self.failed_in[self.episode].append(lane)

    def _timer_created(self, event: TimerCreated) -> None:
        failed = self.failed_in.get(self.episode)
        if failed:
            lane = failed.pop(0)
            self.backoff_timers.add(event.event_id)
            label = "backoff"
        else:
            lane = Lane("timer", "timer", fire_at=event.fire_at)
            self.lanes.append(lane)
            label = None
        span = Span(event.timestamp, None, "waiting", label=label)
        lane.spans.append(span)
        self.open[event.event_id] = (lane, span)

    def _timer_fired(self, event: HistoryEvent) -> None:
        timer_id = getattr(event, "timer_id", -1)
        found = self.open.pop(timer_id, None)
        if found is None:
            return
        lane, span = found
        span.end = event.timestamp
        if timer_id in self.backoff_timers:
            span.state = "backoff"
            self.retrying_in[self.episode].append(lane)
        else:
            span.state = "fired"

    def _event_raised(self, event: EventRaised) -> None:
        # The episode before the one applying the event: the last time the code could have
        # started waiting for it.
        previous = self.episode_starts[-2] if len(self.episode_starts) >= 2 else None
        start = previous if previous is not None and previous < event.timestamp else None
        lane = Lane("event", f"event {event.name}")
        lane.spans.append(Span(start or event.timestamp, event.timestamp, "received"))
        self.lanes.append(lane)

    def finish(self, status: RuntimeStatus, created: datetime) -> Timeline:
        start = self.start or created
        running = not status.is_terminal
        end = self.now if running else (self.last_time or start)
        if not running:
            for _, span in self.open.values():
                span.end, span.state = end, "cancelled"
        idle = running and not self.open and status is not RuntimeStatus.PENDING
        if idle and self.episode_starts:
            lane = Lane("event", "waiting for an event")
            lane.spans.append(Span(self.episode_starts[-1], None, "waiting"))
            self.lanes.append(lane)
        hidden = max(0, len(self.lanes) - MAX_LANES)
        return Timeline(
            start, max(end, start), running, self.lanes[:MAX_LANES], self.markers, hidden
        )


def timeline_to_json(timeline: Timeline) -> dict[str, Any]:
    """The timeline as the dashboard's JSON (times as ISO 8601 text with microseconds)."""
    return {
        "start": _time(timeline.start),
        "end": _time(timeline.end),
        "running": timeline.running,
        "hiddenLanes": timeline.hidden_lanes,
        "lanes": [
            {
                "kind": lane.kind,
                "name": lane.name,
                "instanceId": lane.instance_id,
                "fireAt": _time(lane.fire_at),
                "attempts": lane.attempts,
                "spans": [
                    {
                        "start": _time(span.start),
                        "end": _time(span.end),
                        "state": span.state,
                        "attempt": span.attempt,
                        "label": span.label,
                    }
                    for span in lane.spans
                ],
            }
            for lane in timeline.lanes
        ],
        "markers": [{"at": _time(m.at), "label": m.label} for m in timeline.markers],
    }


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
