"""OrchestrationContext: what an orchestrator function sees as ``ctx``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from durafn.core import codec
from durafn.core.entities import EntityId, as_entity_id
from durafn.core.errors import OrchestrationStateError
from durafn.core.ids import validate_event_name, validate_instance_id
from durafn.core.retry import RetryOptions
from durafn.core.times import as_utc
from durafn.executor.tasks import LockTask, Task, TimerTask, WhenAllTask, WhenAnyTask

if TYPE_CHECKING:
    from durafn.executor.orchestration import OrchestrationExecutor

_UUID_NAMESPACE = uuid.UUID("9e952958-5e33-4daf-827f-2fa12937b875")


class ContinueAsNewSignal(BaseException):
    """Thrown through user code by ``ctx.continue_as_new``; not an ``Exception`` on purpose."""

    def __init__(self, encoded_input: str | None, preserve_unprocessed_events: bool) -> None:
        super().__init__("continue_as_new")
        self.encoded_input = encoded_input
        self.preserve_unprocessed_events = preserve_unprocessed_events


class ReplaySafeLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that stays silent while the orchestrator replays steps it already logged."""

    def __init__(self, logger: logging.Logger, ctx: OrchestrationContext) -> None:
        super().__init__(logger, {"instance_id": ctx.instance_id})
        self._ctx = ctx

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self._ctx.is_replaying:
            super().log(level, msg, *args, **kwargs)


class OrchestrationContext:
    """The orchestrator's handle on the runtime. Every method is deterministic under replay."""

    def __init__(
        self,
        executor: OrchestrationExecutor,
        name: str,
        encoded_input: str | None,
        parent_instance_id: str | None,
    ) -> None:
        self._executor = executor
        self._name = name
        self._encoded_input = encoded_input
        self._parent_instance_id = parent_instance_id
        self._uuid_counter = 0
        self._logger: ReplaySafeLogger | None = None

    @property
    def instance_id(self) -> str:
        return self._executor.instance_id

    @property
    def name(self) -> str:
        """The orchestrator's registered name."""
        return self._name

    @property
    def parent_instance_id(self) -> str | None:
        """The calling orchestration's instance id, for a sub-orchestration; else ``None``."""
        return self._parent_instance_id

    @property
    def is_replaying(self) -> bool:
        """True while the code re-runs steps already recorded in history."""
        return self._executor.is_replaying

    @property
    def current_utc_datetime(self) -> datetime:
        """The time of the current episode (deterministic: the same on every replay)."""
        return self._executor.current_time

    @property
    def logger(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """A logger that does not repeat itself on replay."""
        if self._logger is None:
            self._logger = ReplaySafeLogger(
                logging.getLogger(f"durafn.orchestration.{self._name}"), self
            )
        return self._logger

    def get_input(self) -> Any:
        """The instance's input, decoded."""
        return codec.decode(self._encoded_input)

    def new_uuid(self) -> uuid.UUID:
        """A UUID that is the same on every replay of this step."""
        self._uuid_counter += 1
        seed = f"{self.instance_id}/{self.current_utc_datetime.isoformat()}/{self._uuid_counter}"
        return uuid.uuid5(_UUID_NAMESPACE, seed)

    def set_custom_status(self, value: Any) -> None:
        """Publish a JSON-able value that clients see in the instance status."""
        self._executor.set_custom_status(codec.encode_optional(value, what="custom status"))

    def call_activity(
        self,
        name: str | Callable[..., Any],
        input: Any = None,
        *,
        retry: RetryOptions | None = None,
    ) -> Task[Any]:
        """Schedule an activity by name (or by its function) and return its task."""
        activity = self._executor.app.name_of(name, "activity")
        self._executor.app.get_activity(activity)
        encoded = codec.encode_optional(input, what=f"input of activity {activity!r}")
        return self._executor.call_activity(activity, encoded, retry)

    def call_activity_with_retry(
        self, name: str | Callable[..., Any], retry_options: RetryOptions, input: Any = None
    ) -> Task[Any]:
        """``call_activity`` with retries (the Durable Functions SDK spelling)."""
        return self.call_activity(name, input, retry=retry_options)

    def call_sub_orchestrator(
        self,
        name: str | Callable[..., Any],
        input: Any = None,
        instance_id: str | None = None,
        *,
        retry: RetryOptions | None = None,
    ) -> Task[Any]:
        """Start a sub-orchestration and return a task for its output."""
        orchestrator = self._executor.app.name_of(name, "orchestrator")
        self._executor.app.get_orchestrator(orchestrator)
        if self._executor.in_critical_section:
            raise OrchestrationStateError(
                "an orchestration may not start a sub-orchestration inside a critical section"
            )
        if instance_id is not None:
            validate_instance_id(instance_id)
        encoded = codec.encode_optional(input, what=f"input of orchestrator {orchestrator!r}")
        return self._executor.call_sub_orchestrator(orchestrator, encoded, instance_id, retry)

    def call_sub_orchestrator_with_retry(
        self,
        name: str | Callable[..., Any],
        retry_options: RetryOptions,
        input: Any = None,
        instance_id: str | None = None,
    ) -> Task[Any]:
        """``call_sub_orchestrator`` with retries (the Durable Functions SDK spelling)."""
        return self.call_sub_orchestrator(name, input, instance_id, retry=retry_options)

    def create_timer(self, fire_at: datetime | timedelta) -> TimerTask:
        """A durable timer that fires at ``fire_at`` (UTC datetime) or after a ``timedelta``."""
        if isinstance(fire_at, timedelta):
            return self._executor.create_timer(self.current_utc_datetime + fire_at)
        if not isinstance(fire_at, datetime):
            raise TypeError(f"create_timer takes a datetime or a timedelta, got {fire_at!r}")
        return self._executor.create_timer(as_utc(fire_at, "fire_at"))

    def wait_for_external_event(self, name: str) -> Task[Any]:
        """A task that completes with the data of the next event raised under ``name``."""
        validate_event_name(name)
        return self._executor.wait_for_event(name)

    def call_entity(
        self, entity_id: EntityId | str, operation_name: str, input: Any = None
    ) -> Task[Any]:
        """Call an operation of an entity and return a task for its result.

        If the operation raises, the task fails with ``TaskFailedError``. Raises
        ``FunctionNotFound`` for an entity name the app does not register, and
        ``OrchestrationStateError`` for an entity not locked, inside a critical section.
        """
        target = self._entity(entity_id)
        operation = _operation_name(operation_name)
        encoded = codec.encode_optional(input, what=f"input of operation {operation!r}")
        return self._executor.call_entity(target.instance_id, operation, encoded)

    def signal_entity(
        self, entity_id: EntityId | str, operation_name: str, input: Any = None
    ) -> None:
        """Send a one-way operation to an entity; nothing to ``yield``."""
        target = self._entity(entity_id)
        operation = _operation_name(operation_name)
        encoded = codec.encode_optional(input, what=f"input of operation {operation!r}")
        self._executor.signal_entity(target.instance_id, operation, encoded)

    def lock(self, *entities: EntityId | str) -> LockTask:
        """Lock entities for a critical section: ``with (yield ctx.lock(a, b)):`` in a generator
        orchestrator, ``async with ctx.lock(a, b):`` in an async one.

        The entities are locked one after the other in a fixed order, so two orchestrations
        never deadlock; while locked they serve only this orchestration. The locks are released
        when the block exits, and whenever the orchestration ends. Inside the block, call only
        the locked entities; signal only others; no nested lock and no sub-orchestration.
        """
        targets = [self._entity(e).instance_id for e in entities]
        return self._executor.lock(targets)

    def _entity(self, entity_id: EntityId | str) -> EntityId:
        target = as_entity_id(entity_id)
        self._executor.app.get_entity(target.name)
        return target

    def task_all(self, tasks: Sequence[Task[Any]]) -> Task[list[Any]]:
        """A task completing with all results in order; it fails as soon as one task fails."""
        return WhenAllTask(tasks)

    def task_any(self, tasks: Sequence[Task[Any]]) -> Task[Task[Any]]:
        """A task completing with the first of ``tasks`` to finish; read its ``.result``."""
        return WhenAnyTask(tasks)

    def continue_as_new(
        self, input: Any = None, *, preserve_unprocessed_events: bool = False
    ) -> None:
        """End this execution now and start the instance afresh with ``input`` and empty history.

        Control does not return: code after this call does not run. Events received but not yet
        awaited are dropped unless ``preserve_unprocessed_events`` is true.
        """
        encoded = codec.encode_optional(input, what="continue_as_new input")
        raise ContinueAsNewSignal(encoded, preserve_unprocessed_events)


def _operation_name(name: object) -> str:
    if not isinstance(name, str) or not name or not name.isprintable():
        raise ValueError(f"operation name must be a non-empty printable string: {name!r}")
    return name
