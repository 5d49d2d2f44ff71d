"""The orchestration context: status, input, determinism helpers, logging, misuse, messages."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

import durafn as df
from durafn.core import codec
from durafn.core.status import RuntimeStatus
from durafn.executor.actions import ScheduleActivity
from durafn.executor.orchestration import OrchestrationExecutor, execute

from .factories import (
    INSTANCE_ID,
    T0,
    Run,
    app_with,
    enc,
    new_app,
    started,
    task_completed,
    timer_fired,
)


def test_custom_status_is_published_and_rebuilt_on_replay(form: str) -> None:
    def gen(ctx):
        ctx.set_custom_status({"stage": "charging", "at": ctx.current_utc_datetime})
        yield ctx.call_activity("charge")
        ctx.set_custom_status("shipping")
        yield ctx.call_activity("ship")
        ctx.set_custom_status(None)
        return "done"

    async def coro(ctx):
        ctx.set_custom_status({"stage": "charging", "at": ctx.current_utc_datetime})
        await ctx.call_activity("charge")
        ctx.set_custom_status("shipping")
        await ctx.call_activity("ship")
        ctx.set_custom_status(None)
        return "done"

    run = Run(app_with(form, gen, coro))
    assert run.start().custom_status == enc({"stage": "charging", "at": T0})
    assert run.complete(0).custom_status == enc("shipping")
    assert run.complete(1).custom_status is None
    assert run.status is RuntimeStatus.COMPLETED


def test_custom_status_must_be_serializable(form: str) -> None:
    def gen(ctx):
        ctx.set_custom_status({"ids": {1, 2}})
        yield ctx.call_activity("process")

    async def coro(ctx):
        ctx.set_custom_status({"ids": {1, 2}})
        await ctx.call_activity("process")

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "TypeError"
    assert "custom status['ids']" in result.failure.message


def test_get_input_decodes_rich_values(form: str) -> None:
    payload = {"order": 42, "due": date(2026, 2, 1), "amount": Decimal("9.95"), "tags": ("a", "b")}

    def gen(ctx):
        yield ctx.call_activity("process", ctx.get_input())
        return ctx.get_input()

    async def coro(ctx):
        await ctx.call_activity("process", ctx.get_input())
        return ctx.get_input()

    run = Run(app_with(form, gen, coro))
    assert run.start(input=payload).actions == [ScheduleActivity(0, "process", enc(payload))]
    run.complete(0)
    assert run.output == payload


def test_get_input_without_input_is_none(form: str) -> None:
    def gen(ctx):
        return (yield ctx.call_activity("process", ctx.get_input()))

    async def coro(ctx):
        return await ctx.call_activity("process", ctx.get_input())

    assert Run(app_with(form, gen, coro)).start().actions == [ScheduleActivity(0, "process", None)]


def test_new_uuid_is_deterministic_across_replays_and_distinct_per_call(form: str) -> None:
    def gen(ctx):
        ids = [ctx.new_uuid(), ctx.new_uuid()]
        yield ctx.call_activity("process", ids)
        ids.append(ctx.new_uuid())
        return ids

    async def coro(ctx):
        ids = [ctx.new_uuid(), ctx.new_uuid()]
        await ctx.call_activity("process", ids)
        ids.append(ctx.new_uuid())
        return ids

    app = app_with(form, gen, coro)
    run = Run(app)  # check_replay: a fresh replay must ask for the very same ids
    first_ids = codec.decode(run.start().actions[0].input)
    run.complete(0)
    ids = run.output
    assert all(isinstance(i, uuid.UUID) for i in ids)
    assert ids[:2] == first_ids
    assert len(set(ids)) == 3

    # Replaying the whole history from scratch gives the same ids again.
    past = run.history[:-4]  # everything before the last episode
    again = execute(app, INSTANCE_ID, past, [task_completed(0)], run.history[-4].timestamp)
    assert codec.decode(again.output) == ids

    # Another instance gets other ids.
    other = Run(app, "order-43")
    other.start()
    other.complete(0)
    assert set(other.output).isdisjoint(ids)


def test_current_utc_datetime_is_the_episode_time_and_stable_on_replay(form: str) -> None:
    def gen(ctx):
        times = [ctx.current_utc_datetime]
        yield ctx.call_activity("process")
        times.append(ctx.current_utc_datetime)
        yield ctx.create_timer(timedelta(hours=1))
        times.append(ctx.current_utc_datetime)
        return times

    async def coro(ctx):
        times = [ctx.current_utc_datetime]
        await ctx.call_activity("process")
        times.append(ctx.current_utc_datetime)
        await ctx.create_timer(timedelta(hours=1))
        times.append(ctx.current_utc_datetime)
        return times

    run = Run(app_with(form, gen, coro))  # check_replay: replay sees the recorded times
    t1 = T0
    t2 = T0 + timedelta(minutes=5)
    run.episode(started("main"), at=t1)
    run.episode(task_completed(0), at=t2)
    timer = run.scheduled(1)
    assert timer.fire_at == t2 + timedelta(hours=1)
    t3 = timer.fire_at + timedelta(seconds=3)
    run.episode(timer_fired(1, timer.fire_at), at=t3)
    assert run.output == [t1, t2, t3]
    starts = [e.timestamp for e in run.history if e.kind == "OrchestratorStarted"]
    assert starts == [t1, t2, t3]


def test_is_replaying(form: str) -> None:
    seen: list[tuple[str, bool]] = []

    def gen(ctx):
        seen.append(("start", ctx.is_replaying))
        yield ctx.call_activity("process")
        seen.append(("after 0", ctx.is_replaying))
        yield ctx.call_activity("process")
        seen.append(("after 1", ctx.is_replaying))

    async def coro(ctx):
        seen.append(("start", ctx.is_replaying))
        await ctx.call_activity("process")
        seen.append(("after 0", ctx.is_replaying))
        await ctx.call_activity("process")
        seen.append(("after 1", ctx.is_replaying))

    app = app_with(form, gen, coro)
    # A live executor fed only new messages never replays.
    run = Run(app, check_replay=False)
    run.start()
    run.complete(0)
    run.complete(1)
    assert seen == [("start", False), ("after 0", False), ("after 1", False)]

    # A fresh executor replays the committed steps, then runs the new message live.
    seen.clear()
    execute(app, INSTANCE_ID, run.history[:-4], [task_completed(1)], T0 + timedelta(minutes=1))
    assert seen == [("start", True), ("after 0", True), ("after 1", False)]


def test_logger_is_silent_during_replay(form: str, caplog: pytest.LogCaptureFixture) -> None:
    def gen(ctx):
        ctx.logger.info("starting %s", ctx.get_input())
        yield ctx.call_activity("process")
        ctx.logger.warning("step done")
        yield ctx.call_activity("process")
        ctx.logger.info("finishing")

    async def coro(ctx):
        ctx.logger.info("starting %s", ctx.get_input())
        await ctx.call_activity("process")
        ctx.logger.warning("step done")
        await ctx.call_activity("process")
        ctx.logger.info("finishing")

    caplog.set_level(logging.INFO, logger="durafn.orchestration.main")
    app = app_with(form, gen, coro)
    run = Run(app, check_replay=False)
    run.start(input="order")
    run.complete(0)
    assert [r.getMessage() for r in caplog.records] == ["starting order", "step done"]
    assert {r.name for r in caplog.records} == {"durafn.orchestration.main"}
    assert all(r.instance_id == INSTANCE_ID for r in caplog.records)

    caplog.clear()
    execute(app, INSTANCE_ID, run.history, [task_completed(1)], T0 + timedelta(minutes=1))
    assert [r.getMessage() for r in caplog.records] == ["finishing"]


def test_instance_id_and_name(form: str) -> None:
    def gen(ctx):
        yield ctx.call_activity("process", [ctx.instance_id, ctx.name, ctx.parent_instance_id])

    async def coro(ctx):
        await ctx.call_activity("process", [ctx.instance_id, ctx.name, ctx.parent_instance_id])

    run = Run(app_with(form, gen, coro, name="fulfil"), "inst-7")
    assert run.start("fulfil").actions == [
        ScheduleActivity(0, "process", enc(["inst-7", "fulfil", None]))
    ]


def test_plain_function_orchestrator_returning_a_value(form: str) -> None:
    # The non-generator forms: a plain ``def`` and an ``async def`` that never awaits.
    app = new_app()
    if form == "generator":

        @app.orchestrator
        def double(ctx):
            return ctx.get_input() * 2

    else:

        @app.orchestrator
        async def double(ctx):
            return ctx.get_input() * 2

    result = Run(app).start("double", 21)
    assert result.status is RuntimeStatus.COMPLETED
    assert result.output == enc(42)
    assert result.actions == []


def test_orchestrator_returning_without_awaiting(form: str) -> None:
    # The generator never reaches its yield; the async one never awaits.
    def gen(ctx):
        if ctx.get_input():
            return "early"
        yield ctx.call_activity("process")

    async def coro(ctx):
        if ctx.get_input():
            return "early"
        await ctx.call_activity("process")

    result = Run(app_with(form, gen, coro)).start(input=True)
    assert result.status is RuntimeStatus.COMPLETED
    assert result.output == enc("early")
    assert result.actions == []


def test_yielding_a_non_task_fails_with_a_clear_message(form: str) -> None:
    def gen(ctx):
        yield 5

    async def coro(ctx):
        await asyncio.sleep(0)

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "OrchestrationStateError"
    if form == "generator":
        assert result.failure.message.startswith("orchestrator yielded 5 (int)")
        assert "yield only tasks returned by ctx" in result.failure.message
    else:
        assert result.failure.message.startswith("orchestrator yielded None (NoneType)")
        assert "ctx.create_timer, not asyncio.sleep" in result.failure.message


def test_yielding_a_non_task_after_a_real_step(form: str) -> None:
    def gen(ctx):
        yield ctx.call_activity("process")
        yield "oops"

    async def coro(ctx):
        await ctx.call_activity("process")
        await asyncio.sleep(0)

    run = Run(app_with(form, gen, coro))
    run.start()
    result = run.complete(0)
    assert result.status is RuntimeStatus.FAILED
    assert result.actions == []
    assert "orchestrator yielded" in result.failure.message


def test_non_serializable_activity_input_raises_at_the_call_site(form: str) -> None:
    def gen(ctx):
        try:
            ctx.call_activity("process", {"when": datetime(2026, 1, 1), "tags": {"a"}})
        except TypeError as error:
            return str(error)
        yield

    async def coro(ctx):
        try:
            ctx.call_activity("process", {"when": datetime(2026, 1, 1), "tags": {"a"}})
        except TypeError as error:
            return str(error)

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.COMPLETED
    assert result.actions == []
    message = codec.decode(result.output)
    assert message.startswith("input of activity 'process'['tags'] of type set")
    assert "TaskScheduled" not in [e.kind for e in result.new_events]


def test_unhandled_non_serializable_activity_input_fails_before_any_action(form: str) -> None:
    def gen(ctx):
        first = ctx.call_activity("process", 1)
        second = ctx.call_activity("process", object())
        yield ctx.task_all([first, second])

    async def coro(ctx):
        first = ctx.call_activity("process", 1)
        second = ctx.call_activity("process", object())
        await ctx.task_all([first, second])

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "TypeError"
    assert "input of activity 'process' of type object" in result.failure.message
    # Not even the first, valid call is sent: the episode failed.
    assert result.actions == []
    assert "TaskScheduled" not in [e.kind for e in result.new_events]


def test_non_serializable_output_fails_the_instance(form: str) -> None:
    def gen(ctx):
        yield ctx.call_activity("process")
        return {"rows": [1, 2, b"raw"]}

    async def coro(ctx):
        await ctx.call_activity("process")
        return {"rows": [1, 2, b"raw"]}

    run = Run(app_with(form, gen, coro))
    run.start()
    result = run.complete(0)
    assert result.status is RuntimeStatus.FAILED
    assert result.output is None
    assert result.failure.error_type == "TypeError"
    assert "orchestrator output['rows'][2] of type bytes" in result.failure.message


def test_oversized_output_fails_the_instance(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "MAX_PAYLOAD_BYTES", 100)

    def gen(ctx):
        yield ctx.call_activity("process")
        return "x" * 200

    async def coro(ctx):
        await ctx.call_activity("process")
        return "x" * 200

    run = Run(app_with(form, gen, coro))
    run.start()
    result = run.complete(0)
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "PayloadTooLarge"


def test_unknown_orchestrator_fails_the_instance() -> None:
    app = new_app()

    @app.orchestrator
    def known(ctx):
        return None

    result = Run(app).start("unknown")
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "FunctionNotFound"
    assert "orchestrator 'unknown' is not registered" in result.failure.message
    assert "known" in result.failure.message


def test_reading_the_result_of_an_unfinished_task_is_an_error(form: str) -> None:
    def gen(ctx):
        task = ctx.call_activity("process")
        try:
            task.result  # noqa: B018 - the access is the test
        except df.OrchestrationStateError as error:
            return str(error)
        yield task

    async def coro(ctx):
        task = ctx.call_activity("process")
        try:
            task.result  # noqa: B018 - the access is the test
        except df.OrchestrationStateError as error:
            return str(error)

    result = Run(app_with(form, gen, coro)).start()
    assert codec.decode(result.output) == "the task has not completed yet; yield it first"


# ---------------------------------------------------------------------------------- messages


def _one_step_pair():
    def gen(ctx):
        first = yield ctx.call_activity("process")
        second = yield ctx.wait_for_external_event("go")
        return [first, second]

    async def coro(ctx):
        first = await ctx.call_activity("process")
        second = await ctx.wait_for_external_event("go")
        return [first, second]

    return gen, coro


def test_duplicate_and_unknown_completions_are_dropped(form: str) -> None:
    run = Run(app_with(form, *_one_step_pair()))
    run.start()
    run.complete(0, "first")
    result = run.episode(
        task_completed(0, "duplicate"),  # already completed
        task_completed(99, "stranger"),  # never scheduled
        timer_fired(5, T0),  # no such timer
    )
    assert result.status is RuntimeStatus.RUNNING
    assert result.actions == []
    assert [e.kind for e in result.new_events] == ["OrchestratorStarted", "OrchestratorCompleted"]
    assert run.kinds().count("TaskCompleted") == 1
    run.raise_event("go", "now")
    assert run.output == ["first", "now"]


def test_duplicate_in_the_same_episode_is_dropped(form: str) -> None:
    run = Run(app_with(form, *_one_step_pair()))
    run.start()
    result = run.episode(task_completed(0, "a"), task_completed(0, "b"))
    assert [e.kind for e in result.new_events].count("TaskCompleted") == 1
    run.raise_event("go", 1)
    assert run.output == ["a", 1]


def test_second_execution_started_is_ignored(form: str) -> None:
    run = Run(app_with(form, *_one_step_pair()))
    run.start()
    result = run.episode(started("main", "again"))
    assert result.actions == []
    assert run.kinds().count("ExecutionStarted") == 1


def test_no_messages_before_start_is_pending() -> None:
    executor = OrchestrationExecutor(new_app(), INSTANCE_ID)
    result = executor.run_episode([], T0)
    assert result.status is RuntimeStatus.PENDING
    assert result.actions == []
    assert not result.is_finished
