"""The public surface of ``durafn`` changes only on purpose: update this list when it does."""

import durafn

EXPECTED = {
    "App",
    "AuthLevel",
    "AsyncClient",
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
}


def test_exported_names_are_pinned() -> None:
    assert set(durafn.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in durafn.__all__:
        assert getattr(durafn, name) is not None


def test_runtime_status_values_are_the_durable_functions_ones() -> None:
    assert [s.value for s in durafn.RuntimeStatus] == [
        "Pending",
        "Running",
        "Completed",
        "ContinuedAsNew",
        "Failed",
        "Canceled",
        "Terminated",
        "Suspended",
    ]
    assert durafn.RuntimeStatus.COMPLETED == "Completed"
