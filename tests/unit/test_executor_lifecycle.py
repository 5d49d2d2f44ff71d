"""continue_as_new, suspend / resume and terminate."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from durafn.core.history import ContinueAsNew, EventRaised
from durafn.core.status import RuntimeStatus
from durafn.executor.actions import ScheduleActivity

from .factories import (
    Run,
    app_with,
    enc,
    event_raised,
    resumed,
    started,
    suspended,
    task_completed,
    terminated,
)

# ---------------------------------------------------------------------------------- continue_as_new


def test_continue_as_new_ends_the_execution_with_the_new_input(form: str) -> None:
    after: list[str] = []

    def gen(ctx):
        n = ctx.get_input()
        yield ctx.call_activity("process", n)
        if n < 3:
            ctx.continue_as_new(n + 1)
            after.append("ran")
        return n

    async def coro(ctx):
        n = ctx.get_input()
        await ctx.call_activity("process", n)
        if n < 3:
            ctx.continue_as_new(n + 1)
            after.append("ran")
        return n

    app = app_with(form, gen, coro)
    run = Run(app, check_replay=False)
    run.start(input=1)
    result = run.complete(0)
    assert result.status is RuntimeStatus.CONTINUED_AS_NEW
    assert result.is_finished
    assert result.actions == []
    assert result.output == enc(2)
    assert result.continue_as_new is not None
    assert result.continue_as_new.input == enc(2)
    assert result.continue_as_new.carryover_events == []
    assert run.kinds()[-3:] == ["ContinueAsNew", "ExecutionCompleted", "OrchestratorCompleted"]
    (marker,) = [e for e in run.history if isinstance(e, ContinueAsNew)]
    assert marker.input == enc(2)
    assert run.completed_event().status is RuntimeStatus.CONTINUED_AS_NEW
    assert after == []

    # The next execution starts from an empty history with the new input.
    second = Run(app, check_replay=False)
    second.episode(started("main", 3, execution_id="exec-2"))
    assert second.last.actions == [ScheduleActivity(0, "process", enc(3))]
    second.complete(0)
    assert second.status is RuntimeStatus.COMPLETED
    assert second.output == 3
    assert after == []


def test_except_exception_cannot_swallow_continue_as_new(form: str) -> None:
    def gen(ctx):
        yield ctx.call_activity("process")
        try:
            ctx.continue_as_new("again")
        except Exception:
            return "swallowed"
        return "fell through"

    async def coro(ctx):
        await ctx.call_activity("process")
        try:
            ctx.continue_as_new("again")
        except Exception:
            return "swallowed"
        return "fell through"

    run = Run(app_with(form, gen, coro))
    run.start()
    result = run.complete(0)
    assert result.status is RuntimeStatus.CONTINUED_AS_NEW
    assert result.continue_as_new.input == enc("again")


def test_continue_as_new_before_the_first_yield(form: str) -> None:
    def gen(ctx):
        if ctx.get_input() == 0:
            ctx.continue_as_new(1)
        yield ctx.create_timer(timedelta(minutes=1))

    async def coro(ctx):
        if ctx.get_input() == 0:
            ctx.continue_as_new(1)
        await ctx.create_timer(timedelta(minutes=1))

    result = Run(app_with(form, gen, coro)).start(input=0)
    assert result.status is RuntimeStatus.CONTINUED_AS_NEW
    assert result.continue_as_new.input == enc(1)
    assert result.actions == []


def _counter_pair(preserve: bool):
    def gen(ctx):
        yield ctx.call_activity("process")
        ctx.continue_as_new(None, preserve_unprocessed_events=preserve)

    async def coro(ctx):
        await ctx.call_activity("process")
        ctx.continue_as_new(None, preserve_unprocessed_events=preserve)

    return gen, coro


def test_preserve_unprocessed_events_carries_events_in_arrival_order(form: str) -> None:
    run = Run(app_with(form, *_counter_pair(preserve=True)))
    run.start()
    run.raise_event("add", 1)
    run.raise_event("note", "x")
    run.raise_event("add", 2)
    # The late event in the same episode, after the completion, is carried over as well.
    result = run.episode(task_completed(0), event_raised("add", 3))
    assert result.status is RuntimeStatus.CONTINUED_AS_NEW
    carried = result.continue_as_new.carryover_events
    assert all(isinstance(e, EventRaised) for e in carried)
    assert [(e.name, e.input) for e in carried] == [
        ("add", enc(1)),
        ("note", enc("x")),
        ("add", enc(2)),
        ("add", enc(3)),
    ]
    # The unprocessed event is not part of the finished history.
    assert run.kinds().count("EventRaised") == 3


def test_carried_events_are_delivered_to_the_next_execution(form: str) -> None:
    def gen(ctx):
        total = ctx.get_input()
        value = yield ctx.wait_for_external_event("add")
        total += value
        if total < 6:
            ctx.continue_as_new(total, preserve_unprocessed_events=True)
        return total

    async def coro(ctx):
        total = ctx.get_input()
        value = await ctx.wait_for_external_event("add")
        total += value
        if total < 6:
            ctx.continue_as_new(total, preserve_unprocessed_events=True)
        return total

    app = app_with(form, gen, coro)
    run = Run(app)
    run.episode(
        started("main", 0), event_raised("add", 1), event_raised("add", 2), event_raised("add", 3)
    )
    assert run.status is RuntimeStatus.CONTINUED_AS_NEW
    assert run.last.continue_as_new.input == enc(1)
    execution = 2
    while run.status is RuntimeStatus.CONTINUED_AS_NEW:
        request = run.last.continue_as_new
        run = Run(app)
        restart = replace(started("main", execution_id=f"exec-{execution}"), input=request.input)
        run.episode(restart, *request.carryover_events)
        execution += 1
    assert run.status is RuntimeStatus.COMPLETED
    assert run.output == 6
    assert execution == 4


def test_without_preserve_buffered_events_are_dropped(form: str) -> None:
    run = Run(app_with(form, *_counter_pair(preserve=False)))
    run.start()
    run.raise_event("add", 1)
    result = run.episode(task_completed(0), event_raised("add", 2))
    assert result.status is RuntimeStatus.CONTINUED_AS_NEW
    assert result.continue_as_new.carryover_events == []


# ------------------------------------------------------------------------------ suspend / resume


def _two_step_pair():
    def gen(ctx):
        first = yield ctx.call_activity("process", "a")
        note = yield ctx.wait_for_external_event("note")
        second = yield ctx.call_activity("process", [first, note])
        return second

    async def coro(ctx):
        first = await ctx.call_activity("process", "a")
        note = await ctx.wait_for_external_event("note")
        second = await ctx.call_activity("process", [first, note])
        return second

    return gen, coro


def test_messages_while_suspended_are_held_until_resumed(form: str) -> None:
    run = Run(app_with(form, *_two_step_pair()))
    run.start()
    result = run.episode(suspended("maintenance"))
    assert result.status is RuntimeStatus.SUSPENDED
    assert not result.is_finished
    assert result.actions == []

    result = run.episode(task_completed(0, "A"), event_raised("note", "hi"))
    assert result.status is RuntimeStatus.SUSPENDED
    assert result.actions == []
    # Held messages are in the history (so replay holds them the same way).
    assert run.kinds()[-4:] == [
        "OrchestratorStarted",
        "TaskCompleted",
        "EventRaised",
        "OrchestratorCompleted",
    ]

    result = run.episode(resumed("done"))
    assert result.status is RuntimeStatus.RUNNING
    assert result.actions == [ScheduleActivity(1, "process", enc(["A", "hi"]))]
    run.complete(1, "B")
    assert run.status is RuntimeStatus.COMPLETED
    assert run.output == "B"


def test_suspend_and_resume_in_one_episode(form: str) -> None:
    run = Run(app_with(form, *_two_step_pair()))
    run.start()
    result = run.episode(suspended(), task_completed(0, "A"), event_raised("note", "n"), resumed())
    assert result.status is RuntimeStatus.RUNNING
    assert result.actions == [ScheduleActivity(1, "process", enc(["A", "n"]))]


def test_resume_without_suspend_changes_nothing(form: str) -> None:
    run = Run(app_with(form, *_two_step_pair()))
    run.start()
    result = run.episode(resumed())
    assert result.status is RuntimeStatus.RUNNING
    assert result.actions == []
    run.complete(0, "A")
    run.raise_event("note", "n")
    assert run.last.actions == [ScheduleActivity(1, "process", enc(["A", "n"]))]


def test_terminate_while_suspended(form: str) -> None:
    run = Run(app_with(form, *_two_step_pair()))
    run.start()
    run.episode(suspended())
    result = run.episode(terminated("stop"))
    assert result.status is RuntimeStatus.TERMINATED
    assert result.output == enc("stop")


def test_duplicate_completion_while_suspended_is_not_appended(form: str) -> None:
    run = Run(app_with(form, *_two_step_pair()))
    run.start()
    run.episode(suspended())
    run.episode(task_completed(0, "A"), task_completed(0, "A-again"))
    assert run.kinds().count("TaskCompleted") == 1


# ---------------------------------------------------------------------------------- terminate


def test_terminate_ends_the_instance_with_the_reason_as_output(form: str) -> None:
    def gen(ctx):
        deadline = ctx.create_timer(timedelta(days=30))
        work = ctx.call_activity("process")
        yield ctx.task_any([deadline, work])
        return "finished"

    async def coro(ctx):
        deadline = ctx.create_timer(timedelta(days=30))
        work = ctx.call_activity("process")
        await ctx.task_any([deadline, work])
        return "finished"

    run = Run(app_with(form, gen, coro))
    run.start()
    # The pending 30-day timer and activity do not keep a terminated instance alive, and a
    # message behind the terminate in the same episode is not applied.
    result = run.episode(terminated("operator asked"), task_completed(1, "late"))
    assert result.status is RuntimeStatus.TERMINATED
    assert result.is_finished
    assert result.actions == []
    assert result.output == enc("operator asked")
    assert run.output == "operator asked"
    assert "TaskCompleted" not in run.kinds()
    assert run.completed_event().status is RuntimeStatus.TERMINATED
    assert run.completed_event().result == enc("operator asked")


def test_terminate_without_reason(form: str) -> None:
    run = Run(app_with(form, *_two_step_pair()))
    run.start()
    result = run.episode(terminated())
    assert result.status is RuntimeStatus.TERMINATED
    assert result.output is None
