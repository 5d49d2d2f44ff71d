"""Timers, external events, and the task_all / task_any combinators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

import durafn as df
from durafn.core.status import RuntimeStatus
from durafn.executor.actions import CreateTimer, ScheduleActivity

from .factories import T0, Run, app_with, enc, event_raised, started, task_completed

# ---------------------------------------------------------------------------------- timers


@pytest.mark.parametrize(
    ("fire_at", "expected"),
    [
        (timedelta(hours=2), T0 + timedelta(hours=2)),
        (datetime(2026, 3, 1, 8, 30, tzinfo=UTC), datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        # A naive datetime is read as UTC; an aware one is converted to UTC.
        (datetime(2026, 3, 1, 8, 30), datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        (
            datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 3, 1, 8, 30, tzinfo=UTC),
        ),
    ],
    ids=["timedelta", "utc", "naive", "offset"],
)
def test_create_timer(form: str, fire_at, expected: datetime) -> None:
    def gen(ctx):
        result = yield ctx.create_timer(fire_at)
        return [result, ctx.current_utc_datetime]

    async def coro(ctx):
        result = await ctx.create_timer(fire_at)
        return [result, ctx.current_utc_datetime]

    run = Run(app_with(form, gen, coro))
    result = run.start()
    assert result.actions == [CreateTimer(0, expected)]
    assert result.status is RuntimeStatus.RUNNING
    assert run.scheduled(0).fire_at == expected
    assert run.scheduled(0).fire_at.tzinfo == UTC
    fired = run.fire(0)
    assert fired.status is RuntimeStatus.COMPLETED
    assert run.output == [None, expected]


def test_create_timer_refuses_other_types(form: str) -> None:
    def gen(ctx):
        yield ctx.create_timer(3600)

    async def coro(ctx):
        await ctx.create_timer(3600)

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "TypeError"
    assert "create_timer takes a datetime or a timedelta" in result.failure.message


def test_cancelled_timer_firing_is_ignored(form: str) -> None:
    def gen(ctx):
        deadline = ctx.create_timer(timedelta(hours=1))
        work = ctx.call_activity("process")
        winner = yield ctx.task_any([work, deadline])
        assert winner is work
        deadline.cancel()
        assert deadline.is_cancelled
        go = yield ctx.wait_for_external_event("go")
        return [work.result, go]

    async def coro(ctx):
        deadline = ctx.create_timer(timedelta(hours=1))
        work = ctx.call_activity("process")
        winner = await ctx.task_any([work, deadline])
        assert winner is work
        deadline.cancel()
        assert deadline.is_cancelled
        go = await ctx.wait_for_external_event("go")
        return [work.result, go]

    run = Run(app_with(form, gen, coro))
    assert [type(a) for a in run.start().actions] == [CreateTimer, ScheduleActivity]
    assert run.complete(1, "done").status is RuntimeStatus.RUNNING

    fired = run.fire(0)
    assert fired.status is RuntimeStatus.RUNNING
    assert fired.actions == []
    assert "TimerFired" in run.kinds()

    run.raise_event("go", "now")
    assert run.status is RuntimeStatus.COMPLETED
    assert run.output == ["done", "now"]


def test_cancel_after_the_timer_fired_changes_nothing() -> None:
    timer = df.TimerTask()
    timer._complete(None)
    timer.cancel()
    assert not timer.is_cancelled
    assert timer.is_complete


# ---------------------------------------------------------------------------------- events


def test_wait_for_external_event(form: str) -> None:
    def gen(ctx):
        return (yield ctx.wait_for_external_event("approval"))

    async def coro(ctx):
        return await ctx.wait_for_external_event("approval")

    run = Run(app_with(form, gen, coro))
    result = run.start()
    assert result.actions == []
    assert result.status is RuntimeStatus.RUNNING
    assert run.raise_event("other", 1).status is RuntimeStatus.RUNNING
    result = run.raise_event("approval", {"by": "ann", "ok": True})
    assert result.status is RuntimeStatus.COMPLETED
    assert run.output == {"by": "ann", "ok": True}
    assert run.kinds().count("EventRaised") == 2


def test_events_raised_before_waiting_are_buffered_in_arrival_order(form: str) -> None:
    def gen(ctx):
        yield ctx.call_activity("process")
        items = []
        for _ in range(3):
            items.append((yield ctx.wait_for_external_event("item")))
        other = yield ctx.wait_for_external_event("other")
        return [items, other]

    async def coro(ctx):
        await ctx.call_activity("process")
        items = []
        for _ in range(3):
            items.append(await ctx.wait_for_external_event("item"))
        other = await ctx.wait_for_external_event("other")
        return [items, other]

    run = Run(app_with(form, gen, coro))
    run.start()
    run.raise_event("item", 1)
    run.episode(event_raised("other", "x"), event_raised("item", 2))
    run.raise_event("item", 3)
    assert run.status is RuntimeStatus.RUNNING
    result = run.complete(0)
    assert result.status is RuntimeStatus.COMPLETED
    assert run.output == [[1, 2, 3], "x"]


@pytest.mark.parametrize("event_first", [False, True])
def test_event_arriving_with_the_start_message_is_delivered(form: str, event_first: bool) -> None:
    def gen(ctx):
        return (yield ctx.wait_for_external_event("go"))

    async def coro(ctx):
        return await ctx.wait_for_external_event("go")

    messages = [started("main"), event_raised("go", "data")]
    if event_first:
        messages.reverse()
    run = Run(app_with(form, gen, coro))
    result = run.episode(*messages)
    assert result.status is RuntimeStatus.COMPLETED
    assert run.output == "data"


def test_two_waiters_for_the_same_event_are_served_in_order(form: str) -> None:
    def gen(ctx):
        first = ctx.wait_for_external_event("vote")
        second = ctx.wait_for_external_event("vote")
        return (yield ctx.task_all([first, second]))

    async def coro(ctx):
        first = ctx.wait_for_external_event("vote")
        second = ctx.wait_for_external_event("vote")
        return await ctx.task_all([first, second])

    run = Run(app_with(form, gen, coro))
    run.start()
    assert run.raise_event("vote", "yes").status is RuntimeStatus.RUNNING
    run.raise_event("vote", "no")
    assert run.output == ["yes", "no"]


def test_invalid_event_name_is_refused(form: str) -> None:
    def gen(ctx):
        yield ctx.wait_for_external_event("")

    async def coro(ctx):
        await ctx.wait_for_external_event("")

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "ValueError"
    assert "event name" in result.failure.message


def test_event_after_a_timed_out_wait_reaches_the_current_waiter(form: str) -> None:
    def gen(ctx):
        while True:
            approval = ctx.wait_for_external_event("approval")
            reminder = ctx.create_timer(timedelta(hours=1))
            winner = yield ctx.task_any([approval, reminder])
            if winner is approval:
                return approval.result
            yield ctx.call_activity("notify", "please approve")

    async def coro(ctx):
        while True:
            approval = ctx.wait_for_external_event("approval")
            reminder = ctx.create_timer(timedelta(hours=1))
            winner = await ctx.task_any([approval, reminder])
            if winner is approval:
                return approval.result
            await ctx.call_activity("notify", "please approve")

    run = Run(app_with(form, gen, coro))
    run.start()
    run.fire(0)  # the reminder wins the first round
    assert run.last.actions == [ScheduleActivity(1, "notify", enc("please approve"))]
    assert [type(a) for a in run.complete(1).actions] == [CreateTimer]
    result = run.raise_event("approval", "yes")
    assert result.status is RuntimeStatus.COMPLETED
    assert run.output == "yes"


def test_many_buffered_events_are_consumed_without_recursion(form: str) -> None:
    count = 1000

    def gen(ctx):
        yield ctx.call_activity("process")
        total = 0
        for _ in range(count):
            total += yield ctx.wait_for_external_event("add")
        return total

    async def coro(ctx):
        await ctx.call_activity("process")
        total = 0
        for _ in range(count):
            total += await ctx.wait_for_external_event("add")
        return total

    run = Run(app_with(form, gen, coro), check_replay=False)
    run.start()
    run.episode(*[event_raised("add", 1) for _ in range(count)], task_completed(0))
    assert run.status is RuntimeStatus.COMPLETED
    assert run.output == count


# ---------------------------------------------------------------------------------- task_all


def test_task_all_results_in_call_order(form: str) -> None:
    def gen(ctx):
        tasks = [ctx.call_activity("process", n) for n in range(3)]
        return (yield ctx.task_all(tasks))

    async def coro(ctx):
        tasks = [ctx.call_activity("process", n) for n in range(3)]
        return await ctx.task_all(tasks)

    run = Run(app_with(form, gen, coro))
    assert run.start().actions == [ScheduleActivity(n, "process", enc(n)) for n in range(3)]
    run.complete(2, "c")
    run.complete(0, "a")
    assert run.status is RuntimeStatus.RUNNING
    run.complete(1, "b")
    assert run.status is RuntimeStatus.COMPLETED
    assert run.output == ["a", "b", "c"]


def test_task_all_fails_fast(form: str) -> None:
    def gen(ctx):
        tasks = [ctx.call_activity("process", n) for n in range(3)]
        try:
            yield ctx.task_all(tasks)
        except df.TaskFailedError as error:
            return [error.failure_details.message, [t.is_complete for t in tasks]]

    async def coro(ctx):
        tasks = [ctx.call_activity("process", n) for n in range(3)]
        try:
            await ctx.task_all(tasks)
        except df.TaskFailedError as error:
            return [error.failure_details.message, [t.is_complete for t in tasks]]

    run = Run(app_with(form, gen, coro))
    run.start()
    run.complete(0, "ok")
    result = run.fail(1, "ValueError", "item 1 is bad")
    assert result.status is RuntimeStatus.COMPLETED
    assert run.output == ["item 1 is bad", [True, True, False]]


def test_task_all_of_nothing_completes_at_once(form: str) -> None:
    def gen(ctx):
        return (yield ctx.task_all([]))

    async def coro(ctx):
        return await ctx.task_all([])

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.COMPLETED
    assert result.actions == []
    assert result.output == enc([])


def test_task_all_refuses_non_tasks(form: str) -> None:
    def gen(ctx):
        yield ctx.task_all([ctx.call_activity("process"), "not a task"])

    async def coro(ctx):
        await ctx.task_all([ctx.call_activity("process"), "not a task"])

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.FAILED
    assert "task_all/task_any take durafn tasks" in result.failure.message


def test_fan_out_fan_in(form: str) -> None:
    def gen(ctx):
        items = yield ctx.call_activity("get_work")
        results = yield ctx.task_all([ctx.call_activity("process", i) for i in items])
        return sum(results)

    async def coro(ctx):
        items = await ctx.call_activity("get_work")
        results = await ctx.task_all([ctx.call_activity("process", i) for i in items])
        return sum(results)

    run = Run(app_with(form, gen, coro))
    run.start()
    result = run.complete(0, [10, 20, 30])
    assert result.actions == [
        ScheduleActivity(1, "process", enc(10)),
        ScheduleActivity(2, "process", enc(20)),
        ScheduleActivity(3, "process", enc(30)),
    ]
    # All results arrive in one episode, out of order.
    run.episode(task_completed(3, 31), task_completed(1, 11), task_completed(2, 21))
    assert run.status is RuntimeStatus.COMPLETED
    assert run.output == 63


# ---------------------------------------------------------------------------------- task_any


def test_task_any_returns_the_winner(form: str) -> None:
    def gen(ctx):
        tasks = [ctx.call_activity("process", n) for n in range(3)]
        winner = yield ctx.task_any(tasks)
        return [tasks.index(winner), winner.result]

    async def coro(ctx):
        tasks = [ctx.call_activity("process", n) for n in range(3)]
        winner = await ctx.task_any(tasks)
        return [tasks.index(winner), winner.result]

    run = Run(app_with(form, gen, coro))
    run.start()
    run.complete(2, "third")
    assert run.status is RuntimeStatus.COMPLETED
    assert run.output == [2, "third"]


def test_task_any_winner_can_be_a_failure(form: str) -> None:
    def gen(ctx):
        tasks = [ctx.call_activity("process", n) for n in range(2)]
        winner = yield ctx.task_any(tasks)
        try:
            return winner.result
        except df.TaskFailedError as error:
            return f"lost: {error.failure_details.message}"

    async def coro(ctx):
        tasks = [ctx.call_activity("process", n) for n in range(2)]
        winner = await ctx.task_any(tasks)
        try:
            return winner.result
        except df.TaskFailedError as error:
            return f"lost: {error.failure_details.message}"

    run = Run(app_with(form, gen, coro))
    run.start()
    run.fail(1, "ValueError", "nope")
    assert run.output == "lost: nope"


def _approval_pair():
    def gen(ctx):
        timeout = ctx.create_timer(timedelta(hours=72))
        approval = ctx.wait_for_external_event("approval")
        winner = yield ctx.task_any([approval, timeout])
        if winner is approval:
            timeout.cancel()
            return f"approved by {approval.result}"
        return "timed out"

    async def coro(ctx):
        timeout = ctx.create_timer(timedelta(hours=72))
        approval = ctx.wait_for_external_event("approval")
        winner = await ctx.task_any([approval, timeout])
        if winner is approval:
            timeout.cancel()
            return f"approved by {approval.result}"
        return "timed out"

    return gen, coro


def test_event_beats_timer_and_the_losing_timer_keeps_nothing_alive(form: str) -> None:
    run = Run(app_with(form, *_approval_pair()))
    assert run.start().actions == [CreateTimer(0, T0 + timedelta(hours=72))]
    result = run.raise_event("approval", "ann")
    # Completed in this very episode, although the 72 h timer is still pending.
    assert result.status is RuntimeStatus.COMPLETED
    assert result.is_finished
    assert result.actions == []
    assert run.output == "approved by ann"
    assert run.kinds()[-2:] == ["ExecutionCompleted", "OrchestratorCompleted"]


def test_timer_beats_event(form: str) -> None:
    run = Run(app_with(form, *_approval_pair()))
    run.start()
    result = run.fire(0)
    assert result.status is RuntimeStatus.COMPLETED
    assert run.output == "timed out"


def test_task_any_needs_a_task(form: str) -> None:
    def gen(ctx):
        yield ctx.task_any([])

    async def coro(ctx):
        await ctx.task_any([])

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "ValueError"
    assert "task_any needs at least one task" in result.failure.message
