"""Runtime statuses, failure details and the status record returned to clients."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durafn.core.history import HistoryEvent


class RuntimeStatus(StrEnum):
    """The Durable Functions runtime status values."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"

    @property
    def is_terminal(self) -> bool:
        """True once the instance has finished and takes no more work."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        RuntimeStatus.COMPLETED,
        RuntimeStatus.FAILED,
        RuntimeStatus.CANCELED,
        RuntimeStatus.TERMINATED,
    }
)


@dataclass(frozen=True)
class FailureDetails:
    """What went wrong: the error's type name, its message and the stack trace text."""

    error_type: str
    message: str
    stack_trace: str | None = None
    inner: FailureDetails | None = None

    @classmethod
    def from_exception(cls, exc: BaseException) -> FailureDetails:
        """Capture an exception (and its cause chain) as plain, serializable details."""
        # A TaskFailedError carries the failure of the activity or sub-orchestration it reports.
        details = getattr(exc, "failure_details", None)
        if isinstance(details, FailureDetails):
            nested: FailureDetails | None = details
        elif exc.__cause__ is not None:
            nested = cls.from_exception(exc.__cause__)
        else:
            nested = None
        return cls(
            error_type=type(exc).__name__,
            message=str(exc),
            stack_trace="".join(traceback.format_exception(exc, chain=False)),
            inner=nested,
        )

    def is_caused_by(self, error_type: type[BaseException] | str) -> bool:
        """True when this failure, or one in its cause chain, has the given type name."""
        name = error_type if isinstance(error_type, str) else error_type.__name__
        node: FailureDetails | None = self
        while node is not None:
            if node.error_type == name:
                return True
            node = node.inner
        return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "error_type": self.error_type,
            "message": self.message,
            "stack_trace": self.stack_trace,
            "inner": self.inner.to_dict() if self.inner else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FailureDetails:
        inner = data.get("inner")
        return cls(
            error_type=data["error_type"],
            message=data["message"],
            stack_trace=data.get("stack_trace"),
            inner=cls.from_dict(inner) if inner else None,
        )


@dataclass
class OrchestrationStatus:
    """A snapshot of one instance, as clients see it.

    ``input``, ``output`` and ``custom_status`` are decoded values; ``history`` is only filled
    when asked for (``show_history=True``).
    """

    instance_id: str
    name: str
    runtime_status: RuntimeStatus
    created_time: datetime
    last_updated_time: datetime
    input: Any = None
    output: Any = None
    custom_status: Any = None
    failure_details: FailureDetails | None = None
    parent_instance_id: str | None = None
    scheduled_start_time: datetime | None = None
    history: list[HistoryEvent] | None = field(default=None, repr=False)

    @property
    def is_finished(self) -> bool:
        return self.runtime_status.is_terminal
