"""EntityContext: what an entity function sees as ``ctx`` while it handles one operation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from durafn.core import codec
from durafn.core.entities import EntityId, as_entity_id
from durafn.core.ids import validate_instance_id
from durafn.core.times import as_utc

if TYPE_CHECKING:
    from durafn.executor.entity import EntityExecutor

_MISSING: Any = object()


class EntityContext:
    """The entity's handle on its state and on the runtime, for one operation.

    Changes made by an operation (state, signals, orchestrations started) take effect only
    if the operation returns; if it raises, they are all undone and the caller (if any) gets
    the error.
    """

    def __init__(
        self,
        executor: EntityExecutor,
        operation: str,
        encoded_input: str | None,
        state: str | None,
        decoded: Any = _MISSING,
    ) -> None:
        self._executor = executor
        self._operation = operation
        self._encoded_input = encoded_input
        self._stored = state
        self._value: Any = decoded
        self._touched = decoded is not _MISSING
        self._assigned = False
        self._deleted = False
        self._result: Any = None
        self._has_result = False

    @property
    def entity_id(self) -> EntityId:
        return self._executor.entity_id

    @property
    def entity_name(self) -> str:
        """The entity's name (lowercase)."""
        return self._executor.entity_id.name

    @property
    def entity_key(self) -> str:
        return self._executor.entity_id.key

    @property
    def operation_name(self) -> str:
        """The operation being handled."""
        return self._operation

    @property
    def has_state(self) -> bool:
        """True when the entity has a state (set and not deleted)."""
        if self._deleted:
            return False
        return self._assigned or self._stored is not None

    def get_input(self) -> Any:
        """The operation's input, decoded (``None`` when there is none)."""
        return codec.decode(self._encoded_input)

    def get_state(self, initializer: Callable[[], Any] | Any = None) -> Any:
        """The entity's state; when it has none, ``initializer()`` (or ``initializer`` itself
        when it is not callable). The initial value is not stored until ``set_state``."""
        if self._deleted or (not self._touched and self._stored is None):
            return initializer() if callable(initializer) else initializer
        if not self._touched:
            self._value = codec.decode(self._stored)
            self._touched = True
        return self._value

    def set_state(self, value: Any) -> None:
        """Replace the entity's state (it must be encodable; checked when the operation ends)."""
        self._value = value
        self._touched = self._assigned = True
        self._deleted = False

    def delete_state(self) -> None:
        """Delete the state: the entity no longer exists (until an operation sets one)."""
        self._value = None
        self._touched = False
        self._assigned = False
        self._deleted = True

    def set_result(self, value: Any) -> None:
        """The value returned to a caller (``call_entity``); ignored for signals."""
        self._result = value
        self._has_result = True

    def signal_entity(
        self,
        entity_id: EntityId | str,
        operation_name: str,
        input: Any = None,
        *,
        scheduled_time: datetime | timedelta | None = None,
    ) -> None:
        """Send a one-way operation to an entity (this one too), at once or at
        ``scheduled_time`` (a UTC datetime, or a delay)."""
        target = as_entity_id(entity_id)
        if not isinstance(operation_name, str) or not operation_name:
            raise ValueError(f"operation name must be a non-empty string: {operation_name!r}")
        encoded = codec.encode_optional(input, what=f"input of operation {operation_name!r}")
        at: datetime | None = None
        if isinstance(scheduled_time, timedelta):
            at = self._executor.now + scheduled_time
        elif scheduled_time is not None:
            at = as_utc(scheduled_time, "scheduled_time")
        self._executor.send_signal(target, operation_name, encoded, at)

    def start_new_orchestration(
        self, name: str, input: Any = None, instance_id: str | None = None
    ) -> str:
        """Start an orchestration (fire and forget) and return its instance id."""
        self._executor.app.get_orchestrator(name)
        if instance_id is not None:
            validate_instance_id(instance_id)
        encoded = codec.encode_optional(input, what=f"input of orchestrator {name!r}")
        return self._executor.start_orchestration(name, encoded, instance_id)

    # ------------------------------------------------------------------ used by the executor

    def _final_state(self) -> tuple[str | None, Any]:
        """The state to store after the operation (encoded) and its decoded value."""
        if self._deleted:
            return None, _MISSING
        if self._touched:
            what = f"state of entity {self.entity_id.instance_id!r}"
            return codec.encode(self._value, what=what), self._value
        return self._stored, _MISSING
