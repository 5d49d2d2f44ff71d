"""durafn: Durable Functions for Python, self-hosted."""

from durafn.app import App, AuthLevel
from durafn.client.async_client import AsyncClient, OrchestrationStatusPage
from durafn.client.client import Client
from durafn.client.entities import (
    CleanEntityStorageResult,
    EntityMetadata,
    EntityQueryResult,
    EntityStateResponse,
)
from durafn.core.entities import EntityId
from durafn.core.errors import (
    DurafnError,
    FunctionNotFound,
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceNotRunning,
    InstanceStillRunning,
    NonDeterminismError,
    OperationNotFound,
    OrchestrationStateError,
    PayloadTooLarge,
    StoreError,
    TaskFailedError,
)
from durafn.core.retry import RetryOptions
from durafn.core.status import FailureDetails, OrchestrationStatus, RuntimeStatus
from durafn.executor.context import OrchestrationContext
from durafn.executor.entity_context import EntityContext
from durafn.executor.tasks import CriticalSection, LockTask, Task, TimerTask
from durafn.http.messages import HttpRequest, HttpResponse
from durafn.runtime import Runtime
from durafn.worker.worker import WorkerOptions

__all__ = [
    "App",
    "AsyncClient",
    "AuthLevel",
    "CleanEntityStorageResult",
    "Client",
    "CriticalSection",
    "DurafnError",
    "EntityContext",
    "EntityId",
    "EntityMetadata",
    "EntityQueryResult",
    "EntityStateResponse",
    "FailureDetails",
    "FunctionNotFound",
    "HttpRequest",
    "HttpResponse",
    "InstanceAlreadyExists",
    "InstanceNotFound",
    "InstanceNotRunning",
    "InstanceStillRunning",
    "LockTask",
    "NonDeterminismError",
    "OperationNotFound",
    "OrchestrationContext",
    "OrchestrationStateError",
    "OrchestrationStatus",
    "OrchestrationStatusPage",
    "PayloadTooLarge",
    "RetryOptions",
    "Runtime",
    "RuntimeStatus",
    "StoreError",
    "Task",
    "TaskFailedError",
    "TimerTask",
    "WorkerOptions",
]
