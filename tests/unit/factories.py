"""Tier-1 test helpers: history event factories and a driver that runs an instance episode by
episode, as a worker would, with no store, no clock and no threads.

Factories take Python values and encode payloads with :func:`durafn.core.codec.encode`, so a
test reads ``task_completed(0, {"total": 3})`` rather than hand-written JSON text.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import durafn as df
from durafn.core import codec
from durafn.core.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
    event_to_dict,
)
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.executor.actions import Action
from durafn.executor.episode import EpisodeResult
from durafn.executor.orchestration import OrchestrationExecutor, execute

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
INSTANCE_ID = "order-42"
EXECUTION_ID = "exec-1"
STACK_TRACE = 'Traceback (most recent call last):\n  File "activity.py", line 1\nValueError: boom\n'

# Activities every test app registers. The executor never runs activities, it only checks that
# the name is registered, so their bodies do not matter.
ACTIVITY_NAMES = (
    "say_hello",
    "charge",
    "ship",
    "refund",
    "flaky",
    "notify",
    "get_work",
    "process",
    "approve",
)


# ---------------------------------------------------------------------------------- factories


def started(
    name: str,
    input: Any = None,
    *,
    execution_id: str = EXECUTION_ID,
    parent_instance_id: str | None = None,
    timestamp: datetime = T0,
) -> ExecutionStarted:
    return ExecutionStarted(
        timestamp=timestamp,
        name=name,
        execution_id=execution_id,
        input=codec.encode_optional(input),
        parent_instance_id=parent_instance_id,
    )


def orchestrator_started(t: datetime) -> OrchestratorStarted:
    return OrchestratorStarted(timestamp=t)


def task_scheduled(
    id: int, name: str, input: Any = None, *, timestamp: datetime = T0
) -> TaskScheduled:
    return TaskScheduled(
        timestamp=timestamp, event_id=id, name=name, input=codec.encode_optional(input)
    )


def task_completed(id: int, result: Any = None, *, timestamp: datetime = T0) -> TaskCompleted:
    return TaskCompleted(
        timestamp=timestamp, task_scheduled_id=id, result=codec.encode_optional(result)
    )


def failure(
    error_type: str = "ValueError", message: str = "boom", stack_trace: str | None = STACK_TRACE
) -> FailureDetails:
    return FailureDetails(error_type=error_type, message=message, stack_trace=stack_trace)


def task_failed(
    id: int,
    error_type: str = "ValueError",
    message: str = "boom",
    *,
    stack_trace: str | None = STACK_TRACE,
    timestamp: datetime = T0,
) -> TaskFailed:
    return TaskFailed(
        timestamp=timestamp,
        task_scheduled_id=id,
        failure=failure(error_type, message, stack_trace),
    )


def timer_created(id: int, fire_at: datetime, *, timestamp: datetime = T0) -> TimerCreated:
    return TimerCreated(timestamp=timestamp, event_id=id, fire_at=fire_at)


def timer_fired(id: int, fire_at: datetime, *, timestamp: datetime | None = None) -> TimerFired:
    return TimerFired(timestamp=timestamp or fire_at, timer_id=id, fire_at=fire_at)


def event_raised(name: str, data: Any = None, *, timestamp: datetime = T0) -> EventRaised:
    return EventRaised(timestamp=timestamp, name=name, input=codec.encode_optional(data))


def sub_created(
    id: int, name: str, instance_id: str, input: Any = None, *, timestamp: datetime = T0
) -> SubOrchestrationInstanceCreated:
    return SubOrchestrationInstanceCreated(
        timestamp=timestamp,
        event_id=id,
        name=name,
        instance_id=instance_id,
        input=codec.encode_optional(input),
    )


def sub_completed(
    id: int, result: Any = None, *, timestamp: datetime = T0
) -> SubOrchestrationInstanceCompleted:
    return SubOrchestrationInstanceCompleted(
        timestamp=timestamp, task_scheduled_id=id, result=codec.encode_optional(result)
    )


def sub_failed(
    id: int, error_type: str = "ValueError", message: str = "boom", *, timestamp: datetime = T0
) -> SubOrchestrationInstanceFailed:
    return SubOrchestrationInstanceFailed(
        timestamp=timestamp, task_scheduled_id=id, failure=failure(error_type, message)
    )


def terminated(reason: str | None = None, *, timestamp: datetime = T0) -> ExecutionTerminated:
    return ExecutionTerminated(timestamp=timestamp, reason=reason)


def suspended(reason: str | None = None, *, timestamp: datetime = T0) -> ExecutionSuspended:
    return ExecutionSuspended(timestamp=timestamp, reason=reason)


def resumed(reason: str | None = None, *, timestamp: datetime = T0) -> ExecutionResumed:
    return ExecutionResumed(timestamp=timestamp, reason=reason)


# ---------------------------------------------------------------------------------- apps


def _dummy_activity(name: str) -> Callable[..., Any]:
    def activity(value: Any = None) -> Any:
        return value

    activity.__name__ = name
    return activity


def new_app(activities: Sequence[str] = ACTIVITY_NAMES) -> df.App:
    """An app registering a dummy activity for each name in ``activities``."""
    app = df.App()
    for name in activities:
        app.activity(name=name)(_dummy_activity(name))
    return app


def pick(form: str, generator: Callable[..., Any], coroutine: Callable[..., Any]) -> Any:
    """The orchestrator of the requested form, checking the pair really is one of each."""
    assert inspect.isgeneratorfunction(generator), f"{generator} is not a generator function"
    assert inspect.iscoroutinefunction(coroutine), f"{coroutine} is not an async def"
    assert form in ("generator", "async"), form
    return generator if form == "generator" else coroutine


def app_with(
    form: str,
    generator: Callable[..., Any],
    coroutine: Callable[..., Any],
    *,
    name: str = "main",
    app: df.App | None = None,
) -> df.App:
    """A test app whose orchestrator ``name`` is ``generator`` or ``coroutine`` per ``form``."""
    app = app or new_app()
    app.orchestrator(name=name)(pick(form, generator, coroutine))
    return app


# ---------------------------------------------------------------------------------- driver


def same_result(left: EpisodeResult, right: EpisodeResult) -> list[str]:
    """The differences between two episode results (empty when they are the same)."""
    diffs = []
    left_events = [event_to_dict(e) for e in left.new_events]
    right_events = [event_to_dict(e) for e in right.new_events]
    if left_events != right_events:
        diffs.append(f"new_events:\n  {left_events}\n  {right_events}")
    for attr in (
        "actions",
        "status",
        "output",
        "failure",
        "custom_status",
        "continue_as_new",
        "started",
    ):
        if getattr(left, attr) != getattr(right, attr):
            diffs.append(f"{attr}: {getattr(left, attr)!r} != {getattr(right, attr)!r}")
    return diffs


class Run:
    """Drives one instance episode by episode and keeps its committed history.

    ``mode="sticky"`` keeps one executor alive and feeds it only each episode's new messages (the
    worker's replay cache); ``mode="replay"`` builds a fresh executor per episode that replays the
    committed history (a cache miss). With ``check_replay`` (the default) every sticky episode is
    also run the other way and both results must be identical: turn it off in tests that count
    how often user code runs.

    Each episode happens one second after the previous one unless ``at`` says otherwise.
    """

    def __init__(
        self,
        app: df.App,
        instance_id: str = INSTANCE_ID,
        *,
        mode: str = "sticky",
        check_replay: bool = True,
        start: datetime = T0,
        step: timedelta = timedelta(seconds=1),
    ) -> None:
        assert mode in ("sticky", "replay"), mode
        self.app = app
        self.instance_id = instance_id
        self.mode = mode
        self.check_replay = check_replay and mode == "sticky"
        self.now = start
        self.step = step
        self.history: list[HistoryEvent] = []
        self.results: list[EpisodeResult] = []
        self.executor = OrchestrationExecutor(app, instance_id)

    # ------------------------------------------------------------------ episodes

    def episode(self, *messages: HistoryEvent, at: datetime | None = None) -> EpisodeResult:
        now = at or self.now
        if self.mode == "sticky":
            result = self.executor.run_episode(list(messages), now)
        else:
            result = execute(self.app, self.instance_id, list(self.history), list(messages), now)
        if self.check_replay:
            fresh = execute(self.app, self.instance_id, list(self.history), list(messages), now)
            diffs = same_result(result, fresh)
            assert not diffs, "sticky and replayed episodes differ:\n" + "\n".join(diffs)
        self.history.extend(result.new_events)
        self.results.append(result)
        self.now = max(self.now, now) + self.step
        return result

    def start(self, name: str = "main", input: Any = None, **fields: Any) -> EpisodeResult:
        return self.episode(started(name, input, timestamp=self.now, **fields))

    def complete(self, task_id: int, value: Any = None) -> EpisodeResult:
        """Complete activity (or sub-orchestration) ``#task_id`` with ``value``."""
        if isinstance(self.scheduled(task_id), SubOrchestrationInstanceCreated):
            return self.episode(sub_completed(task_id, value, timestamp=self.now))
        return self.episode(task_completed(task_id, value, timestamp=self.now))

    def fail(
        self, task_id: int, error_type: str = "ValueError", message: str = "boom"
    ) -> EpisodeResult:
        """Fail activity (or sub-orchestration) ``#task_id``."""
        if isinstance(self.scheduled(task_id), SubOrchestrationInstanceCreated):
            return self.episode(sub_failed(task_id, error_type, message, timestamp=self.now))
        return self.episode(task_failed(task_id, error_type, message, timestamp=self.now))

    def fire(self, timer_id: int) -> EpisodeResult:
        """Fire timer ``#timer_id`` in an episode at its due time (or now, if that is later)."""
        created = self.scheduled(timer_id)
        assert isinstance(created, TimerCreated), f"#{timer_id} is {created.kind}, not a timer"
        at = max(self.now, created.fire_at)
        return self.episode(timer_fired(timer_id, created.fire_at, timestamp=at), at=at)

    def raise_event(self, name: str, data: Any = None) -> EpisodeResult:
        return self.episode(event_raised(name, data, timestamp=self.now))

    # ------------------------------------------------------------------ reading the state

    def scheduled(self, event_id: int) -> HistoryEvent:
        """The scheduling event (TaskScheduled, TimerCreated, ...) of step ``#event_id``."""
        for event in self.history:
            if getattr(event, "event_id", None) == event_id:
                return event
        raise AssertionError(f"no step #{event_id} in the history")

    @property
    def last(self) -> EpisodeResult:
        return self.results[-1]

    @property
    def status(self) -> RuntimeStatus:
        return self.last.status

    @property
    def output(self) -> Any:
        """The decoded output of the last episode."""
        return codec.decode(self.last.output)

    @property
    def actions(self) -> list[Action]:
        """Every action of every episode so far."""
        return [action for result in self.results for action in result.actions]

    def kinds(self) -> list[str]:
        return [event.kind for event in self.history]

    def completed_event(self) -> ExecutionCompleted:
        events = [e for e in self.history if isinstance(e, ExecutionCompleted)]
        assert len(events) == 1, self.kinds()
        return events[0]


def enc(value: Any) -> str | None:
    """Shorthand for the codec's encoding of ``value`` (as actions and events carry it)."""
    return codec.encode_optional(value)
