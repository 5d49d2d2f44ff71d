"""Orchestration scenarios end to end: a real SQLite file, the real background worker, real time.

Every scenario's orchestrator is written twice, as a generator (``yield``) and as ``async def``
(``await``), and each test runs over both forms: the two styles must behave the same. Tests
on the ``client`` fixture also run twice more: with the worker's sticky replay cache, and without
it, so that every episode rebuilds the orchestrator by replaying its whole history.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import durafn as df
from durafn.core.history import HistoryEvent

app = df.App()

forms = pytest.mark.parametrize("form", ["gen", "async"])

WAIT = 20.0  # seconds: generous, so a bug fails the test instead of hanging it


# ---------------------------------------------------------------------------------- activities


@app.activity
def shout(text: str) -> str:
    return text.upper()


@app.activity(name="exclaim")
async def add_exclamation(text: str) -> str:
    await asyncio.sleep(0.01)
    return f"{text}!"


@app.activity
def square(n: int) -> int:
    return n * n


@app.activity
async def async_square(n: int) -> int:
    await asyncio.sleep(0.01)
    return n * n


@app.activity
def echo(value: Any) -> Any:
    return value


@app.activity
def charge_card(order: str) -> str:
    raise ValueError(f"card declined for {order}")


@app.activity
def refund(order: str) -> str:
    return f"refunded {order}"


ATTEMPTS: Counter[str] = Counter()
ATTEMPTS_LOCK = threading.Lock()


def count_attempt(key: str) -> int:
    with ATTEMPTS_LOCK:
        ATTEMPTS[key] += 1
        return ATTEMPTS[key]


@app.activity
def flaky(key: str) -> str:
    attempt = count_attempt(key)
    if attempt < 3:
        raise ConnectionError(f"attempt {attempt} of {key} failed")
    return f"{key} ok after {attempt}"


@app.activity
def count_call(key: str) -> int:
    return count_attempt(key)


class PermanentError(Exception):
    """An error that retrying cannot fix."""


@app.activity
def forbidden(key: str) -> None:
    count_attempt(key)
    raise PermanentError(f"{key}: access denied")


# ---------------------------------------------------------------------------------- orchestrators


@app.orchestrator
def chain_gen(ctx: df.OrchestrationContext) -> Any:
    a = yield ctx.call_activity("shout", ctx.get_input())
    b = yield ctx.call_activity(add_exclamation, a)
    c = yield ctx.call_activity(shout, f"{b} again")
    d = yield ctx.call_activity("exclaim", c)
    return [a, b, c, d]


@app.orchestrator
async def chain_async(ctx: df.OrchestrationContext) -> Any:
    a = await ctx.call_activity("shout", ctx.get_input())
    b = await ctx.call_activity(add_exclamation, a)
    c = await ctx.call_activity(shout, f"{b} again")
    d = await ctx.call_activity("exclaim", c)
    return [a, b, c, d]


@app.orchestrator
def fan_out_gen(ctx: df.OrchestrationContext) -> Any:
    width = ctx.get_input()
    tasks = [ctx.call_activity(square if i % 2 else async_square, i) for i in range(width)]
    results = yield ctx.task_all(tasks)
    return results


@app.orchestrator
async def fan_out_async(ctx: df.OrchestrationContext) -> Any:
    width = ctx.get_input()
    tasks = [ctx.call_activity(square if i % 2 else async_square, i) for i in range(width)]
    return await ctx.task_all(tasks)


@app.orchestrator
def race_gen(ctx: df.OrchestrationContext) -> Any:
    approval = ctx.wait_for_external_event("approval")
    deadline = ctx.create_timer(timedelta(hours=1))
    winner = yield ctx.task_any([approval, deadline])
    if winner is not approval:
        return "timed out"
    if ctx.get_input():
        deadline.cancel()
    return {"approved_by": approval.result}


@app.orchestrator
async def race_async(ctx: df.OrchestrationContext) -> Any:
    approval = ctx.wait_for_external_event("approval")
    deadline = ctx.create_timer(timedelta(hours=1))
    winner = await ctx.task_any([approval, deadline])
    if winner is not approval:
        return "timed out"
    if ctx.get_input():
        deadline.cancel()
    return {"approved_by": approval.result}


@app.orchestrator
def early_event_gen(ctx: df.OrchestrationContext) -> Any:
    yield ctx.create_timer(timedelta(seconds=0.3))
    value = yield ctx.wait_for_external_event("early")
    return value


@app.orchestrator
async def early_event_async(ctx: df.OrchestrationContext) -> Any:
    await ctx.create_timer(timedelta(seconds=0.3))
    return await ctx.wait_for_external_event("early")


@app.orchestrator
def two_events_gen(ctx: df.OrchestrationContext) -> Any:
    first = yield ctx.wait_for_external_event("first")
    second = yield ctx.wait_for_external_event("second")
    return [first, second]


@app.orchestrator
async def two_events_async(ctx: df.OrchestrationContext) -> Any:
    first = await ctx.wait_for_external_event("first")
    second = await ctx.wait_for_external_event("second")
    return [first, second]


@app.orchestrator
def collect_gen(ctx: df.OrchestrationContext) -> Any:
    yield ctx.create_timer(timedelta(seconds=0.2))
    items = []
    for _ in range(ctx.get_input()):
        items.append((yield ctx.wait_for_external_event("item")))
    return items


@app.orchestrator
async def collect_async(ctx: df.OrchestrationContext) -> Any:
    await ctx.create_timer(timedelta(seconds=0.2))
    items = []
    for _ in range(ctx.get_input()):
        items.append(await ctx.wait_for_external_event("item"))
    return items


@app.orchestrator
def child_gen(ctx: df.OrchestrationContext) -> Any:
    shouted = yield ctx.call_activity("shout", ctx.get_input())
    return {
        "value": shouted,
        "instance_id": ctx.instance_id,
        "parent_instance_id": ctx.parent_instance_id,
    }


@app.orchestrator
async def child_async(ctx: df.OrchestrationContext) -> Any:
    shouted = await ctx.call_activity("shout", ctx.get_input())
    return {
        "value": shouted,
        "instance_id": ctx.instance_id,
        "parent_instance_id": ctx.parent_instance_id,
    }


@app.orchestrator
def failing_child_gen(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity("echo", None)
    raise ValueError(f"child rejected {ctx.get_input()!r}")


@app.orchestrator
async def failing_child_async(ctx: df.OrchestrationContext) -> Any:
    await ctx.call_activity("echo", None)
    raise ValueError(f"child rejected {ctx.get_input()!r}")


def _failure_summary(exc: df.TaskFailedError) -> dict[str, str]:
    details = exc.failure_details
    return {"task_message": str(exc), "error_type": details.error_type, "message": details.message}


@app.orchestrator
def parent_gen(ctx: df.OrchestrationContext) -> Any:
    by_name = yield ctx.call_sub_orchestrator("child_gen", "a")
    explicit = yield ctx.call_sub_orchestrator(
        child_gen, "b", instance_id=f"{ctx.instance_id}-child"
    )
    try:
        yield ctx.call_sub_orchestrator("failing_child_gen", "c")
        failure = None
    except df.TaskFailedError as exc:
        failure = _failure_summary(exc)
    return {
        "instance_id": ctx.instance_id,
        "parent_instance_id": ctx.parent_instance_id,
        "by_name": by_name,
        "explicit": explicit,
        "failure": failure,
    }


@app.orchestrator
async def parent_async(ctx: df.OrchestrationContext) -> Any:
    by_name = await ctx.call_sub_orchestrator("child_async", "a")
    explicit = await ctx.call_sub_orchestrator(
        child_async, "b", instance_id=f"{ctx.instance_id}-child"
    )
    try:
        await ctx.call_sub_orchestrator("failing_child_async", "c")
        failure = None
    except df.TaskFailedError as exc:
        failure = _failure_summary(exc)
    return {
        "instance_id": ctx.instance_id,
        "parent_instance_id": ctx.parent_instance_id,
        "by_name": by_name,
        "explicit": explicit,
        "failure": failure,
    }


def _compensation(exc: df.TaskFailedError, undo: str) -> dict[str, Any]:
    details = exc.failure_details
    return {
        "undo": undo,
        "error_type": details.error_type,
        "message": details.message,
        "stack_trace": details.stack_trace,
    }


@app.orchestrator
def compensate_gen(ctx: df.OrchestrationContext) -> Any:
    order = ctx.get_input()
    try:
        yield ctx.call_activity(charge_card, order)
    except df.TaskFailedError as exc:
        undo = yield ctx.call_activity("refund", order)
        return _compensation(exc, undo)
    return "charged"


@app.orchestrator
async def compensate_async(ctx: df.OrchestrationContext) -> Any:
    order = ctx.get_input()
    try:
        await ctx.call_activity(charge_card, order)
    except df.TaskFailedError as exc:
        undo = await ctx.call_activity("refund", order)
        return _compensation(exc, undo)
    return "charged"


@app.orchestrator
def unhandled_gen(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity("charge_card", ctx.get_input())
    return "unreachable"


@app.orchestrator
async def unhandled_async(ctx: df.OrchestrationContext) -> Any:
    await ctx.call_activity("charge_card", ctx.get_input())
    return "unreachable"


FAST_RETRY = df.RetryOptions(first_retry_interval=timedelta(seconds=0.1), max_number_of_attempts=5)
BACKOFF_RETRY = df.RetryOptions(
    first_retry_interval=timedelta(seconds=0.05), max_number_of_attempts=5, backoff_coefficient=2.0
)
UNLESS_PERMANENT = df.RetryOptions(
    first_retry_interval=timedelta(seconds=0.05),
    max_number_of_attempts=5,
    handle=lambda failure: failure.error_type != "PermanentError",
)
TWO_ATTEMPTS = df.RetryOptions(
    first_retry_interval=timedelta(seconds=0.05), max_number_of_attempts=2
)


@app.orchestrator
def retry_gen(ctx: df.OrchestrationContext) -> Any:
    a = yield ctx.call_activity("flaky", f"{ctx.instance_id}/a", retry=FAST_RETRY)
    b = yield ctx.call_activity_with_retry(flaky, BACKOFF_RETRY, f"{ctx.instance_id}/b")
    return [a, b]


@app.orchestrator
async def retry_async(ctx: df.OrchestrationContext) -> Any:
    a = await ctx.call_activity("flaky", f"{ctx.instance_id}/a", retry=FAST_RETRY)
    b = await ctx.call_activity_with_retry(flaky, BACKOFF_RETRY, f"{ctx.instance_id}/b")
    return [a, b]


@app.orchestrator
def retry_stops_gen(ctx: df.OrchestrationContext) -> Any:
    seen = {}
    try:
        yield ctx.call_activity(forbidden, f"{ctx.instance_id}/handled", retry=UNLESS_PERMANENT)
    except df.TaskFailedError as exc:
        seen["handled"] = exc.failure_details.error_type
    try:
        yield ctx.call_activity_with_retry("forbidden", TWO_ATTEMPTS, f"{ctx.instance_id}/spent")
    except df.TaskFailedError as exc:
        seen["spent"] = exc.failure_details.error_type
    return seen


@app.orchestrator
async def retry_stops_async(ctx: df.OrchestrationContext) -> Any:
    seen = {}
    try:
        await ctx.call_activity(forbidden, f"{ctx.instance_id}/handled", retry=UNLESS_PERMANENT)
    except df.TaskFailedError as exc:
        seen["handled"] = exc.failure_details.error_type
    try:
        await ctx.call_activity_with_retry("forbidden", TWO_ATTEMPTS, f"{ctx.instance_id}/spent")
    except df.TaskFailedError as exc:
        seen["spent"] = exc.failure_details.error_type
    return seen


@app.orchestrator
def flaky_child_gen(ctx: df.OrchestrationContext) -> Any:
    attempt = yield ctx.call_activity("count_call", ctx.get_input())
    if attempt < 3:
        raise ConnectionError(f"child attempt {attempt} failed")
    return attempt


@app.orchestrator
async def flaky_child_async(ctx: df.OrchestrationContext) -> Any:
    attempt = await ctx.call_activity("count_call", ctx.get_input())
    if attempt < 3:
        raise ConnectionError(f"child attempt {attempt} failed")
    return attempt


@app.orchestrator
def retry_child_gen(ctx: df.OrchestrationContext) -> Any:
    generated = yield ctx.call_sub_orchestrator_with_retry(
        "flaky_child_gen", FAST_RETRY, f"{ctx.instance_id}/generated"
    )
    fixed = yield ctx.call_sub_orchestrator(
        flaky_child_gen, f"{ctx.instance_id}/fixed", f"{ctx.instance_id}-fixed", retry=BACKOFF_RETRY
    )
    return [generated, fixed]


@app.orchestrator
async def retry_child_async(ctx: df.OrchestrationContext) -> Any:
    generated = await ctx.call_sub_orchestrator_with_retry(
        "flaky_child_async", FAST_RETRY, f"{ctx.instance_id}/generated"
    )
    fixed = await ctx.call_sub_orchestrator(
        flaky_child_async,
        f"{ctx.instance_id}/fixed",
        f"{ctx.instance_id}-fixed",
        retry=BACKOFF_RETRY,
    )
    return [generated, fixed]


@app.orchestrator
def timers_gen(ctx: df.OrchestrationContext) -> Any:
    start = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=0.2))
    middle = ctx.current_utc_datetime
    yield ctx.create_timer(middle + timedelta(seconds=0.2))
    return [start, middle, ctx.current_utc_datetime]


@app.orchestrator
async def timers_async(ctx: df.OrchestrationContext) -> Any:
    start = ctx.current_utc_datetime
    await ctx.create_timer(timedelta(seconds=0.2))
    middle = ctx.current_utc_datetime
    await ctx.create_timer(middle + timedelta(seconds=0.2))
    return [start, middle, ctx.current_utc_datetime]


@app.orchestrator
def counter_gen(ctx: df.OrchestrationContext) -> Any:
    n = ctx.get_input()
    yield ctx.call_activity("echo", n)
    if n < 4:
        ctx.continue_as_new(n + 1)
    return n


@app.orchestrator
async def counter_async(ctx: df.OrchestrationContext) -> Any:
    n = ctx.get_input()
    await ctx.call_activity("echo", n)
    if n < 4:
        ctx.continue_as_new(n + 1)
    return n


@app.orchestrator
def carry_gen(ctx: df.OrchestrationContext) -> Any:
    generation, preserve = ctx.get_input()
    if generation == 0:
        # "carried" arrives before "restart" and is never awaited by this execution.
        yield ctx.wait_for_external_event("restart")
        ctx.continue_as_new([1, preserve], preserve_unprocessed_events=preserve)
    carried = ctx.wait_for_external_event("carried")
    give_up = ctx.create_timer(timedelta(seconds=0.3))
    winner = yield ctx.task_any([carried, give_up])
    return carried.result if winner is carried else "no event"


@app.orchestrator
async def carry_async(ctx: df.OrchestrationContext) -> Any:
    generation, preserve = ctx.get_input()
    if generation == 0:
        await ctx.wait_for_external_event("restart")
        ctx.continue_as_new([1, preserve], preserve_unprocessed_events=preserve)
    carried = ctx.wait_for_external_event("carried")
    give_up = ctx.create_timer(timedelta(seconds=0.3))
    winner = await ctx.task_any([carried, give_up])
    return carried.result if winner is carried else "no event"


@app.orchestrator
def custom_status_gen(ctx: df.OrchestrationContext) -> Any:
    ctx.set_custom_status({"stage": "waiting for approval"})
    approver = yield ctx.wait_for_external_event("approve")
    ctx.set_custom_status({"stage": "approved", "by": approver})
    return "done"


@app.orchestrator
async def custom_status_async(ctx: df.OrchestrationContext) -> Any:
    ctx.set_custom_status({"stage": "waiting for approval"})
    approver = await ctx.wait_for_external_event("approve")
    ctx.set_custom_status({"stage": "approved", "by": approver})
    return "done"


@app.orchestrator
def input_gen(ctx: df.OrchestrationContext) -> Any:
    value = ctx.get_input()
    yield ctx.call_activity("echo", None)
    return {"input": value, "again": ctx.get_input()}


@app.orchestrator
async def input_async(ctx: df.OrchestrationContext) -> Any:
    value = ctx.get_input()
    await ctx.call_activity("echo", None)
    return {"input": value, "again": ctx.get_input()}


# (instance_id, label, value) each time the code runs, replays included.
UUIDS: list[tuple[str, str, str]] = []


@app.orchestrator
def uuid_gen(ctx: df.OrchestrationContext) -> Any:
    first, second = ctx.new_uuid(), ctx.new_uuid()
    UUIDS.append((ctx.instance_id, "first", str(first)))
    echoed = yield ctx.call_activity("echo", str(first))
    third = ctx.new_uuid()
    UUIDS.append((ctx.instance_id, "third", str(third)))
    yield ctx.create_timer(timedelta(seconds=0.05))
    return [str(first), str(second), echoed, str(third)]


@app.orchestrator
async def uuid_async(ctx: df.OrchestrationContext) -> Any:
    first, second = ctx.new_uuid(), ctx.new_uuid()
    UUIDS.append((ctx.instance_id, "first", str(first)))
    echoed = await ctx.call_activity("echo", str(first))
    third = ctx.new_uuid()
    UUIDS.append((ctx.instance_id, "third", str(third)))
    await ctx.create_timer(timedelta(seconds=0.05))
    return [str(first), str(second), echoed, str(third)]


@app.orchestrator
def clock_gen(ctx: df.OrchestrationContext) -> Any:
    before = ctx.current_utc_datetime
    yield ctx.call_activity("echo", None)
    return [before, ctx.current_utc_datetime]


@app.orchestrator
async def clock_async(ctx: df.OrchestrationContext) -> Any:
    before = ctx.current_utc_datetime
    await ctx.call_activity("echo", None)
    return [before, ctx.current_utc_datetime]


# (instance_id, label, ctx.is_replaying) each time the code passes a point, replays included.
REPLAY_FLAGS: list[tuple[str, str, bool]] = []


@app.orchestrator
def replay_gen(ctx: df.OrchestrationContext) -> Any:
    REPLAY_FLAGS.append((ctx.instance_id, "start", ctx.is_replaying))
    value = yield ctx.wait_for_external_event("go")
    REPLAY_FLAGS.append((ctx.instance_id, "after event", ctx.is_replaying))
    shouted = yield ctx.call_activity("shout", value)
    REPLAY_FLAGS.append((ctx.instance_id, "end", ctx.is_replaying))
    return shouted


@app.orchestrator
async def replay_async(ctx: df.OrchestrationContext) -> Any:
    REPLAY_FLAGS.append((ctx.instance_id, "start", ctx.is_replaying))
    value = await ctx.wait_for_external_event("go")
    REPLAY_FLAGS.append((ctx.instance_id, "after event", ctx.is_replaying))
    shouted = await ctx.call_activity("shout", value)
    REPLAY_FLAGS.append((ctx.instance_id, "end", ctx.is_replaying))
    return shouted


@app.orchestrator
def logging_gen(ctx: df.OrchestrationContext) -> Any:
    ctx.logger.info("started with %s", ctx.get_input())
    for step in range(3):
        yield ctx.call_activity("echo", step)
        ctx.logger.info("step %d done", step)
    yield ctx.create_timer(timedelta(seconds=0.05))
    ctx.logger.info("finished")
    return "logged"


@app.orchestrator
async def logging_async(ctx: df.OrchestrationContext) -> Any:
    ctx.logger.info("started with %s", ctx.get_input())
    for step in range(3):
        await ctx.call_activity("echo", step)
        ctx.logger.info("step %d done", step)
    await ctx.create_timer(timedelta(seconds=0.05))
    ctx.logger.info("finished")
    return "logged"


# ---------------------------------------------------------------------------------- helpers


@pytest.fixture(params=["sticky-cache", "replay-every-episode"])
def rt(request: pytest.FixtureRequest, store_url: str) -> Iterator[df.Runtime]:
    """The runtime; every scenario runs with the sticky replay cache, and without it (then each
    episode rebuilds the orchestrator by replaying its whole history)."""
    cache_size = 1000 if request.param == "sticky-cache" else 0
    options = df.WorkerOptions(cache_size=cache_size)
    with df.Runtime(app, store=store_url, options=options) as runtime:
        yield runtime


@pytest.fixture
def client(rt: df.Runtime) -> df.Client:
    return rt.client


def run(client: df.Client, orchestrator: str, input: Any = None, **kwargs: Any) -> Any:
    """Start an instance and wait (bounded) until it finishes; returns its final status."""
    instance_id = client.start_new(orchestrator, input, **kwargs)
    return client.wait_for_completion(instance_id, timeout=WAIT)


def history(client: df.Client, instance_id: str) -> list[HistoryEvent]:
    status = client.get_status(instance_id, show_history=True, show_history_output=True)
    assert status is not None and status.history is not None
    return status.history


def kinds(events: list[HistoryEvent]) -> list[str]:
    return [event.kind for event in events]


def of_kind(events: list[HistoryEvent], kind: str) -> list[Any]:
    return [event for event in events if event.kind == kind]


def completed(status: df.OrchestrationStatus) -> df.OrchestrationStatus:
    assert status.runtime_status is df.RuntimeStatus.COMPLETED, status.failure_details
    return status


def wait_for_history(
    client: df.Client, instance_id: str, kind: str, wait_until: Callable[..., Any]
) -> None:
    wait_until(lambda: kind in kinds(history(client, instance_id)), what=f"{kind} in history")


# ---------------------------------------------------------------------------------- scenarios


@forms
def test_activity_chain_by_name_and_by_function_sync_and_async(
    client: df.Client, form: str
) -> None:
    status = completed(run(client, f"chain_{form}", "hello"))

    assert status.output == ["HELLO", "HELLO!", "HELLO! AGAIN", "HELLO! AGAIN!"]
    scheduled = of_kind(history(client, status.instance_id), "TaskScheduled")
    assert [event.name for event in scheduled] == ["shout", "exclaim", "shout", "exclaim"]


@forms
@pytest.mark.parametrize("width", [10, 0])
def test_fan_out_fan_in_with_task_all(client: df.Client, form: str, width: int) -> None:
    status = completed(run(client, f"fan_out_{form}", width))

    assert status.output == [i * i for i in range(width)]
    events = kinds(history(client, status.instance_id))
    assert events.count("TaskScheduled") == width
    if width:
        # All activities go out in the first episode, before any result comes back.
        assert events.index("TaskCompleted") > max(
            i for i, kind in enumerate(events) if kind == "TaskScheduled"
        )


@forms
@pytest.mark.parametrize("cancel_loser", [False, True], ids=["timer-left", "timer-cancelled"])
def test_task_any_event_beats_one_hour_timer(
    client: df.Client, form: str, cancel_loser: bool, wait_until: Callable[..., Any]
) -> None:
    instance_id = client.start_new(f"race_{form}", cancel_loser)
    wait_for_history(client, instance_id, "TimerCreated", wait_until)

    client.raise_event(instance_id, "approval", "ann")

    # Well before the losing one-hour timer: the timer must not keep the instance alive.
    status = completed(client.wait_for_completion(instance_id, timeout=WAIT))
    assert status.output == {"approved_by": "ann"}
    events = kinds(history(client, instance_id))
    assert "TimerFired" not in events
    assert events[-2:] == ["ExecutionCompleted", "OrchestratorCompleted"]
    unfinished = client.get_status_by(runtime_status=["Pending", "Running", "Suspended"])
    assert unfinished.instances == []


@forms
def test_event_raised_before_the_orchestrator_waits_is_delivered(
    client: df.Client, form: str
) -> None:
    instance_id = client.start_new(f"early_event_{form}")
    client.raise_event(instance_id, "early", {"sent": "right after start"})

    status = completed(client.wait_for_completion(instance_id, timeout=WAIT))

    assert status.output == {"sent": "right after start"}
    events = kinds(history(client, instance_id))
    assert events.index("EventRaised") < events.index("TimerFired")


@forms
def test_event_arriving_before_an_earlier_awaited_event_waits_its_turn(
    client: df.Client, form: str
) -> None:
    instance_id = client.start_new(f"two_events_{form}")
    client.raise_event(instance_id, "second", "2nd")
    client.raise_event(instance_id, "first", "1st")

    status = completed(client.wait_for_completion(instance_id, timeout=WAIT))

    assert status.output == ["1st", "2nd"]


@forms
def test_events_of_one_name_are_delivered_in_arrival_order(
    client: df.Client, form: str, wait_until: Callable[..., Any]
) -> None:
    instance_id = client.start_new(f"collect_{form}", 5)
    for item in range(3):  # buffered: the orchestrator is still in its timer
        client.raise_event(instance_id, "item", item)
    wait_for_history(client, instance_id, "TimerFired", wait_until)
    for item in range(3, 5):  # now it is waiting for them
        client.raise_event(instance_id, "item", item)

    status = completed(client.wait_for_completion(instance_id, timeout=WAIT))

    assert status.output == [0, 1, 2, 3, 4]


@forms
def test_sub_orchestrations_result_explicit_id_and_failure(client: df.Client, form: str) -> None:
    parent_id = f"parent-{form}"
    status = completed(run(client, f"parent_{form}", instance_id=parent_id))

    out = status.output
    assert out["instance_id"] == parent_id
    assert out["parent_instance_id"] is None
    by_name = out["by_name"]
    assert by_name["value"] == "A"
    assert by_name["parent_instance_id"] == parent_id
    # A default child id is the parent's id, its execution, and the step number.
    assert re.fullmatch(rf"{parent_id}:[0-9a-f]{{8}}:0000", by_name["instance_id"])
    assert out["explicit"] == {
        "value": "B",
        "instance_id": f"{parent_id}-child",
        "parent_instance_id": parent_id,
    }
    assert out["failure"]["error_type"] == "ValueError"
    assert out["failure"]["message"] == "child rejected 'c'"
    assert f"failing_child_{form}" in out["failure"]["task_message"]

    created = of_kind(history(client, parent_id), "SubOrchestrationInstanceCreated")
    assert [event.name for event in created] == [
        f"child_{form}",
        f"child_{form}",
        f"failing_child_{form}",
    ]
    children = {event.instance_id: client.get_status(event.instance_id) for event in created}
    assert [child.runtime_status for child in children.values()] == [
        df.RuntimeStatus.COMPLETED,
        df.RuntimeStatus.COMPLETED,
        df.RuntimeStatus.FAILED,
    ]
    assert all(child.parent_instance_id == parent_id for child in children.values())
    explicit = children[f"{parent_id}-child"]
    assert explicit.input == "b"
    assert explicit.output == out["explicit"]
    failed = children[created[2].instance_id]
    assert failed.failure_details is not None
    assert failed.failure_details.error_type == "ValueError"


@forms
def test_activity_failure_is_caught_and_compensated(client: df.Client, form: str) -> None:
    status = completed(run(client, f"compensate_{form}", "order-1"))

    out = status.output
    assert out["undo"] == "refunded order-1"
    assert out["error_type"] == "ValueError"
    assert out["message"] == "card declined for order-1"
    assert "in charge_card" in out["stack_trace"]
    assert 'raise ValueError(f"card declined for {order}")' in out["stack_trace"]
    scheduled = of_kind(history(client, status.instance_id), "TaskScheduled")
    assert [event.name for event in scheduled] == ["charge_card", "refund"]


@forms
def test_unhandled_activity_failure_fails_the_instance(client: df.Client, form: str) -> None:
    status = run(client, f"unhandled_{form}", "order-2")

    assert status.runtime_status is df.RuntimeStatus.FAILED
    assert status.output is None
    failure = status.failure_details
    assert failure is not None
    assert failure.error_type == "TaskFailedError"
    assert "charge_card" in failure.message
    assert "card declined for order-2" in failure.message
    assert failure.stack_trace and f"unhandled_{form}" in failure.stack_trace
    assert failure.is_caused_by(ValueError)
    assert failure.inner is not None
    assert failure.inner.error_type == "ValueError"
    assert failure.inner.message == "card declined for order-2"
    assert failure.inner.stack_trace and "in charge_card" in failure.inner.stack_trace
    assert kinds(history(client, status.instance_id))[-2] == "ExecutionCompleted"


@forms
def test_retries_succeed_after_two_failures_with_durable_timers(
    client: df.Client, form: str
) -> None:
    status = completed(run(client, f"retry_{form}"))
    iid = status.instance_id

    assert status.output == [f"{iid}/a ok after 3", f"{iid}/b ok after 3"]
    assert ATTEMPTS[f"{iid}/a"] == 3
    assert ATTEMPTS[f"{iid}/b"] == 3
    events = history(client, iid)
    assert kinds(events).count("TaskScheduled") == 6
    assert kinds(events).count("TaskFailed") == 4
    timers = of_kind(events, "TimerCreated")
    # The waits are durable timers: first_retry_interval, then backoff_coefficient ** n.
    assert [timer.fire_at - timer.timestamp for timer in timers] == [
        timedelta(seconds=0.1),
        timedelta(seconds=0.1),
        timedelta(seconds=0.05),
        timedelta(seconds=0.1),
    ]
    assert len(of_kind(events, "TimerFired")) == 4
    assert all(
        failed.failure.error_type == "ConnectionError" for failed in of_kind(events, "TaskFailed")
    )


@forms
def test_retries_stop_for_a_permanent_error_and_after_max_attempts(
    client: df.Client, form: str
) -> None:
    status = completed(run(client, f"retry_stops_{form}"))
    iid = status.instance_id

    assert status.output == {"handled": "PermanentError", "spent": "PermanentError"}
    assert ATTEMPTS[f"{iid}/handled"] == 1  # handle= said no: not retried at all
    assert ATTEMPTS[f"{iid}/spent"] == 2  # max_number_of_attempts counts the first one
    events = kinds(history(client, iid))
    assert events.count("TimerCreated") == 1
    assert events.count("TaskScheduled") == 3


@forms
def test_sub_orchestration_retries_start_a_child_per_attempt(client: df.Client, form: str) -> None:
    status = completed(run(client, f"retry_child_{form}"))
    iid = status.instance_id

    assert status.output == [3, 3]
    events = history(client, iid)
    created = [event.instance_id for event in of_kind(events, "SubOrchestrationInstanceCreated")]
    # A generated child id is new on each attempt; an explicit one is reused.
    generated = created[:3]
    assert len(set(generated)) == 3 and all(c.startswith(f"{iid}:") for c in generated)
    assert created[3:] == [f"{iid}-fixed"] * 3
    children = [client.get_status(child) for child in generated]
    assert [child.runtime_status for child in children] == [
        df.RuntimeStatus.FAILED,
        df.RuntimeStatus.FAILED,
        df.RuntimeStatus.COMPLETED,
    ]
    assert client.get_status(f"{iid}-fixed").runtime_status is df.RuntimeStatus.COMPLETED
    timers = of_kind(events, "TimerCreated")
    assert [timer.fire_at - timer.timestamp for timer in timers] == [
        timedelta(seconds=0.1),
        timedelta(seconds=0.1),
        timedelta(seconds=0.05),
        timedelta(seconds=0.1),
    ]


@forms
def test_create_timer_with_timedelta_and_with_datetime(client: df.Client, form: str) -> None:
    status = completed(run(client, f"timers_{form}"))

    start, middle, end = status.output
    assert middle - start >= timedelta(seconds=0.2)
    assert end - middle >= timedelta(seconds=0.2)
    events = history(client, status.instance_id)
    assert [timer.fire_at for timer in of_kind(events, "TimerCreated")] == [
        start + timedelta(seconds=0.2),
        middle + timedelta(seconds=0.2),
    ]
    assert len(of_kind(events, "TimerFired")) == 2


@forms
def test_continue_as_new_restarts_until_done_with_fresh_history(
    client: df.Client, form: str
) -> None:
    status = completed(run(client, f"counter_{form}", 0))

    assert status.output == 4
    assert status.input == 4
    events = history(client, status.instance_id)
    started = of_kind(events, "ExecutionStarted")
    assert len(started) == 1 and json.loads(started[0].input) == 4
    assert len(of_kind(events, "TaskScheduled")) == 1
    assert "ContinueAsNew" not in kinds(events)


@forms
@pytest.mark.parametrize("preserve", [True, False], ids=["preserved", "dropped"])
def test_continue_as_new_carries_unprocessed_events_when_asked(
    client: df.Client, form: str, preserve: bool
) -> None:
    instance_id = client.start_new(f"carry_{form}", [0, preserve])
    client.raise_event(instance_id, "carried", {"payload": 42})
    client.raise_event(instance_id, "restart")

    status = completed(client.wait_for_completion(instance_id, timeout=WAIT))

    assert status.output == ({"payload": 42} if preserve else "no event")
    assert status.input == [1, preserve]


@forms
def test_custom_status_is_visible_while_running(
    client: df.Client, form: str, wait_until: Callable[..., Any]
) -> None:
    instance_id = client.start_new(f"custom_status_{form}")

    running = wait_until(
        lambda: (s := client.get_status(instance_id)).custom_status and s, what="a custom status"
    )
    assert running.runtime_status is df.RuntimeStatus.RUNNING
    assert running.custom_status == {"stage": "waiting for approval"}

    client.raise_event(instance_id, "approve", "ann")
    status = completed(client.wait_for_completion(instance_id, timeout=WAIT))
    assert status.custom_status == {"stage": "approved", "by": "ann"}
    assert status.output == "done"


@forms
def test_get_input_round_trips_rich_values(client: df.Client, form: str) -> None:
    value = {
        "when": datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC),
        "pair": (1, "two"),
        "price": Decimal("12.50"),
        "items": [1, "a", None, True, 2.5],
        "nested": {"k": []},
    }

    status = completed(run(client, f"input_{form}", value))

    assert status.output == {"input": value, "again": value}
    assert isinstance(status.output["input"]["pair"], tuple)
    assert status.input == value


@forms
def test_new_uuid_differs_per_call_and_is_stable_across_replays(store_url: str, form: str) -> None:
    # Without the sticky cache (nor activities run in place, which keep the instance in
    # hand) every episode replays the whole history.
    options = df.WorkerOptions(cache_size=0, in_place_activities=0)
    with df.Runtime(app, store=store_url, options=options) as rt:
        status = completed(run(rt.client, f"uuid_{form}"))
        events = history(rt.client, status.instance_id)

    first, second, echoed, third = status.output
    assert len({first, second, third}) == 3
    assert echoed == first
    assert json.loads(of_kind(events, "TaskScheduled")[0].input) == first
    runs = [(label, value) for iid, label, value in UUIDS if iid == status.instance_id]
    assert [value for label, value in runs if label == "first"] == [first] * 3
    assert [value for label, value in runs if label == "third"] == [third] * 2


@forms
def test_current_utc_datetime_is_within_the_real_run_window(client: df.Client, form: str) -> None:
    window_start = datetime.now(UTC)
    status = completed(run(client, f"clock_{form}"))
    window_end = datetime.now(UTC)

    before, after = status.output
    assert before.tzinfo is not None and before.utcoffset() == timedelta(0)
    assert window_start <= before <= after <= window_end
    started = of_kind(history(client, status.instance_id), "OrchestratorStarted")
    assert before == started[0].timestamp
    assert after == started[1].timestamp


@forms
def test_is_replaying_is_false_live_and_true_on_replay(
    store_url: str, form: str, wait_until: Callable[..., Any]
) -> None:
    with df.Runtime(app, store=store_url) as rt:
        instance_id = rt.client.start_new(f"replay_{form}")
        wait_for_history(rt.client, instance_id, "ExecutionStarted", wait_until)
    # A new runtime has an empty replay cache: the next episode replays the history first.
    with df.Runtime(app, store=store_url) as rt:
        rt.client.raise_event(instance_id, "go", "replayed")
        status = completed(rt.client.wait_for_completion(instance_id, timeout=WAIT))

    assert status.output == "REPLAYED"
    flags = [(label, replaying) for iid, label, replaying in REPLAY_FLAGS if iid == instance_id]
    assert flags[0] == ("start", False)
    assert ("start", True) in flags
    assert ("after event", False) in flags
    assert [label for label, replaying in flags if not replaying] == ["start", "after event", "end"]


@forms
@pytest.mark.parametrize("cache_size", [0, 1000], ids=["replay-every-episode", "sticky-cache"])
def test_replay_safe_logger_logs_each_step_once(
    store_url: str, form: str, cache_size: int, caplog: pytest.LogCaptureFixture
) -> None:
    name = f"logging_{form}"
    caplog.set_level(logging.INFO, logger=f"durafn.orchestration.{name}")
    options = df.WorkerOptions(cache_size=cache_size)
    with df.Runtime(app, store=store_url, options=options) as rt:
        status = completed(run(rt.client, name, "input-1"))
        worker = rt.worker
    # Read once the runtime has stopped: the client may see the last commit before the worker
    # has counted it.
    episodes, cache_hits = worker.episodes, worker.cache.hits

    records = [r for r in caplog.records if r.name == f"durafn.orchestration.{name}"]
    assert [r.getMessage() for r in records] == [
        "started with input-1",
        "step 0 done",
        "step 1 done",
        "step 2 done",
        "finished",
    ]
    assert all(getattr(r, "instance_id", None) == status.instance_id for r in records)
    assert episodes >= 5
    if cache_size == 0:
        assert cache_hits == 0  # so the code really ran again from the start each episode
