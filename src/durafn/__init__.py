"""durafn: Durable Functions for Python, self-hosted."""

from durafn.app import App
from durafn.core.errors import (
    DurafnError,
    FunctionNotFound,
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceNotRunning,
    InstanceStillRunning,
    NonDeterminismError,
    OrchestrationStateError,
    PayloadTooLarge,
    StoreError,
    TaskFailedError,
)
from durafn.core.retry import RetryOptions
from durafn.core.status import FailureDetails, OrchestrationStatus, RuntimeStatus
from durafn.executor.context import OrchestrationContext
from durafn.executor.tasks import Task, TimerTask

__all__ = [
    "App",
    "DurafnError",
    "FailureDetails",
    "FunctionNotFound",
    "InstanceAlreadyExists",
    "InstanceNotFound",
    "InstanceNotRunning",
    "InstanceStillRunning",
    "NonDeterminismError",
    "OrchestrationContext",
    "OrchestrationStateError",
    "OrchestrationStatus",
    "PayloadTooLarge",
    "RetryOptions",
    "RuntimeStatus",
    "StoreError",
    "Task",
    "TaskFailedError",
    "TimerTask",
]
