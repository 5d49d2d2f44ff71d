"""Sub-orchestrations: instance ids, results, failures, retries, the child's view."""

from __future__ import annotations

from datetime import timedelta

import pytest

import durafn as df
from durafn.core.status import RuntimeStatus
from durafn.executor.actions import CreateTimer, StartSubOrchestration
from durafn.executor.orchestration import execute

from .factories import (
    EXECUTION_ID,
    INSTANCE_ID,
    T0,
    Run,
    app_with,
    enc,
    new_app,
    orchestrator_started,
    started,
    sub_completed,
    sub_created,
)


def _app_with_child(form: str, gen, coro) -> df.App:
    app = new_app()

    @app.orchestrator
    def child(ctx):
        return (yield ctx.call_activity("process", ctx.get_input()))

    return app_with(form, gen, coro, app=app)


def test_default_child_instance_id_is_derived_from_the_parent(form: str) -> None:
    def gen(ctx):
        first = yield ctx.call_sub_orchestrator("child", {"n": 1})
        second = yield ctx.call_sub_orchestrator("child", {"n": 2})
        return [first, second]

    async def coro(ctx):
        first = await ctx.call_sub_orchestrator("child", {"n": 1})
        second = await ctx.call_sub_orchestrator("child", {"n": 2})
        return [first, second]

    run = Run(_app_with_child(form, gen, coro))
    assert run.start().actions == [
        StartSubOrchestration(0, "child", f"{INSTANCE_ID}:{EXECUTION_ID}:0000", enc({"n": 1}))
    ]
    assert run.kinds()[2] == "SubOrchestrationInstanceCreated"
    assert run.complete(0, "one").actions == [
        StartSubOrchestration(1, "child", f"{INSTANCE_ID}:{EXECUTION_ID}:0001", enc({"n": 2}))
    ]
    result = run.complete(1, "two")
    assert result.status is RuntimeStatus.COMPLETED
    assert run.output == ["one", "two"]
    assert "SubOrchestrationInstanceCompleted" in run.kinds()


def test_explicit_child_instance_id_and_function_object(form: str) -> None:
    app = new_app()

    @app.orchestrator(name="child")
    def child_orchestrator(ctx):
        return ctx.get_input()

    def gen(ctx):
        return (yield ctx.call_sub_orchestrator(child_orchestrator, 7, instance_id="child-7"))

    async def coro(ctx):
        return await ctx.call_sub_orchestrator(child_orchestrator, 7, instance_id="child-7")

    run = Run(app_with(form, gen, coro, app=app))
    assert run.start().actions == [StartSubOrchestration(0, "child", "child-7", enc(7))]
    run.complete(0, 7)
    assert run.output == 7


def test_sub_orchestration_failure_is_a_task_failed_error(form: str) -> None:
    def gen(ctx):
        try:
            yield ctx.call_sub_orchestrator("child")
        except df.TaskFailedError as error:
            return [str(error), error.failure_details.error_type]

    async def coro(ctx):
        try:
            await ctx.call_sub_orchestrator("child")
        except df.TaskFailedError as error:
            return [str(error), error.failure_details.error_type]

    run = Run(_app_with_child(form, gen, coro))
    run.start()
    result = run.fail(0, "KeyError", "'sku'")
    assert result.status is RuntimeStatus.COMPLETED
    assert run.output == ["sub-orchestration 'child' failed: KeyError: 'sku'", "KeyError"]
    assert "SubOrchestrationInstanceFailed" in run.kinds()


def test_unhandled_sub_orchestration_failure_fails_the_parent(form: str) -> None:
    def gen(ctx):
        yield ctx.call_sub_orchestrator("child")

    async def coro(ctx):
        await ctx.call_sub_orchestrator("child")

    run = Run(_app_with_child(form, gen, coro))
    run.start()
    result = run.fail(0, "KeyError", "'sku'")
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "TaskFailedError"
    assert result.failure.inner.error_type == "KeyError"


@pytest.mark.parametrize("spelling", ["retry=", "call_sub_orchestrator_with_retry"])
@pytest.mark.parametrize("explicit_id", [None, "child-x"])
def test_sub_orchestration_retry(form: str, explicit_id: str | None, spelling: str) -> None:
    retry = df.RetryOptions(timedelta(seconds=30), max_number_of_attempts=2)

    def call(ctx):
        if spelling == "retry=":
            return ctx.call_sub_orchestrator("child", "in", explicit_id, retry=retry)
        return ctx.call_sub_orchestrator_with_retry("child", retry, "in", explicit_id)

    def gen(ctx):
        return (yield call(ctx))

    async def coro(ctx):
        return await call(ctx)

    run = Run(_app_with_child(form, gen, coro))
    first_id = explicit_id or f"{INSTANCE_ID}:{EXECUTION_ID}:0000"
    assert run.start().actions == [StartSubOrchestration(0, "child", first_id, enc("in"))]
    failed_at = run.now
    assert run.fail(0).actions == [CreateTimer(1, failed_at + timedelta(seconds=30))]
    # An explicit id is reused; a derived one follows the retry's own sequence number.
    retry_id = explicit_id or f"{INSTANCE_ID}:{EXECUTION_ID}:0002"
    assert run.fire(1).actions == [StartSubOrchestration(2, "child", retry_id, enc("in"))]
    result = run.fail(2)
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "TaskFailedError"


def test_unknown_sub_orchestrator_fails_the_parent(form: str) -> None:
    def gen(ctx):
        yield ctx.call_sub_orchestrator("nope")

    async def coro(ctx):
        await ctx.call_sub_orchestrator("nope")

    result = Run(_app_with_child(form, gen, coro)).start()
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "FunctionNotFound"
    assert "orchestrator 'nope' is not registered" in result.failure.message
    assert "child" in result.failure.message and "main" in result.failure.message


def test_malformed_child_instance_id_is_refused_at_the_call_site(form: str) -> None:
    def gen(ctx):
        try:
            ctx.call_sub_orchestrator("child", instance_id="a/b")
        except ValueError as error:
            return str(error)
        yield

    async def coro(ctx):
        try:
            ctx.call_sub_orchestrator("child", instance_id="a/b")
        except ValueError as error:
            return str(error)

    result = Run(_app_with_child(form, gen, coro)).start()
    assert result.status is RuntimeStatus.COMPLETED
    assert "'a/b' is malformed" in result.output
    assert result.actions == []


def test_child_sees_its_parent_instance_id(form: str) -> None:
    def gen(ctx):
        yield ctx.create_timer(timedelta(seconds=1))
        return [ctx.instance_id, ctx.parent_instance_id, ctx.name]

    async def coro(ctx):
        await ctx.create_timer(timedelta(seconds=1))
        return [ctx.instance_id, ctx.parent_instance_id, ctx.name]

    child_id = f"{INSTANCE_ID}:{EXECUTION_ID}:0000"
    run = Run(app_with(form, gen, coro, name="child"), child_id)
    run.start("child", parent_instance_id=INSTANCE_ID)
    run.fire(0)
    assert run.output == [child_id, INSTANCE_ID, "child"]

    top = Run(app_with(form, gen, coro, name="child"), "top")
    top.start("child")
    top.fire(0)
    assert top.output == ["top", None, "child"]


def test_hand_built_sub_orchestration_history(form: str) -> None:
    def gen(ctx):
        total = yield ctx.call_sub_orchestrator("child", 5)
        return total * 2

    async def coro(ctx):
        total = await ctx.call_sub_orchestrator("child", 5)
        return total * 2

    app = _app_with_child(form, gen, coro)
    past = [
        orchestrator_started(T0),
        started("main"),
        sub_created(0, "child", f"{INSTANCE_ID}:{EXECUTION_ID}:0000", 5),
        # A child finishing twice (an at-least-once delivery) is applied once.
    ]
    result = execute(app, INSTANCE_ID, past, [sub_completed(0, 21), sub_completed(0, 99)], T0)
    assert result.status is RuntimeStatus.COMPLETED
    assert result.output == enc(42)
    assert [e.kind for e in result.new_events].count("SubOrchestrationInstanceCompleted") == 1

    renamed = [*past[:2], sub_created(0, "other_child", f"{INSTANCE_ID}:{EXECUTION_ID}:0000", 5)]
    result = execute(app, INSTANCE_ID, renamed, [], T0)
    assert result.status is RuntimeStatus.FAILED
    assert (
        "expected SubOrchestrationInstanceCreated 'other_child' at #0, "
        "code asked for CallSubOrchestrator 'child'"
    ) in result.failure.message
