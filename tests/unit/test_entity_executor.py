"""The entity executor: batches of operations on one entity's state, pure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import durafn as df
from durafn.core import codec
from durafn.core.history import (
    EntityLockGranted,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationCompleted,
    EntityOperationFailed,
    EntityOperationSignaled,
    EntityUnlockSent,
    HistoryEvent,
)
from durafn.executor.entity import EntityBatchResult, SchedulerState, execute_entity

from .factories import T0

COUNTER = "@counter@a"


def counter_app() -> df.App:
    app = df.App()

    @app.entity
    def counter(ctx: df.EntityContext) -> None:
        value = ctx.get_state(lambda: 0)
        op = ctx.operation_name
        if op == "add":
            ctx.set_state(value + ctx.get_input())
        elif op == "get":
            ctx.set_result(value)
        elif op == "delete":
            ctx.delete_state()
        elif op == "add_then_fail":
            ctx.set_state(value + ctx.get_input())
            ctx.signal_entity(df.EntityId("counter", "b"), "add", 1)
            raise ValueError("refused")
        elif op == "forward":
            ctx.signal_entity(df.EntityId("counter", "b"), "add", ctx.get_input())
        elif op == "later":
            ctx.signal_entity(ctx.entity_id, "add", 1, scheduled_time=timedelta(minutes=5))
        elif op == "bad_state":
            ctx.set_state({1, 2})
        elif op == "start":
            ctx.set_result(ctx.start_new_orchestration("main", value))

    @app.orchestrator
    def main(ctx: df.OrchestrationContext) -> Any:
        return None

    @app.entity
    class Account:
        def __init__(self) -> None:
            self.balance = 0

        def deposit(self, amount: int) -> int:
            self.balance += amount
            return self.balance

        def withdraw(self, amount: int) -> int:
            if amount > self.balance:
                raise ValueError("insufficient funds")
            self.balance -= amount
            return self.balance

        def get(self) -> int:
            return self.balance

    return app


def signal(op: str, value: Any = None, *, sender: str | None = None) -> EntityOperationSignaled:
    return EntityOperationSignaled(
        timestamp=T0,
        event_id=-1,
        request_id=f"s-{op}",
        instance_id=COUNTER,
        operation=op,
        input=codec.encode_optional(value),
        parent_instance_id=sender,
    )


def call(
    op: str, value: Any = None, *, caller: str = "orch", event_id: int = 0, target: str = COUNTER
) -> EntityOperationCalled:
    return EntityOperationCalled(
        timestamp=T0,
        event_id=event_id,
        request_id=f"c-{event_id}",
        instance_id=target,
        operation=op,
        input=codec.encode_optional(value),
        parent_instance_id=caller,
        parent_execution_id="e1",
    )


def lock_request(owner: str, lock_set: list[str], position: int = 0) -> EntityLockRequested:
    return EntityLockRequested(
        timestamp=T0,
        event_id=7,
        critical_section_id=f"cs-{owner}",
        lock_set=lock_set,
        position=position,
        parent_instance_id=owner,
        parent_execution_id="e1",
    )


def unlock(owner: str, target: str = COUNTER) -> EntityUnlockSent:
    return EntityUnlockSent(
        timestamp=T0,
        event_id=8,
        critical_section_id=f"cs-{owner}",
        instance_id=target,
        parent_instance_id=owner,
    )


def run(
    messages: list[HistoryEvent], state: str | None = None, *, entity: str = COUNTER
) -> EntityBatchResult:
    return execute_entity(counter_app(), entity, state, messages, T0)


def value_of(result: EntityBatchResult) -> Any:
    return codec.decode(result.state.state)


def test_a_batch_applies_every_operation_in_order() -> None:
    result = run([signal("add", 1)] * 100 + [call("get", event_id=3)])
    assert value_of(result) == 100
    [reply] = result.sends
    assert reply.instance_id == "orch" and reply.execution_id == "e1"
    assert reply.event == EntityOperationCompleted(
        timestamp=T0, task_scheduled_id=3, request_id="c-3", result="100"
    )


def test_state_carries_over_between_batches_through_its_stored_form() -> None:
    first = run([signal("add", 5)])
    second = run([signal("add", 2)], first.state.dump())
    assert value_of(second) == 7
    assert SchedulerState.load(second.state.dump()) == second.state


def test_a_failing_operation_rolls_back_its_own_changes_only() -> None:
    result = run([signal("add", 1), call("add_then_fail", 10, event_id=1), signal("add", 1)])
    assert value_of(result) == 2
    [reply] = result.sends  # the failed operation's signal to counter b was undone too
    assert isinstance(reply.event, EntityOperationFailed)
    assert reply.event.failure.error_type == "ValueError"
    assert reply.event.failure.message == "refused"
    assert [o.failure is not None for o in result.outcomes] == [False, True, False]


def test_non_serializable_state_fails_the_operation_and_keeps_the_state() -> None:
    result = run([signal("add", 3), call("bad_state", event_id=4), call("get", event_id=5)])
    failed, got = (s.event for s in result.sends)
    assert isinstance(failed, EntityOperationFailed)
    assert failed.failure.error_type == "TypeError"
    assert "state of entity '@counter@a'" in failed.failure.message
    assert isinstance(got, EntityOperationCompleted) and got.result == "3"


def test_unknown_entity_name_fails_calls_and_leaves_no_state() -> None:
    result = run([call("add", 1, target="@nosuch@a"), signal("add", 1)], entity="@nosuch@a")
    [reply] = result.sends
    assert isinstance(reply.event, EntityOperationFailed)
    assert reply.event.failure.error_type == "FunctionNotFound"
    assert "entity 'nosuch' is not registered (registered entities: account, counter)" in (
        reply.event.failure.message
    )
    assert result.state.state is None


def test_delete_removes_the_state() -> None:
    result = run([signal("add", 3), signal("delete")])
    assert not result.state.exists and result.state.is_empty
    assert value_of(run([signal("add", 1)], result.state.dump())) == 1


def test_signals_from_an_entity_and_scheduled_signals() -> None:
    result = run([signal("forward", 4), signal("later")])
    forward, later = result.sends
    assert forward.instance_id == "@counter@b" and forward.visible_at is None
    assert isinstance(forward.event, EntityOperationSignaled)
    assert forward.event.parent_instance_id == COUNTER and forward.event.input == "4"
    assert later.instance_id == COUNTER and later.visible_at == T0 + timedelta(minutes=5)


def test_an_entity_starts_an_orchestration() -> None:
    result = run([signal("add", 2), call("start", event_id=1)])
    [start] = result.starts
    assert start.name == "main" and start.input == "2"
    reply = result.sends[0].event
    assert isinstance(reply, EntityOperationCompleted)
    assert codec.decode(reply.result) == start.instance_id


def test_class_entity_operations_and_state() -> None:
    account = "@account@x"
    first = execute_entity(
        counter_app(),
        account,
        None,
        [call("deposit", 10, target=account), call("withdraw", 50, event_id=1, target=account)],
        T0,
    )
    deposited, refused = (s.event for s in first.sends)
    assert isinstance(deposited, EntityOperationCompleted) and deposited.result == "10"
    assert isinstance(refused, EntityOperationFailed)
    assert refused.failure.message == "insufficient funds"
    assert codec.decode(first.state.state) == {"balance": 10}


def test_unknown_operation_of_a_class_entity_is_a_clear_error() -> None:
    account = "@account@x"
    result = execute_entity(
        counter_app(),
        account,
        '{"state":"{\\"balance\\":5}"}',
        [call("withdrawx", 1, target=account)],
        T0,
    )
    [reply] = result.sends
    assert isinstance(reply.event, EntityOperationFailed)
    assert reply.event.failure.error_type == "OperationNotFound"
    assert reply.event.failure.message == (
        "entity 'account' has no operation 'withdrawx' (its operations: deposit, get, withdraw)"
    )
    assert codec.decode(result.state.state) == {"balance": 5}


# ------------------------------------------------------------------------------- locks


def test_lock_is_forwarded_along_the_set_then_granted_by_the_last() -> None:
    lock_set = ["@counter@a", "@counter@b"]
    first = run([lock_request("o1", lock_set)])
    assert first.state.lock_owner == "o1"
    [forward] = first.sends
    assert forward.instance_id == "@counter@b"
    assert isinstance(forward.event, EntityLockRequested) and forward.event.position == 1
    last = run([forward.event], entity="@counter@b")
    [granted] = last.sends
    assert granted.instance_id == "o1" and granted.execution_id == "e1"
    assert granted.event == EntityLockGranted(
        timestamp=T0, task_scheduled_id=7, critical_section_id="cs-o1"
    )


def test_a_locked_entity_serves_only_its_owner_and_defers_the_rest() -> None:
    locked = run([lock_request("o1", [COUNTER]), signal("add", 1), call("add", 10, caller="o1")])
    assert value_of(locked) == 10
    assert locked.state.queue == [signal("add", 1)]
    other = run([lock_request("o2", [COUNTER]), call("add", 100, caller="o2")], locked.state.dump())
    assert value_of(other) == 10 and len(other.state.queue) == 3
    released = run([unlock("o1")], other.state.dump())
    # The deferred messages run in arrival order: the signal, then o2 locks; its call is served.
    assert value_of(released) == 111
    assert released.state.lock_owner == "o2" and released.state.queue == []


def test_unlock_before_its_request_arrives_cancels_the_request() -> None:
    first = run([unlock("gone")])
    assert first.state.released == ["cs-gone"]
    second = run([lock_request("gone", [COUNTER]), signal("add", 1)], first.state.dump())
    assert second.state.lock_owner is None and second.sends == []
    assert value_of(second) == 1 and second.state.released == []


def test_unlock_of_a_deferred_request_drops_it() -> None:
    held = run([lock_request("o1", [COUNTER]), lock_request("o2", [COUNTER]), unlock("o2")])
    assert held.state.lock_owner == "o1" and held.state.queue == []


@pytest.mark.parametrize("text", [None, "", "{}"])
def test_an_entity_without_stored_state_starts_empty(text: str | None) -> None:
    assert SchedulerState.load(text).is_empty


def test_a_class_entity_needs_an_init_without_arguments() -> None:
    app = df.App()

    class Needy:
        def __init__(self, owner: str) -> None:
            self.owner = owner

    with pytest.raises(TypeError, match="class entity Needy must be constructible without"):
        app.entity(Needy)
    assert not app.has_entity("needy")


def test_async_entity_operations_are_refused_at_registration() -> None:
    app = df.App()
    with pytest.raises(TypeError, match="entity operation 'tally' is async"):

        @app.entity
        async def tally(ctx: df.EntityContext) -> None:
            pass

    with pytest.raises(TypeError, match="entity operation 'add' is async"):

        @app.entity
        class Tally:
            def __init__(self) -> None:
                self.value = 0

            async def add(self, amount: int) -> None:
                self.value += amount

    assert app.entity_names == []


def test_a_class_entity_method_may_take_the_context() -> None:
    app = df.App()

    @app.entity
    class Relay:
        def __init__(self) -> None:
            self.forwarded = 0

        def forward(self, amount: int, *, ctx: df.EntityContext) -> str:
            ctx.signal_entity(df.EntityId("counter", ctx.entity_key), "add", amount)
            self.forwarded += amount
            return ctx.operation_name

    result = execute_entity(app, "@relay@k", None, [call("forward", 3, target="@relay@k")], T0)
    signal_sent, reply = result.sends
    assert signal_sent.instance_id == "@counter@k"
    assert isinstance(reply.event, EntityOperationCompleted) and reply.event.result == '"forward"'
    assert codec.decode(result.state.state) == {"forwarded": 3}
