"""Activities: scheduling by name or function, failures, unknown names, durable retries."""

from __future__ import annotations

from datetime import timedelta

import pytest

import durafn as df
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.executor.actions import CreateTimer, ScheduleActivity

from .factories import STACK_TRACE, T0, Run, app_with, enc, new_app


def test_chain_by_name_and_by_function_object(form: str) -> None:
    app = new_app(activities=())

    @app.activity
    def say_hello(city: str) -> str:
        return f"Hello {city}!"

    def gen(ctx):
        outputs = [(yield ctx.call_activity("say_hello", "Tokyo"))]
        outputs.append((yield ctx.call_activity(say_hello, "Seattle")))
        return outputs

    async def coro(ctx):
        outputs = [await ctx.call_activity("say_hello", "Tokyo")]
        outputs.append(await ctx.call_activity(say_hello, "Seattle"))
        return outputs

    run = Run(app_with(form, gen, coro, app=app))
    first = run.start()
    assert first.status is RuntimeStatus.RUNNING
    assert first.actions == [ScheduleActivity(0, "say_hello", enc("Tokyo"))]
    assert run.kinds() == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
    ]

    second = run.complete(0, "Hello Tokyo!")
    assert second.actions == [ScheduleActivity(1, "say_hello", enc("Seattle"))]
    assert second.status is RuntimeStatus.RUNNING

    third = run.complete(1, "Hello Seattle!")
    assert third.actions == []
    assert third.status is RuntimeStatus.COMPLETED
    assert run.output == ["Hello Tokyo!", "Hello Seattle!"]
    assert run.completed_event().status is RuntimeStatus.COMPLETED
    assert run.completed_event().result == enc(["Hello Tokyo!", "Hello Seattle!"])


def test_activity_input_and_result_keep_their_types(form: str) -> None:
    from datetime import date

    def gen(ctx):
        return (yield ctx.call_activity("process", {"when": date(2026, 5, 1), "ids": (1, 2)}))

    async def coro(ctx):
        return await ctx.call_activity("process", {"when": date(2026, 5, 1), "ids": (1, 2)})

    run = Run(app_with(form, gen, coro))
    (action,) = run.start().actions
    assert action == ScheduleActivity(0, "process", enc({"when": date(2026, 5, 1), "ids": (1, 2)}))
    run.complete(0, {"done": date(2026, 5, 2)})
    assert run.output == {"done": date(2026, 5, 2)}


def test_unknown_activity_name_fails_the_instance_listing_registered_ones(form: str) -> None:
    def gen(ctx):
        yield ctx.call_activity("no_such_activity")

    async def coro(ctx):
        await ctx.call_activity("no_such_activity")

    run = Run(app_with(form, gen, coro, app=new_app(["charge", "ship"])))
    result = run.start()
    assert result.status is RuntimeStatus.FAILED
    assert result.actions == []
    assert result.failure is not None
    assert result.failure.error_type == "FunctionNotFound"
    assert "'no_such_activity' is not registered" in result.failure.message
    assert "charge, ship" in result.failure.message
    assert run.completed_event().failure == result.failure


def test_unregistered_function_object_fails_the_instance(form: str) -> None:
    def not_registered() -> None: ...

    def gen(ctx):
        yield ctx.call_activity(not_registered)

    async def coro(ctx):
        await ctx.call_activity(not_registered)

    result = Run(app_with(form, gen, coro, app=new_app(["ship"]))).start()
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "FunctionNotFound"
    assert "'not_registered'" in result.failure.message
    assert "ship" in result.failure.message


def test_activity_failure_is_a_task_failed_error_that_can_be_compensated(form: str) -> None:
    caught: list[df.TaskFailedError] = []

    def gen(ctx):
        try:
            yield ctx.call_activity("charge", 100)
        except df.TaskFailedError as error:
            caught.append(error)
            yield ctx.call_activity("refund", 100)
            return "compensated"
        return "charged"

    async def coro(ctx):
        try:
            await ctx.call_activity("charge", 100)
        except df.TaskFailedError as error:
            caught.append(error)
            await ctx.call_activity("refund", 100)
            return "compensated"
        return "charged"

    run = Run(app_with(form, gen, coro), check_replay=False)
    run.start()
    result = run.fail(0, "CardDeclined", "insufficient funds")
    assert result.status is RuntimeStatus.RUNNING
    assert result.actions == [ScheduleActivity(1, "refund", enc(100))]

    (error,) = caught
    assert str(error) == "activity 'charge' failed: CardDeclined: insufficient funds"
    assert error.failure_details == FailureDetails(
        error_type="CardDeclined", message="insufficient funds", stack_trace=STACK_TRACE
    )

    run.complete(1)
    assert run.status is RuntimeStatus.COMPLETED
    assert run.output == "compensated"


def test_unhandled_activity_failure_fails_the_instance_with_the_cause(form: str) -> None:
    def gen(ctx):
        yield ctx.call_activity("charge")

    async def coro(ctx):
        await ctx.call_activity("charge")

    run = Run(app_with(form, gen, coro))
    run.start()
    result = run.fail(0, "CardDeclined", "no money")
    assert result.status is RuntimeStatus.FAILED
    assert result.output is None
    details = result.failure
    assert details.error_type == "TaskFailedError"
    assert details.message == "activity 'charge' failed: CardDeclined: no money"
    assert details.inner == FailureDetails("CardDeclined", "no money", STACK_TRACE)
    assert details.is_caused_by("CardDeclined")
    assert run.completed_event().failure == details


def test_unhandled_orchestrator_error_fails_the_instance_with_details(form: str) -> None:
    def gen(ctx):
        total = yield ctx.call_activity("process")
        if total < 0:
            raise ValueError(f"negative total {total}")

    async def coro(ctx):
        total = await ctx.call_activity("process")
        if total < 0:
            raise ValueError(f"negative total {total}")

    run = Run(app_with(form, gen, coro))
    run.start()
    result = run.complete(0, -5)
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "ValueError"
    assert result.failure.message == "negative total -5"
    assert "ValueError: negative total -5" in result.failure.stack_trace
    assert f"in {'gen' if form == 'generator' else 'coro'}" in result.failure.stack_trace
    assert result.actions == []


def test_error_raised_before_the_first_yield_fails_the_instance(form: str) -> None:
    def gen(ctx):
        raise KeyError("missing")
        yield ctx.call_activity("process")

    async def coro(ctx):
        raise KeyError("missing")

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "KeyError"
    assert result.actions == []


# ---------------------------------------------------------------------------------- retries

RETRY = df.RetryOptions(
    first_retry_interval=timedelta(seconds=5),
    max_number_of_attempts=4,
    backoff_coefficient=2.0,
    max_retry_interval=timedelta(seconds=15),
)


@pytest.mark.parametrize("spelling", ["retry=", "call_activity_with_retry"])
def test_retries_are_durable_timers_with_exponential_backoff(form: str, spelling: str) -> None:
    def call(ctx):
        if spelling == "retry=":
            return ctx.call_activity("flaky", "job", retry=RETRY)
        return ctx.call_activity_with_retry("flaky", RETRY, "job")

    def gen(ctx):
        return (yield call(ctx))

    async def coro(ctx):
        return await call(ctx)

    run = Run(app_with(form, gen, coro))
    assert run.start().actions == [ScheduleActivity(0, "flaky", enc("job"))]

    # Attempt 1 fails: a timer for 5 s later, then attempt 2 with the same input.
    failed_at = run.now
    assert run.fail(0).actions == [CreateTimer(1, failed_at + timedelta(seconds=5))]
    assert run.status is RuntimeStatus.RUNNING
    assert run.fire(1).actions == [ScheduleActivity(2, "flaky", enc("job"))]

    # Attempt 2 fails: 5 s * 2.
    failed_at = run.now
    assert run.fail(2).actions == [CreateTimer(3, failed_at + timedelta(seconds=10))]
    assert run.fire(3).actions == [ScheduleActivity(4, "flaky", enc("job"))]

    # Attempt 3 fails: 5 s * 4 = 20 s, capped by max_retry_interval at 15 s.
    failed_at = run.now
    assert run.fail(4).actions == [CreateTimer(5, failed_at + timedelta(seconds=15))]
    assert run.fire(5).actions == [ScheduleActivity(6, "flaky", enc("job"))]

    # Attempt 4 was the last one allowed: the failure reaches the orchestrator.
    result = run.fail(6, "TimeoutError", "gave up")
    assert result.actions == []
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "TaskFailedError"
    assert result.failure.inner.error_type == "TimeoutError"
    assert run.kinds().count("TaskScheduled") == 4
    assert run.kinds().count("TimerCreated") == 3


def test_retry_that_succeeds_returns_the_value(form: str) -> None:
    retry = df.RetryOptions(timedelta(minutes=1), max_number_of_attempts=3)

    def gen(ctx):
        return (yield ctx.call_activity("flaky", retry=retry))

    async def coro(ctx):
        return await ctx.call_activity("flaky", retry=retry)

    run = Run(app_with(form, gen, coro))
    run.start()
    run.fail(0)
    run.fire(1)
    result = run.complete(2, "finally")
    assert result.status is RuntimeStatus.COMPLETED
    assert run.output == "finally"


def test_single_attempt_fails_without_a_retry_timer(form: str) -> None:
    retry = df.RetryOptions(timedelta(seconds=1), max_number_of_attempts=1)

    def gen(ctx):
        return (yield ctx.call_activity("flaky", retry=retry))

    async def coro(ctx):
        return await ctx.call_activity("flaky", retry=retry)

    run = Run(app_with(form, gen, coro))
    run.start()
    result = run.fail(0)
    assert result.actions == []
    assert result.status is RuntimeStatus.FAILED


def test_retry_timeout_stops_retrying_once_the_next_wait_would_pass_it(form: str) -> None:
    retry = df.RetryOptions(
        first_retry_interval=timedelta(seconds=10),
        max_number_of_attempts=10,
        retry_timeout=timedelta(seconds=30),
    )

    def gen(ctx):
        return (yield ctx.call_activity("flaky", retry=retry))

    async def coro(ctx):
        return await ctx.call_activity("flaky", retry=retry)

    run = Run(app_with(form, gen, coro))
    run.start()  # first attempt at T0
    # Failure at T0+1s: 1 + 10 <= 30, retry at T0+11s.
    assert run.fail(0).actions == [CreateTimer(1, T0 + timedelta(seconds=11))]
    run.fire(1)  # T0+11s
    # Failure at T0+12s: 12 + 10 <= 30, retry at T0+22s.
    assert run.fail(2).actions == [CreateTimer(3, T0 + timedelta(seconds=22))]
    run.fire(3)  # T0+22s
    # Failure at T0+23s: 23 + 10 > 30, no more attempts.
    result = run.fail(4)
    assert result.actions == []
    assert result.status is RuntimeStatus.FAILED


def test_handle_predicate_gets_failure_details_and_decides(form: str) -> None:
    seen: list[FailureDetails] = []

    def only_timeouts(failure: FailureDetails) -> bool:
        seen.append(failure)
        return failure.error_type == "TimeoutError"

    retry = df.RetryOptions(timedelta(seconds=1), max_number_of_attempts=5, handle=only_timeouts)

    def gen(ctx):
        return (yield ctx.call_activity("flaky", retry=retry))

    async def coro(ctx):
        return await ctx.call_activity("flaky", retry=retry)

    run = Run(app_with(form, gen, coro), check_replay=False)
    run.start()
    assert [type(a) for a in run.fail(0, "TimeoutError", "slow").actions] == [CreateTimer]
    run.fire(1)
    result = run.fail(2, "ValueError", "bad input")
    assert result.actions == []
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.inner.message == "bad input"
    assert [(f.error_type, f.message) for f in seen] == [
        ("TimeoutError", "slow"),
        ("ValueError", "bad input"),
    ]


def test_handle_predicate_that_raises_fails_the_instance_instead_of_the_executor(
    form: str,
) -> None:
    def broken(failure: FailureDetails) -> bool:
        return failure.inner.error_type == "X"  # inner is None: AttributeError

    retry = df.RetryOptions(timedelta(seconds=1), max_number_of_attempts=3, handle=broken)

    def gen(ctx):
        return (yield ctx.call_activity("flaky", retry=retry))

    async def coro(ctx):
        return await ctx.call_activity("flaky", retry=retry)

    run = Run(app_with(form, gen, coro))
    run.start()
    result = run.fail(0)
    assert result.status is RuntimeStatus.FAILED
    assert result.failure.error_type == "AttributeError"


def test_retry_must_be_retry_options(form: str) -> None:
    def gen(ctx):
        try:
            ctx.call_activity("flaky", retry=3)
        except TypeError as error:
            return str(error)
        yield ctx.create_timer(T0)

    async def coro(ctx):
        try:
            ctx.call_activity("flaky", retry=3)
        except TypeError as error:
            return str(error)

    result = Run(app_with(form, gen, coro)).start()
    assert result.status is RuntimeStatus.COMPLETED
    assert "retry must be a durafn.RetryOptions" in result.output
    assert result.actions == []


# ---------------------------------------------------------------------------------- RetryOptions


def test_retry_options_delays() -> None:
    assert [RETRY.delay_before(n) for n in (2, 3, 4, 5)] == [
        timedelta(seconds=5),
        timedelta(seconds=10),
        timedelta(seconds=15),
        timedelta(seconds=15),
    ]
    plain = df.RetryOptions(timedelta(seconds=3), max_number_of_attempts=3)
    assert plain.delay_before(2) == plain.delay_before(3) == timedelta(seconds=3)


def test_retry_options_should_retry() -> None:
    boom = FailureDetails("ValueError", "boom")
    assert RETRY.should_retry(boom, attempts_made=3, elapsed=timedelta(hours=1))
    assert not RETRY.should_retry(boom, attempts_made=4, elapsed=timedelta(0))
    limited = df.RetryOptions(timedelta(seconds=10), 5, retry_timeout=timedelta(seconds=30))
    assert limited.should_retry(boom, 1, timedelta(seconds=20))
    assert not limited.should_retry(boom, 1, timedelta(seconds=21))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"first_retry_interval": 5, "max_number_of_attempts": 2}, TypeError),
        ({"first_retry_interval": timedelta(0), "max_number_of_attempts": 2}, ValueError),
        ({"first_retry_interval": timedelta(seconds=1), "max_number_of_attempts": 0}, ValueError),
        (
            {
                "first_retry_interval": timedelta(seconds=1),
                "max_number_of_attempts": 2,
                "backoff_coefficient": 0.5,
            },
            ValueError,
        ),
    ],
)
def test_retry_options_validation(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        df.RetryOptions(**kwargs)
