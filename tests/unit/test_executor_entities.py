"""Orchestrators and entities: call_entity, signal_entity and critical sections (ctx.lock)."""

from __future__ import annotations

from typing import Any

import pytest

import durafn as df
from durafn.core.history import (
    EntityLockGranted,
    EntityOperationCompleted,
    EntityOperationFailed,
    HistoryEvent,
)
from durafn.core.status import RuntimeStatus
from durafn.executor.actions import CallEntity, LockEntities, SignalEntity, UnlockEntity
from durafn.executor.locks import held_locks

from .factories import T0, Run, app_with, enc, failure, new_app, terminated

A = df.EntityId("Account", "a")
B = df.EntityId("account", "b")


def entity_app() -> df.App:
    app = new_app()

    @app.entity
    def account(ctx: df.EntityContext) -> None:
        pass

    return app


def completed(event_id: int, value: Any = None) -> HistoryEvent:
    return EntityOperationCompleted(
        timestamp=T0, task_scheduled_id=event_id, request_id="r", result=enc(value)
    )


def granted(run: Run, event_id: int) -> HistoryEvent:
    lock = run.scheduled(event_id)
    return EntityLockGranted(
        timestamp=T0,
        task_scheduled_id=event_id,
        critical_section_id=lock.critical_section_id,  # type: ignore[attr-defined]
    )


def test_call_entity_returns_the_operation_result(form: str) -> None:
    def gen(ctx):
        ctx.signal_entity(A, "deposit", 5)
        return (yield ctx.call_entity(A, "get"))

    async def coro(ctx):
        ctx.signal_entity(A, "deposit", 5)
        return await ctx.call_entity(A, "get")

    run = Run(app_with(form, gen, coro, app=entity_app()))
    first = run.start()
    signal, call = first.actions
    assert isinstance(signal, SignalEntity) and signal.instance_id == "@account@a"
    assert isinstance(call, CallEntity) and call.event_id == 1 and call.operation == "get"
    assert signal.request_id != call.request_id
    assert run.kinds()[-3:] == [
        "EntityOperationSignaled",
        "EntityOperationCalled",
        "OrchestratorCompleted",
    ]
    run.episode(completed(1, 5))
    assert run.status is RuntimeStatus.COMPLETED and run.output == 5


def test_an_operation_error_is_a_task_failed_error(form: str) -> None:
    def gen(ctx):
        try:
            yield ctx.call_entity(A, "withdraw", 10)
        except df.TaskFailedError as exc:
            return exc.failure_details.message

    async def coro(ctx):
        try:
            await ctx.call_entity(A, "withdraw", 10)
        except df.TaskFailedError as exc:
            return exc.failure_details.message

    run = Run(app_with(form, gen, coro, app=entity_app()))
    run.start()
    run.episode(
        EntityOperationFailed(
            timestamp=T0,
            task_scheduled_id=0,
            request_id="r",
            failure=failure("ValueError", "insufficient funds"),
        )
    )
    assert run.output == "insufficient funds"


def test_signals_of_the_last_episode_are_sent() -> None:
    def gen(ctx):
        yield ctx.call_entity(A, "get")
        ctx.signal_entity(B, "deposit", 1)
        return "done"

    async def coro(ctx):
        return None

    run = Run(app_with("generator", gen, coro, app=entity_app()))
    run.start()
    last = run.episode(completed(0, 1))
    assert last.status is RuntimeStatus.COMPLETED
    assert [type(a) for a in last.actions] == [SignalEntity]
    assert "EntityOperationSignaled" in run.kinds()


def test_critical_section_locks_in_sorted_order_and_releases_on_exit(form: str) -> None:
    def gen(ctx):
        with (yield ctx.lock(B, A)):
            balance = yield ctx.call_entity(A, "get")
        return balance

    async def coro(ctx):
        async with ctx.lock(B, A):
            balance = await ctx.call_entity(A, "get")
        return balance

    run = Run(app_with(form, gen, coro, app=entity_app()))
    [lock] = run.start().actions
    assert isinstance(lock, LockEntities)
    assert lock.lock_set == ("@account@a", "@account@b")
    [call] = run.episode(granted(run, 0)).actions
    assert isinstance(call, CallEntity)
    last = run.episode(completed(1, 42))
    assert run.output == 42
    assert [(type(a), a.instance_id) for a in last.actions] == [  # type: ignore[attr-defined]
        (UnlockEntity, "@account@a"),
        (UnlockEntity, "@account@b"),
    ]
    assert last.locks_to_release == []


def test_locks_are_released_when_the_orchestration_is_terminated() -> None:
    def gen(ctx):
        with (yield ctx.lock(A, B)):
            yield ctx.call_entity(A, "get")

    async def coro(ctx):
        return None

    run = Run(app_with("generator", gen, coro, app=entity_app()))
    run.start()
    section = run.scheduled(0).critical_section_id  # type: ignore[attr-defined]
    run.episode(granted(run, 0))
    last = run.episode(terminated("stop"))
    assert last.status is RuntimeStatus.TERMINATED
    assert last.locks_to_release == [("@account@a", section), ("@account@b", section)]


def test_locks_are_released_when_the_orchestration_fails_inside_the_block(form: str) -> None:
    def gen(ctx):
        with (yield ctx.lock(A)):
            raise RuntimeError("bug")

    async def coro(ctx):
        async with ctx.lock(A):
            raise RuntimeError("bug")

    run = Run(app_with(form, gen, coro, app=entity_app()))
    run.start()
    last = run.episode(granted(run, 0))
    assert last.status is RuntimeStatus.FAILED
    assert [type(a) for a in last.actions] == [UnlockEntity]


def test_continue_as_new_inside_a_critical_section_releases_the_locks() -> None:
    def gen(ctx):
        with (yield ctx.lock(A, B)):
            yield ctx.call_entity(A, "get")
            ctx.signal_entity(df.EntityId("account", "c"), "deposit", 1)
            ctx.continue_as_new(None)

    async def coro(ctx):
        return None

    run = Run(app_with("generator", gen, coro, app=entity_app()))
    run.start()
    run.episode(granted(run, 0))
    last = run.episode(completed(1, 0))
    assert last.status is RuntimeStatus.CONTINUED_AS_NEW
    assert [type(a).__name__ for a in last.actions] == [
        "SignalEntity",
        "UnlockEntity",
        "UnlockEntity",
    ]
    assert last.locks_to_release == []


def test_locks_are_read_back_from_a_history_for_a_runtime_fault() -> None:
    def gen(ctx):
        with (yield ctx.lock(A, B)):
            yield ctx.call_entity(A, "get")

    async def coro(ctx):
        return None

    run = Run(app_with("generator", gen, coro, app=entity_app()))
    run.start()
    section = run.scheduled(0).critical_section_id  # type: ignore[attr-defined]
    assert held_locks(run.history) == [("@account@a", section), ("@account@b", section)]
    run.episode(granted(run, 0))
    run.episode(completed(1, 0))
    assert held_locks(run.history) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("nested", "critical sections cannot be nested"),
        ("call_unlocked", "may call only the entities it locked (@account@a), not '@account@b'"),
        ("signal_locked", "may not signal '@account@a', which it locked"),
        ("sub", "may not start a sub-orchestration inside a critical section"),
    ],
)
def test_rules_inside_a_critical_section(body: str, message: str) -> None:
    def gen(ctx):
        with (yield ctx.lock(A)):
            if body == "nested":
                yield ctx.lock(B)
            elif body == "call_unlocked":
                yield ctx.call_entity(B, "get")
            elif body == "signal_locked":
                ctx.signal_entity(A, "deposit", 1)
            else:
                yield ctx.call_sub_orchestrator("main")

    async def coro(ctx):
        return None

    run = Run(app_with("generator", gen, coro, app=entity_app()))
    run.start()
    run.episode(granted(run, 0))
    assert run.status is RuntimeStatus.FAILED
    details = run.last.failure
    assert details is not None and details.error_type == "OrchestrationStateError"
    assert message in details.message


def test_a_call_before_the_lock_is_granted_is_refused() -> None:
    def gen(ctx):
        section = ctx.lock(A, B)  # requested, not yet waited for
        balance = yield ctx.call_entity(B, "get")
        with (yield section):
            return balance

    async def coro(ctx):
        return None

    run = Run(app_with("generator", gen, coro, app=entity_app()))
    run.start()
    assert run.status is RuntimeStatus.FAILED
    assert not any(isinstance(a, CallEntity) for a in run.last.actions)
    details = run.last.failure
    assert details is not None and "was not granted yet" in details.message


def test_unknown_entity_name_is_refused_at_the_call() -> None:
    def gen(ctx):
        yield ctx.call_entity(df.EntityId("nosuch", "x"), "get")

    async def coro(ctx):
        return None

    run = Run(app_with("generator", gen, coro, app=entity_app()))
    run.start()
    assert run.status is RuntimeStatus.FAILED
    details = run.last.failure
    assert details is not None and details.error_type == "FunctionNotFound"
    assert "entity 'nosuch' is not registered (registered entities: account)" in details.message


def test_entity_ids_are_case_insensitive_by_name() -> None:
    assert df.EntityId("Counter", "K") == df.EntityId("counter", "K")
    assert df.EntityId("Counter", "K").instance_id == "@counter@K"
    assert df.EntityId.from_instance_id("@counter@a@b") == df.EntityId("counter", "a@b")
    with pytest.raises(ValueError, match="must not contain '@'"):
        df.EntityId("a@b", "k")
