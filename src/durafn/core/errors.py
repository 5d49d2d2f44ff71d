"""Exception types raised to users of durafn."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durafn.core.status import FailureDetails


class DurafnError(Exception):
    """Base class of every error durafn raises on purpose."""


class InstanceAlreadyExists(DurafnError):
    """An instance with this id exists and has not finished (``start_new`` with a busy id)."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            f"instance {instance_id!r} already exists and is {status}; "
            "wait for it to finish, terminate it, or choose another instance_id"
        )
        self.instance_id = instance_id
        self.status = status


class InstanceNotFound(DurafnError, LookupError):
    """No instance with this id exists in the task hub."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no instance with id {instance_id!r} in this task hub")
        self.instance_id = instance_id


class InstanceNotRunning(DurafnError):
    """The instance has finished (completed, failed or terminated): it takes no more events."""

    def __init__(self, instance_id: str, status: str, action: str) -> None:
        super().__init__(
            f"cannot {action}: instance {instance_id!r} has already finished ({status})"
        )
        self.instance_id = instance_id
        self.status = status


class InstanceStillRunning(DurafnError):
    """Purge was asked for an instance that has not finished yet."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            f"cannot purge instance {instance_id!r}: it is {status}; terminate it first"
        )
        self.instance_id = instance_id
        self.status = status


class FunctionNotFound(DurafnError, LookupError):
    """A function name that the app does not register."""

    def __init__(self, kind: str, name: str, registered: list[str]) -> None:
        known = ", ".join(sorted(registered)) or "none"
        plural = {"activity": "activities", "entity": "entities"}.get(kind, f"{kind}s")
        super().__init__(f"{kind} {name!r} is not registered (registered {plural}: {known})")
        self.kind = kind
        self.name = name


class TaskFailedError(DurafnError):
    """An activity or sub-orchestration failed; raised inside the orchestrator at its ``yield``.

    ``failure_details`` carries the error type, message and stack trace text of the failure.
    """

    def __init__(self, message: str, failure_details: FailureDetails) -> None:
        super().__init__(message)
        self.failure_details = failure_details


class NonDeterminismError(DurafnError):
    """Replaying the orchestrator produced a different step than the one recorded in history."""


class OrchestrationStateError(DurafnError):
    """The orchestrator used the context in a way the runtime cannot honour."""


class LeaseLost(DurafnError):
    """A worker tried to commit work whose lease another worker has taken over (fencing)."""


class PayloadTooLarge(DurafnError, ValueError):
    """An encoded value is larger than the store accepts."""


class StoreError(DurafnError):
    """The store failed or was configured wrongly (bad URL, newer schema, I/O error)."""


class OperationNotFound(DurafnError, LookupError):
    """A class entity was asked for an operation it does not define."""

    def __init__(self, entity: str, operation: str, operations: list[str]) -> None:
        known = ", ".join(sorted(operations)) or "none"
        super().__init__(
            f"entity {entity!r} has no operation {operation!r} (its operations: {known})"
        )
        self.entity = entity
        self.operation = operation
