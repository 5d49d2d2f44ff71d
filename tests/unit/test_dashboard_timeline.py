"""The dashboard's timeline: a history read as lanes of spans (pure, no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta

from durafn.core.history import (
    EntityLockGranted,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationCompleted,
    EntityOperationSignaled,
    ExecutionCompleted,
)
from durafn.core.status import RuntimeStatus
from durafn.dashboard.timeline import build_timeline, timeline_to_json

from .factories import (
    T0,
    event_raised,
    orchestrator_started,
    started,
    sub_completed,
    sub_created,
    task_completed,
    task_failed,
    task_scheduled,
    timer_created,
    timer_fired,
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_retries_stay_on_one_lane_as_attempts_with_their_backoffs() -> None:
    history = [
        orchestrator_started(at(0)),
        started("pay", timestamp=at(0)),
        task_scheduled(0, "charge", timestamp=at(0)),
        orchestrator_started(at(1)),
        task_failed(0, timestamp=at(1)),
        timer_created(1, at(3), timestamp=at(1)),
        orchestrator_started(at(3)),
        timer_fired(1, at(3)),
        task_scheduled(2, "charge", timestamp=at(3)),
        orchestrator_started(at(4)),
        task_completed(2, "ok", timestamp=at(4)),
        task_scheduled(3, "ship", timestamp=at(4)),
    ]
    timeline = build_timeline(history, RuntimeStatus.RUNNING, at(0), now=at(10))
    charge, ship = timeline.lanes
    assert (charge.kind, charge.name, charge.attempts) == ("activity", "charge", 2)
    assert [(s.state, s.attempt) for s in charge.spans] == [
        ("failed", 1),
        ("backoff", None),
        ("completed", 2),
    ]
    assert charge.spans[1].start == at(1) and charge.spans[1].end == at(3)
    assert ship.spans[0].state == "running" and ship.spans[0].end is None
    assert timeline.running and timeline.end == at(10)


def test_timers_sub_orchestrations_and_event_waits() -> None:
    history = [
        orchestrator_started(at(0)),
        started("order", timestamp=at(0)),
        timer_created(0, at(2), timestamp=at(0)),
        orchestrator_started(at(2)),
        timer_fired(0, at(2)),
        sub_created(1, "ship", "order-1:child", timestamp=at(2)),
        orchestrator_started(at(5)),
        sub_completed(1, "TRK", timestamp=at(5)),
        orchestrator_started(at(9)),
        event_raised("delivered", timestamp=at(8)),
        timer_created(2, at(60), timestamp=at(9)),
        ExecutionCompleted(timestamp=at(9), status=RuntimeStatus.COMPLETED),
    ]
    timeline = build_timeline(history, RuntimeStatus.COMPLETED, at(0), now=at(100))
    kinds = [(lane.kind, lane.name) for lane in timeline.lanes]
    assert kinds == [
        ("timer", "timer"),
        ("suborchestration", "ship"),
        ("event", "event delivered"),
        ("timer", "timer"),
    ]
    timer, sub, event, late_timer = timeline.lanes
    assert timer.spans[0].state == "fired" and timer.fire_at == at(2)
    assert sub.instance_id == "order-1:child" and sub.spans[0].end == at(5)
    # The wait is drawn from the episode before the one that received the event.
    assert (event.spans[0].start, event.spans[0].end) == (at(5), at(8))
    # A timer still open when the instance finished was cancelled; the timeline ends there.
    assert late_timer.spans[0].state == "cancelled" and late_timer.spans[0].end == at(9)
    assert not timeline.running and timeline.end == at(9)
    document = timeline_to_json(timeline)
    assert document["lanes"][1]["instanceId"] == "order-1:child"
    assert document["end"] == at(9).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_running_instance_with_nothing_scheduled_is_waiting() -> None:
    history = [orchestrator_started(at(0)), started("approve", timestamp=at(0))]
    timeline = build_timeline(history, RuntimeStatus.RUNNING, at(0), now=at(30))
    (lane,) = timeline.lanes
    assert (lane.kind, lane.name, lane.spans[0].state) == (
        "event",
        "waiting for an event",
        "waiting",
    )
    assert lane.spans[0].end is None


def test_entity_calls_and_locks_are_lanes_and_signals_are_markers() -> None:
    history = [
        orchestrator_started(at(0)),
        started("transfer", timestamp=at(0)),
        EntityLockRequested(
            timestamp=at(0), event_id=0, critical_section_id="cs", lock_set=["@account@a"]
        ),
        orchestrator_started(at(1)),
        EntityLockGranted(timestamp=at(1), task_scheduled_id=0, critical_section_id="cs"),
        EntityOperationCalled(
            timestamp=at(1), event_id=1, request_id="r", instance_id="@account@a", operation="get"
        ),
        orchestrator_started(at(2)),
        EntityOperationCompleted(timestamp=at(2), task_scheduled_id=1, request_id="r"),
        EntityOperationSignaled(
            timestamp=at(2), event_id=2, request_id="s", instance_id="@log@x", operation="add"
        ),
    ]
    timeline = build_timeline(history, RuntimeStatus.RUNNING, at(0), now=at(3))
    lock, call = timeline.lanes[:2]
    assert (lock.kind, lock.name, lock.spans[0].end) == ("entity", "lock @account@a", at(1))
    assert (call.name, call.spans[0].state, call.spans[0].end) == (
        "@account@a get",
        "completed",
        at(2),
    )
    assert [m.label for m in timeline.markers] == ["signalled add to @log@x"]
