"""The orchestration executor: replays history and runs one episode, with no I/O.

Contract: an executor is built for one instance, :meth:`OrchestrationExecutor.replay` feeds it the
committed history of the current execution, and :meth:`OrchestrationExecutor.run_episode` feeds it
the new messages of one episode and returns the new history events, the outgoing actions and the
resulting status. After an episode the executor holds the state it would have after replaying
the whole history, so a worker may keep it in memory and feed it only the next episode's
messages. Time comes only from ``OrchestratorStarted`` events; the wall clock is never read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durafn.app import App
from durafn.core import codec
from durafn.core.errors import FunctionNotFound, NonDeterminismError, OrchestrationStateError
from durafn.core.history import (
    ContinueAsNew,
    EntityLockGranted,
    EntityOperationCompleted,
    EntityOperationFailed,
    EventRaised,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TimerFired,
)
from durafn.core.retry import RetryOptions
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.executor.actions import (
    Action,
    CallEntity,
    CreateTimer,
    LockEntities,
    ScheduleActivity,
    SignalEntity,
    StartSubOrchestration,
    UnlockEntity,
    describe_event,
)
from durafn.executor.context import ContinueAsNewSignal, OrchestrationContext
from durafn.executor.episode import ContinueAsNewRequest, EpisodeResult
from durafn.executor.locks import held_locks
from durafn.executor.tasks import CriticalSection, LockTask, Task, TimerTask, failed_error

Driver = Generator[Any, Any, Any] | Coroutine[Any, Any, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Messages whose only effect is to complete an open task; they are dropped (not appended to the
# history) when no task with their id is open, which makes duplicate deliveries harmless.
_COMPLETION_ID_FIELD: dict[type[HistoryEvent], str] = {
    TaskCompleted: "task_scheduled_id",
    TaskFailed: "task_scheduled_id",
    SubOrchestrationInstanceCompleted: "task_scheduled_id",
    SubOrchestrationInstanceFailed: "task_scheduled_id",
    TimerFired: "timer_id",
    EntityOperationCompleted: "task_scheduled_id",
    EntityOperationFailed: "task_scheduled_id",
    EntityLockGranted: "task_scheduled_id",
}

_SCHEDULING_KINDS = frozenset(
    {
        "TaskScheduled",
        "TimerCreated",
        "SubOrchestrationInstanceCreated",
        "EventSent",
        "EntityOperationCalled",
        "EntityOperationSignaled",
        "EntityLockRequested",
        "EntityUnlockSent",
    }
)
# Steps recorded as the execution ends (signals sent and locks released by its last episode).
_FINAL_KINDS = frozenset({"EntityOperationSignaled", "EntityUnlockSent"})
_REQUEST_NAMESPACE = uuid.UUID("5c0b2f44-8a1e-4d7b-b0a3-61c9e2f7d845")
_LIFECYCLE_KINDS = frozenset({"ExecutionSuspended", "ExecutionResumed", "ExecutionTerminated"})
# What a suspended instance still applies; everything else waits for the resume.
_RUN_WHILE_SUSPENDED = (
    _LIFECYCLE_KINDS
    | _SCHEDULING_KINDS
    | {
        "OrchestratorStarted",
        "OrchestratorCompleted",
    }
)


@dataclass
class _OpenTask:
    """A task waiting for the event that completes it."""

    task: Task[Any]
    kind: str
    name: str
    retry: _RetryState | None = None
    child_instance_id: str | None = None


@dataclass
class _CriticalSection:
    """The entity locks an orchestration holds or waits for."""

    lock_set: tuple[str, ...]
    section_id: str
    event_id: int
    granted: bool = False


@dataclass
class _RetryState:
    """Book-keeping of a task called with :class:`RetryOptions`."""

    options: RetryOptions
    input: str | None
    instance_id: str | None
    first_attempt_at: datetime
    attempts: int = 1


class OrchestrationExecutor:
    """Runs one orchestration instance by replaying its history. Pure: no I/O, no clock."""

    def __init__(self, app: App, instance_id: str) -> None:
        self.app = app
        self.instance_id = instance_id
        self.history: list[HistoryEvent] = []
        self.is_replaying = False
        self.current_time = _EPOCH
        self._started: ExecutionStarted | None = None
        self._driver: Driver | None = None
        self._waiting_on: Task[Any] | None = None
        self._sequence = 0
        self._pending_actions: dict[int, Action] = {}
        self._open: dict[int, _OpenTask] = {}
        self._event_waiters: dict[str, deque[Task[Any]]] = {}
        self._event_buffer: dict[str, deque[tuple[int, EventRaised]]] = {}
        self._arrivals = 0
        self._suspended = False
        self._suspended_buffer: list[HistoryEvent] = []
        self._custom_status: str | None = None
        self._completion: tuple[RuntimeStatus, str | None, FailureDetails | None] | None = None
        self._continue_as_new: ContinueAsNewRequest | None = None
        self._preserve_events = False
        self._critical: _CriticalSection | None = None
        self._final_actions: list[Action] = []
        self._locks_to_release: list[tuple[str, str]] = []
        self._handlers: dict[str, Callable[[Any], None]] = {
            "OrchestratorStarted": self._on_orchestrator_started,
            "OrchestratorCompleted": _ignore,
            "ExecutionStarted": self._on_execution_started,
            "ExecutionCompleted": _ignore,
            "ContinueAsNew": _ignore,
            "ExecutionTerminated": self._on_terminated,
            "ExecutionSuspended": self._on_suspended,
            "ExecutionResumed": self._on_resumed,
            "TaskScheduled": self._on_scheduled,
            "TimerCreated": self._on_scheduled,
            "SubOrchestrationInstanceCreated": self._on_scheduled,
            "EventSent": self._on_scheduled,
            "EntityOperationCalled": self._on_scheduled,
            "EntityOperationSignaled": self._on_scheduled,
            "EntityLockRequested": self._on_scheduled,
            "EntityUnlockSent": self._on_scheduled,
            "EntityOperationCompleted": self._on_task_completed,
            "EntityOperationFailed": self._on_task_failed,
            "EntityLockGranted": self._on_lock_granted,
            "TaskCompleted": self._on_task_completed,
            "TaskFailed": self._on_task_failed,
            "SubOrchestrationInstanceCompleted": self._on_task_completed,
            "SubOrchestrationInstanceFailed": self._on_task_failed,
            "TimerFired": self._on_timer_fired,
            "EventRaised": self._on_event_raised,
        }

    # ------------------------------------------------------------------ the contract

    def replay(self, history: Sequence[HistoryEvent]) -> None:
        """Rebuild the in-memory state from the committed history of the current execution."""
        self.is_replaying = True
        try:
            for event in history:
                self.history.append(event)
                self._apply(event)
        finally:
            self.is_replaying = False

    def run_episode(self, messages: Sequence[HistoryEvent], now: datetime) -> EpisodeResult:
        """Apply ``messages`` (in arrival order) at time ``now`` and return what the episode did."""
        self.is_replaying = False
        first_new = len(self.history)
        self._record(OrchestratorStarted(timestamp=now))
        applied = 0
        for message in messages:
            if self._completion is not None:
                break
            applied += 1
            if self._accepts(message):
                self._record(message)
        remaining = list(messages[applied:])
        actions: list[Action] = []
        if self._completion is None:
            for action in self._pending_actions.values():
                self.history.append(action.to_event(now))
                actions.append(action)
            self._pending_actions.clear()
        else:
            actions = self._finish_history(now, remaining)
        self.history.append(OrchestratorCompleted(timestamp=now))
        status, output, failure = self._completion or (self._live_status(), None, None)
        return EpisodeResult(
            new_events=self.history[first_new:],
            actions=actions,
            status=status,
            output=output,
            failure=failure,
            custom_status=self._custom_status,
            continue_as_new=self._continue_as_new,
            started=self._started,
            applied=applied,
            children_to_terminate=self._open_children()
            if status is RuntimeStatus.TERMINATED
            else [],
            locks_to_release=self._all_locks_to_release(actions) if self._completion else [],
        )

    def _all_locks_to_release(self, final_actions: list[Action]) -> list[tuple[str, str]]:
        """The locks this execution still holds as it ends: those of its open critical section,
        and those its history says it holds (code that changed, or failed while replaying,
        may never reach the block that took them), less those released by an action."""
        releasing = {
            (a.instance_id, a.critical_section_id)
            for a in final_actions
            if isinstance(a, UnlockEntity)
        }
        locks: list[tuple[str, str]] = []
        for lock in [*self._locks_to_release, *held_locks(self.history)]:
            if lock not in releasing and lock not in locks:
                locks.append(lock)
        return locks

    def _open_children(self) -> list[str]:
        return [e.child_instance_id for e in self._open.values() if e.child_instance_id]

    @property
    def is_finished(self) -> bool:
        return self._completion is not None

    @property
    def awaits_only_activities(self) -> bool:
        """True when the running code can go on only once activities complete: nothing it
        waits for is a timer, an event, a sub-orchestration or an entity, and it is not
        suspended. A worker may then run those activities itself and hold the instance."""
        return (
            self._completion is None
            and not self._suspended
            and bool(self._open)
            and all(entry.kind == "activity" for entry in self._open.values())
            and not any(self._event_waiters.values())
        )

    @property
    def started(self) -> ExecutionStarted | None:
        """The start event of the current execution, once seen."""
        return self._started

    # ------------------------------------------------------------------ called by the context

    def set_custom_status(self, encoded: str | None) -> None:
        self._custom_status = encoded

    def call_activity(
        self, name: str, encoded_input: str | None, retry: RetryOptions | None
    ) -> Task[Any]:
        task: Task[Any] = Task()
        state = self._retry_state(retry, encoded_input, None)
        event_id = self._add_action(lambda i: ScheduleActivity(i, name, encoded_input))
        self._open[event_id] = _OpenTask(task, "activity", name, state)
        return task

    def call_sub_orchestrator(
        self,
        name: str,
        encoded_input: str | None,
        instance_id: str | None,
        retry: RetryOptions | None,
    ) -> Task[Any]:
        task: Task[Any] = Task()
        state = self._retry_state(retry, encoded_input, instance_id)
        event_id, child = self._start_sub_orchestration(name, encoded_input, instance_id)
        self._open[event_id] = _OpenTask(task, "sub-orchestration", name, state, child)
        return task

    def create_timer(self, fire_at: datetime) -> TimerTask:
        task = TimerTask()
        event_id = self._add_action(lambda i: CreateTimer(i, fire_at))
        self._open[event_id] = _OpenTask(task, "timer", "timer")
        return task

    def call_entity(self, target: str, operation: str, encoded_input: str | None) -> Task[Any]:
        critical = self._critical
        if critical is not None and target not in critical.lock_set:
            raise OrchestrationStateError(
                f"inside a critical section an orchestration may call only the entities it "
                f"locked ({', '.join(critical.lock_set)}), not {target!r}"
            )
        if critical is not None and not critical.granted:
            raise OrchestrationStateError(
                f"ctx.lock(...) was not granted yet: wait for it (`with (yield ctx.lock(...))` "
                f"or `async with ctx.lock(...)`) before calling {target!r}"
            )
        task: Task[Any] = Task()
        event_id = self._add_action(
            lambda i: CallEntity(i, target, operation, encoded_input, self._request_id(i))
        )
        self._open[event_id] = _OpenTask(task, "entity operation", f"{target} {operation}")
        return task

    def signal_entity(self, target: str, operation: str, encoded_input: str | None) -> None:
        critical = self._critical
        if critical is not None and target in critical.lock_set:
            raise OrchestrationStateError(
                f"inside a critical section an orchestration may not signal {target!r}, which "
                "it locked: call it (ctx.call_entity) instead"
            )
        self._add_action(
            lambda i: SignalEntity(i, target, operation, encoded_input, self._request_id(i))
        )

    def lock(self, targets: Sequence[str]) -> LockTask:
        if self._critical is not None:
            raise OrchestrationStateError(
                "critical sections cannot be nested: this orchestration already holds (or waits "
                f"for) a lock on {', '.join(self._critical.lock_set)}"
            )
        lock_set = tuple(sorted(set(targets)))
        if not lock_set:
            raise ValueError("ctx.lock needs at least one entity")
        task = LockTask()
        section = self._request_id(self._sequence)
        event_id = self._add_action(lambda i: LockEntities(i, lock_set, section))
        self._critical = _CriticalSection(lock_set, section, event_id)
        self._open[event_id] = _OpenTask(task, "lock", ", ".join(lock_set))
        return task

    @property
    def in_critical_section(self) -> bool:
        return self._critical is not None

    def _release_lock(self, section: str) -> None:
        critical = self._critical
        if critical is None or critical.section_id != section or self._completion is not None:
            return
        self._critical = None
        for target in critical.lock_set:
            self._add_action(functools.partial(_unlock_action, target, section))

    def _request_id(self, event_id: int) -> str:
        execution = self._started.execution_id if self._started else ""
        seed = f"{self.instance_id}/{execution}/{event_id}"
        return uuid.uuid5(_REQUEST_NAMESPACE, seed).hex

    def wait_for_event(self, name: str) -> Task[Any]:
        task: Task[Any] = Task()
        buffered = self._event_buffer.get(name)
        if buffered:
            _, event = buffered.popleft()
            task._complete(codec.decode(event.input))
        else:
            self._event_waiters.setdefault(name, deque()).append(task)
        return task

    # ------------------------------------------------------------------ internals

    def _retry_state(
        self, retry: RetryOptions | None, encoded_input: str | None, instance_id: str | None
    ) -> _RetryState | None:
        if retry is None:
            return None
        if not isinstance(retry, RetryOptions):
            raise TypeError(f"retry must be a durafn.RetryOptions, got {retry!r}")
        return _RetryState(retry, encoded_input, instance_id, self.current_time)

    def _add_action(self, make: Callable[[int], Action]) -> int:
        if self._completion is not None:
            raise OrchestrationStateError("the orchestration has already finished")
        event_id = self._sequence
        self._sequence += 1
        self._pending_actions[event_id] = make(event_id)
        return event_id

    def _start_sub_orchestration(
        self, name: str, encoded_input: str | None, instance_id: str | None
    ) -> tuple[int, str]:
        # A default child id names the execution too, so the children of an execution that
        # continued as new never collide with those of the one before.
        execution = self._started.execution_id[:8] if self._started else "0"
        event_id = self._sequence
        child = instance_id or f"{self.instance_id}:{execution}:{event_id:04d}"
        self._add_action(lambda i: StartSubOrchestration(i, name, child, encoded_input))
        return event_id, child

    def _record(self, event: HistoryEvent) -> None:
        self.history.append(event)
        self._apply(event)

    def _apply(self, event: HistoryEvent) -> None:
        if self._completion is not None:
            if event.kind in _FINAL_KINDS:
                # Recorded (and sent) when it was first run: the code now ends before it.
                recorded = getattr(event, "event_id")  # noqa: B009 - both kinds have one
                self._final_actions = [a for a in self._final_actions if a.event_id != recorded]
                return
            if event.kind in _SCHEDULING_KINDS and self._completion[0] is not RuntimeStatus.FAILED:
                # The history goes on where the code now ends: the code changed.
                self._fail_replay(event)
            return
        if self._suspended and event.kind not in _RUN_WHILE_SUSPENDED:
            self._suspended_buffer.append(event)
            return
        try:
            self._handlers[event.kind](event)
        except NonDeterminismError as exc:
            self._finish(RuntimeStatus.FAILED, None, FailureDetails.from_exception(exc))

    def _fail_replay(self, event: HistoryEvent) -> None:
        event_id: int = getattr(event, "event_id")  # noqa: B009 - every scheduling event has one
        exc = NonDeterminismError(
            f"expected {describe_event(event)} at #{event_id}, but the code did not ask for it "
            f"(it asked for nothing more: it returned). {_CHANGED_CODE_HINT}"
        )
        self._completion = (RuntimeStatus.FAILED, None, FailureDetails.from_exception(exc))
        self._continue_as_new = None
        # Only a successful last episode sends its signals; locks are released regardless.
        self._final_actions = [a for a in self._final_actions if isinstance(a, UnlockEntity)]

    def _accepts(self, message: HistoryEvent) -> bool:
        id_field = _COMPLETION_ID_FIELD.get(type(message))
        if id_field is not None:
            task_id = getattr(message, id_field)
            held = any(
                type(m) is type(message) and getattr(m, id_field) == task_id
                for m in self._suspended_buffer
            )
            return task_id in self._open and not held
        if isinstance(message, ExecutionStarted):
            return self._started is None
        return message.kind in _LIFECYCLE_KINDS or isinstance(message, EventRaised)

    def _live_status(self) -> RuntimeStatus:
        if self._started is None:
            return RuntimeStatus.PENDING
        return RuntimeStatus.SUSPENDED if self._suspended else RuntimeStatus.RUNNING

    def _finish_history(self, now: datetime, unprocessed: list[HistoryEvent]) -> list[Action]:
        assert self._completion is not None
        final, self._final_actions = self._final_actions, []
        for action in final:
            self.history.append(action.to_event(now))
        status, output, failure = self._completion
        request = self._continue_as_new
        if request is not None:
            if self._preserve_events:
                buffered = sorted(
                    (item for queue in self._event_buffer.values() for item in queue),
                    key=lambda item: item[0],
                )
                request.carryover_events = [event for _, event in buffered] + [
                    m for m in unprocessed if isinstance(m, EventRaised)
                ]
            self.history.append(ContinueAsNew(timestamp=now, input=request.input))
        self.history.append(
            ExecutionCompleted(timestamp=now, status=status, result=output, failure=failure)
        )
        return final

    def _finish(
        self, status: RuntimeStatus, output: str | None, failure: FailureDetails | None
    ) -> None:
        if self._completion is not None:
            return
        self._completion = (status, output, failure)
        # Signals of a successful last episode are still sent, and locks are always released.
        sends = status in (RuntimeStatus.COMPLETED, RuntimeStatus.CONTINUED_AS_NEW)
        self._final_actions = [
            a
            for a in self._pending_actions.values()
            if isinstance(a, UnlockEntity) or (sends and isinstance(a, SignalEntity))
        ]
        critical, self._critical = self._critical, None
        if critical is not None:
            self._locks_to_release = [(t, critical.section_id) for t in critical.lock_set]
        self._pending_actions.clear()
        driver, self._driver = self._driver, None
        self._waiting_on = None
        if driver is not None:
            # User cleanup code (finally blocks) must not break the runtime.
            with contextlib.suppress(BaseException):
                driver.close()

    # ------------------------------------------------------------------ driving user code

    def _step(self, value: Any = None, error: BaseException | None = None) -> None:
        # A loop, not recursion: a task that is already complete when yielded (a buffered event,
        # an empty task_all) is answered at once, however many come in a row.
        while (driver := self._driver) is not None:
            try:
                yielded = driver.throw(error) if error is not None else driver.send(value)
            except StopIteration as stop:
                self._complete_with(stop.value)
                return
            except ContinueAsNewSignal as signal:
                self._restart_as_new(signal)
                return
            except BaseException as exc:
                # The code's own failure, even SystemExit or a CancelledError it raised: the
                # executor awaits nothing, so nothing from outside can come through here.
                self._finish(RuntimeStatus.FAILED, None, FailureDetails.from_exception(exc))
                return
            if not isinstance(yielded, Task):
                self._yielded_non_task(driver, yielded)
                return
            if not yielded.is_complete:
                self._feed_awaited_waiters(yielded)
            if not yielded.is_complete:
                self._waiting_on = yielded
                yielded._on_complete(self._resume_after)
                return
            value, error = yielded._result, yielded.exception

    def _yielded_non_task(self, driver: Driver, yielded: Any) -> None:
        if isinstance(yielded, asyncio.Future):
            # asyncio.gather / ensure_future scheduled real asyncio work on the worker's loop;
            # cancel it before it runs, the instance fails below with a clear message.
            yielded.cancel()
            yielded.add_done_callback(_retrieve_outcome)
        hint = (
            "await only durafn tasks in an async orchestrator (ctx.create_timer, not asyncio.sleep)"
            if inspect.iscoroutine(driver)
            else "yield only tasks returned by ctx (call_activity, create_timer, task_all, ...)"
        )
        error_text = f"orchestrator yielded {yielded!r} ({type(yielded).__name__}): {hint}"
        misuse = OrchestrationStateError(error_text)
        self._finish(RuntimeStatus.FAILED, None, FailureDetails.from_exception(misuse))

    def _resume_after(self, task: Task[Any]) -> None:
        if task is not self._waiting_on:
            return
        self._waiting_on = None
        if task.exception is not None:
            self._step(error=task.exception)
        else:
            self._step(value=task._result)

    def _restart_as_new(self, signal: ContinueAsNewSignal) -> None:
        self._preserve_events = signal.preserve_unprocessed_events
        self._continue_as_new = ContinueAsNewRequest(signal.encoded_input)
        self._finish(RuntimeStatus.CONTINUED_AS_NEW, signal.encoded_input, None)

    def _complete_with(self, value: Any) -> None:
        try:
            output = codec.encode_optional(value, what="orchestrator output")
        except (TypeError, ValueError) as exc:
            self._finish(RuntimeStatus.FAILED, None, FailureDetails.from_exception(exc))
            return
        self._finish(RuntimeStatus.COMPLETED, output, None)

    # ------------------------------------------------------------------ event handlers

    def _on_orchestrator_started(self, event: OrchestratorStarted) -> None:
        self.current_time = event.timestamp

    def _on_execution_started(self, event: ExecutionStarted) -> None:
        if self._started is not None:
            return
        self._started = event
        try:
            registered = self.app.get_orchestrator(event.name)
        except FunctionNotFound as exc:
            self._finish(RuntimeStatus.FAILED, None, FailureDetails.from_exception(exc))
            return
        ctx = OrchestrationContext(self, event.name, event.input, event.parent_instance_id)
        try:
            produced = registered.func(ctx)
        except ContinueAsNewSignal as signal:
            self._restart_as_new(signal)
            return
        except BaseException as exc:  # the code's own failure (see ``_step``)
            self._finish(RuntimeStatus.FAILED, None, FailureDetails.from_exception(exc))
            return
        if inspect.isgenerator(produced) or inspect.iscoroutine(produced):
            self._driver = produced
            self._step()
        else:
            self._complete_with(produced)

    def _on_terminated(self, event: ExecutionTerminated) -> None:
        reason = codec.encode_optional(event.reason)
        self._finish(RuntimeStatus.TERMINATED, reason, None)

    def _on_suspended(self, event: ExecutionSuspended) -> None:
        if self._started is not None:
            self._suspended = True

    def _on_resumed(self, event: ExecutionResumed) -> None:
        if not self._suspended:
            return
        self._suspended = False
        buffered, self._suspended_buffer = self._suspended_buffer, []
        for message in buffered:
            self._apply(message)

    def _on_scheduled(self, event: HistoryEvent) -> None:
        event_id: int = getattr(event, "event_id")  # noqa: B009 - every scheduling event has one
        action = self._pending_actions.pop(event_id, None)
        if action is None:
            raise NonDeterminismError(
                f"expected {describe_event(event)} at #{event_id}, but the code did not ask for "
                f"it (it asked for {self._describe_next_action()}). {_CHANGED_CODE_HINT}"
            )
        if not action.matches(event):
            raise NonDeterminismError(
                f"expected {describe_event(event)} at #{event_id}, code asked for "
                f"{action.describe()}. {_CHANGED_CODE_HINT}"
            )

    @staticmethod
    def _awaited_tasks(root: Task[Any] | None) -> set[Task[Any]]:
        """``root`` and every task inside it (for task_all / task_any)."""
        found: set[Task[Any]] = set()
        stack = [root] if root is not None else []
        while stack:
            task = stack.pop()
            found.add(task)
            stack.extend(getattr(task, "children", ()))
        return found

    def _describe_next_action(self) -> str:
        if self._pending_actions:
            return next(iter(self._pending_actions.values())).describe()
        if self._completion is not None or self._driver is None:
            return "nothing more: it returned"
        return "nothing more: it is waiting"

    def _on_task_completed(self, event: TaskCompleted | SubOrchestrationInstanceCompleted) -> None:
        entry = self._open.pop(event.task_scheduled_id, None)
        if entry is not None:
            entry.task._complete(codec.decode(event.result))

    def _on_task_failed(self, event: TaskFailed | SubOrchestrationInstanceFailed) -> None:
        entry = self._open.pop(event.task_scheduled_id, None)
        if entry is None:
            return
        state = entry.retry
        if state is not None:
            elapsed = self.current_time - state.first_attempt_at
            try:
                retry = state.options.should_retry(event.failure, state.attempts, elapsed)
            except BaseException as exc:  # the user's handle= predicate raised
                self._finish(RuntimeStatus.FAILED, None, FailureDetails.from_exception(exc))
                return
            if retry:
                state.attempts += 1
                fire_at = self.current_time + state.options.delay_before(state.attempts)
                timer_id = self._add_action(lambda i: CreateTimer(i, fire_at))
                self._open[timer_id] = entry
                return
        entry.task._fail(failed_error(entry.kind, entry.name, event.failure))

    def _on_lock_granted(self, event: EntityLockGranted) -> None:
        entry = self._open.pop(event.task_scheduled_id, None)
        critical = self._critical
        if entry is None or critical is None or critical.section_id != event.critical_section_id:
            return
        critical.granted = True
        section = critical.section_id
        entry.task._complete(
            CriticalSection(list(critical.lock_set), lambda: self._release_lock(section))
        )

    def _on_timer_fired(self, event: TimerFired) -> None:
        entry = self._open.pop(event.timer_id, None)
        if entry is None:
            return
        state = entry.retry
        if state is not None:
            if entry.kind == "activity":
                event_id = self._add_action(lambda i: ScheduleActivity(i, entry.name, state.input))
            else:
                event_id, entry.child_instance_id = self._start_sub_orchestration(
                    entry.name, state.input, state.instance_id
                )
            self._open[event_id] = entry
            return
        task = entry.task
        if isinstance(task, TimerTask) and task.is_cancelled:
            return
        task._complete(None)

    def _on_event_raised(self, event: EventRaised) -> None:
        # An event goes to a wait the code is awaiting now (oldest first). A wait it abandoned
        # (the loser of an earlier task_any against a timer, say) gets nothing: the event is
        # kept until the code awaits a wait for it again.
        waiters = self._event_waiters.get(event.name)
        if waiters:
            awaited = self._awaited_tasks(self._waiting_on)
            chosen = next((t for t in waiters if t in awaited and not t.is_complete), None)
            if chosen is not None:
                waiters.remove(chosen)
                chosen._complete(codec.decode(event.input))
                return
        self._arrivals += 1
        self._event_buffer.setdefault(event.name, deque()).append((self._arrivals, event))

    def _feed_awaited_waiters(self, root: Task[Any]) -> None:
        """Hand kept events to the waits inside ``root``, which the code is about to await."""
        if not self._event_buffer:
            return
        awaited = self._awaited_tasks(root)
        for name, waiters in self._event_waiters.items():
            buffered = self._event_buffer.get(name)
            for task in list(waiters):
                if not buffered:
                    break
                if task in awaited and not task.is_complete:
                    waiters.remove(task)
                    _, event = buffered.popleft()
                    task._complete(codec.decode(event.input))


_CHANGED_CODE_HINT = (
    "The orchestrator code changed while this instance was in flight; deploy such changes "
    "under a new orchestrator name, or let old instances finish first."
)


def _unlock_action(target: str, section: str, event_id: int) -> UnlockEntity:
    return UnlockEntity(event_id, target, section)


def _retrieve_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _ignore(event: HistoryEvent) -> None:
    return None


def execute(
    app: App,
    instance_id: str,
    past: Sequence[HistoryEvent],
    messages: Sequence[HistoryEvent],
    now: datetime,
) -> EpisodeResult:
    """The executor as one pure function: replay ``past``, then run one episode of ``messages``."""
    executor = OrchestrationExecutor(app, instance_id)
    executor.replay(past)
    return executor.run_episode(messages, now)
