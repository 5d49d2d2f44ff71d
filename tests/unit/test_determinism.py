"""Replaying a history with changed code fails the instance with a message naming both sides."""

from __future__ import annotations

from datetime import timedelta

from durafn.core.history import HistoryEvent
from durafn.core.status import RuntimeStatus
from durafn.executor.actions import ScheduleActivity
from durafn.executor.orchestration import OrchestrationExecutor, execute

from .factories import (
    INSTANCE_ID,
    T0,
    Run,
    app_with,
    enc,
    event_raised,
    orchestrator_started,
    started,
    task_completed,
    task_scheduled,
    timer_created,
    timer_fired,
)

LATER = T0 + timedelta(hours=1)


def _record(app, *steps) -> list[HistoryEvent]:
    """The committed history of running ``app``'s ``main`` through ``steps`` (Run methods)."""
    run = Run(app)
    run.start()
    for step in steps:
        step(run)
    return run.history


def test_changed_activity_name_names_both_sides(form: str) -> None:
    def v1_gen(ctx):
        yield ctx.call_activity("charge")
        yield ctx.call_activity("ship")

    async def v1_coro(ctx):
        await ctx.call_activity("charge")
        await ctx.call_activity("ship")

    def v2_gen(ctx):
        yield ctx.call_activity("ship")

    async def v2_coro(ctx):
        await ctx.call_activity("ship")

    history = _record(app_with(form, v1_gen, v1_coro))
    assert [e.kind for e in history][2] == "TaskScheduled"

    result = execute(
        app_with(form, v2_gen, v2_coro), INSTANCE_ID, history, [task_completed(0)], LATER
    )
    assert result.status is RuntimeStatus.FAILED
    assert result.actions == []
    assert result.failure.error_type == "NonDeterminismError"
    message = result.failure.message
    assert "expected TaskScheduled 'charge' at #0" in message
    assert "CallActivity 'ship'" in message
    assert "new orchestrator name" in message  # the hint says what to do
    # The new message is not applied to a failed instance; the failure is recorded.
    kinds = [e.kind for e in result.new_events]
    assert kinds == ["OrchestratorStarted", "ExecutionCompleted", "OrchestratorCompleted"]
    assert result.new_events[1].failure == result.failure


def test_changed_step_deep_in_the_history(form: str) -> None:
    def v1_gen(ctx):
        a = yield ctx.call_activity("charge")
        b = yield ctx.call_activity("ship", a)
        return b

    async def v1_coro(ctx):
        a = await ctx.call_activity("charge")
        b = await ctx.call_activity("ship", a)
        return b

    def v2_gen(ctx):
        a = yield ctx.call_activity("charge")
        b = yield ctx.call_activity("refund", a)
        return b

    async def v2_coro(ctx):
        a = await ctx.call_activity("charge")
        b = await ctx.call_activity("refund", a)
        return b

    history = _record(app_with(form, v1_gen, v1_coro), lambda r: r.complete(0, 1))
    executor = OrchestrationExecutor(app_with(form, v2_gen, v2_coro), INSTANCE_ID)
    executor.replay(history)
    assert executor.is_finished
    result = executor.run_episode([task_completed(1)], LATER)
    assert result.status is RuntimeStatus.FAILED
    assert "expected TaskScheduled 'ship' at #1, code asked for CallActivity 'refund'" in (
        result.failure.message
    )


def test_timer_replaced_by_an_activity(form: str) -> None:
    def v1_gen(ctx):
        yield ctx.create_timer(timedelta(minutes=10))

    async def v1_coro(ctx):
        await ctx.create_timer(timedelta(minutes=10))

    def v2_gen(ctx):
        yield ctx.call_activity("notify")

    async def v2_coro(ctx):
        await ctx.call_activity("notify")

    history = _record(app_with(form, v1_gen, v1_coro))
    result = execute(app_with(form, v2_gen, v2_coro), INSTANCE_ID, history, [], LATER)
    assert result.status is RuntimeStatus.FAILED
    assert "expected TimerCreated at #0, code asked for CallActivity 'notify'" in (
        result.failure.message
    )


def test_activity_replaced_by_a_sub_orchestration(form: str) -> None:
    def v1_gen(ctx):
        yield ctx.call_activity("ship")

    async def v1_coro(ctx):
        await ctx.call_activity("ship")

    def v2_gen(ctx):
        yield ctx.call_sub_orchestrator("main")

    async def v2_coro(ctx):
        await ctx.call_sub_orchestrator("main")

    history = _record(app_with(form, v1_gen, v1_coro))
    result = execute(app_with(form, v2_gen, v2_coro), INSTANCE_ID, history, [], LATER)
    assert result.status is RuntimeStatus.FAILED
    assert "expected TaskScheduled 'ship' at #0, code asked for CallSubOrchestrator 'main'" in (
        result.failure.message
    )


def test_history_step_the_waiting_code_no_longer_asks_for(form: str) -> None:
    def v1_gen(ctx):
        yield ctx.call_activity("charge")
        yield ctx.call_activity("ship")

    async def v1_coro(ctx):
        await ctx.call_activity("charge")
        await ctx.call_activity("ship")

    def v2_gen(ctx):
        yield ctx.call_activity("charge")
        yield ctx.wait_for_external_event("shipped")

    async def v2_coro(ctx):
        await ctx.call_activity("charge")
        await ctx.wait_for_external_event("shipped")

    history = _record(app_with(form, v1_gen, v1_coro), lambda r: r.complete(0))
    result = execute(
        app_with(form, v2_gen, v2_coro), INSTANCE_ID, history, [event_raised("shipped")], LATER
    )
    assert result.status is RuntimeStatus.FAILED
    message = result.failure.message
    assert "expected TaskScheduled 'ship' at #1, but the code did not ask for it" in message
    assert "nothing more: it is waiting" in message


def test_history_step_replaced_by_fewer_parallel_steps(form: str) -> None:
    def v1_gen(ctx):
        yield ctx.task_all([ctx.call_activity("charge"), ctx.call_activity("ship")])

    async def v1_coro(ctx):
        await ctx.task_all([ctx.call_activity("charge"), ctx.call_activity("ship")])

    def v2_gen(ctx):
        yield ctx.task_all([ctx.call_activity("charge")])

    async def v2_coro(ctx):
        await ctx.task_all([ctx.call_activity("charge")])

    history = _record(app_with(form, v1_gen, v1_coro))
    result = execute(app_with(form, v2_gen, v2_coro), INSTANCE_ID, history, [], LATER)
    assert result.status is RuntimeStatus.FAILED
    assert "expected TaskScheduled 'ship' at #1, but the code did not ask for it" in (
        result.failure.message
    )


def test_history_step_the_returning_code_no_longer_asks_for(form: str) -> None:
    def v1_gen(ctx):
        yield ctx.call_activity("charge")
        yield ctx.call_activity("ship")
        return "v1"

    async def v1_coro(ctx):
        await ctx.call_activity("charge")
        await ctx.call_activity("ship")
        return "v1"

    def v2_gen(ctx):
        yield ctx.call_activity("charge")
        return "v2"

    async def v2_coro(ctx):
        await ctx.call_activity("charge")
        return "v2"

    history = _record(app_with(form, v1_gen, v1_coro), lambda r: r.complete(0))
    result = execute(
        app_with(form, v2_gen, v2_coro), INSTANCE_ID, history, [task_completed(1)], LATER
    )
    assert result.status is RuntimeStatus.FAILED
    assert "expected TaskScheduled 'ship' at #1, but the code did not ask for it" in (
        result.failure.message
    )


def test_code_may_add_steps_after_the_recorded_ones(form: str) -> None:
    def v1_gen(ctx):
        yield ctx.call_activity("charge")

    async def v1_coro(ctx):
        await ctx.call_activity("charge")

    def v2_gen(ctx):
        yield ctx.call_activity("charge")
        yield ctx.call_activity("ship")
        return "shipped"

    async def v2_coro(ctx):
        await ctx.call_activity("charge")
        await ctx.call_activity("ship")
        return "shipped"

    history = _record(app_with(form, v1_gen, v1_coro))
    result = execute(
        app_with(form, v2_gen, v2_coro), INSTANCE_ID, history, [task_completed(0)], LATER
    )
    assert result.status is RuntimeStatus.RUNNING
    assert [a.describe() for a in result.actions] == ["CallActivity 'ship'"]


def test_hand_built_history_with_factories(form: str) -> None:
    """The factories can write a history by hand, as another runtime might have recorded it."""

    def gen(ctx):
        yield ctx.create_timer(timedelta(minutes=5))
        return (yield ctx.call_activity("charge", ctx.get_input()))

    async def coro(ctx):
        await ctx.create_timer(timedelta(minutes=5))
        return await ctx.call_activity("charge", ctx.get_input())

    app = app_with(form, gen, coro)
    fire_at = T0 + timedelta(minutes=5)
    waiting = [orchestrator_started(T0), started("main", 10), timer_created(0, fire_at)]
    result = execute(app, INSTANCE_ID, waiting, [], LATER)
    assert result.status is RuntimeStatus.RUNNING
    assert result.actions == []

    result = execute(app, INSTANCE_ID, waiting, [timer_fired(0, fire_at)], LATER)
    assert result.actions == [ScheduleActivity(1, "charge", enc(10))]

    # A recorded step the code (still waiting for its timer) does not ask for.
    bad = [*waiting, task_scheduled(1, "refund", 10)]
    result = execute(app, INSTANCE_ID, bad, [], LATER)
    assert result.status is RuntimeStatus.FAILED
    assert "expected TaskScheduled 'refund' at #1, but the code did not ask for it" in (
        result.failure.message
    )
    assert "it is waiting" in result.failure.message
