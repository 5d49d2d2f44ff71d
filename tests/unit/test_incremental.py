"""Incremental consumption: a live executor fed only each episode's new messages (the worker's
sticky replay cache) must produce exactly what a fresh executor replaying the committed history
produces (``execute(app, id, past, messages, now)``) — same new events, actions, status and
output, episode by episode. Histories must also survive the stored form (``dump_event`` /
``load_event``) and replay to the same state.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import durafn as df
from durafn.core.history import dump_event, load_event
from durafn.core.status import RuntimeStatus
from durafn.executor.orchestration import OrchestrationExecutor

from .factories import (
    INSTANCE_ID,
    Run,
    event_raised,
    new_app,
    pick,
    resumed,
    same_result,
    sub_completed,
    suspended,
    task_completed,
    terminated,
)

# ---------------------------------------------------------------------------------- orchestrators


def chain_gen(ctx):
    out = []
    for city in ("Tokyo", "Seattle", "London"):
        out.append((yield ctx.call_activity("say_hello", city)))
    return out


async def chain_coro(ctx):
    out = []
    for city in ("Tokyo", "Seattle", "London"):
        out.append(await ctx.call_activity("say_hello", city))
    return out


def fan_gen(ctx):
    items = yield ctx.call_activity("get_work")
    ctx.set_custom_status({"items": len(items)})
    results = yield ctx.task_all([ctx.call_activity("process", i) for i in items])
    return sum(results)


async def fan_coro(ctx):
    items = await ctx.call_activity("get_work")
    ctx.set_custom_status({"items": len(items)})
    results = await ctx.task_all([ctx.call_activity("process", i) for i in items])
    return sum(results)


def approval_gen(ctx):
    request_id = ctx.new_uuid()
    yield ctx.call_activity("notify", {"request": request_id})
    timeout = ctx.create_timer(timedelta(hours=24))
    approval = ctx.wait_for_external_event("approval")
    winner = yield ctx.task_any([approval, timeout])
    if winner is approval:
        timeout.cancel()
        return {"approved": approval.result, "request": request_id}
    yield ctx.call_activity("notify", "escalated")
    return {"approved": None, "request": request_id}


async def approval_coro(ctx):
    request_id = ctx.new_uuid()
    await ctx.call_activity("notify", {"request": request_id})
    timeout = ctx.create_timer(timedelta(hours=24))
    approval = ctx.wait_for_external_event("approval")
    winner = await ctx.task_any([approval, timeout])
    if winner is approval:
        timeout.cancel()
        return {"approved": approval.result, "request": request_id}
    await ctx.call_activity("notify", "escalated")
    return {"approved": None, "request": request_id}


RETRY = df.RetryOptions(timedelta(seconds=10), max_number_of_attempts=3, backoff_coefficient=3.0)


def saga_gen(ctx):
    ctx.logger.info("saga for %s", ctx.get_input())
    charge = yield ctx.call_activity("charge", ctx.get_input(), retry=RETRY)
    try:
        yield ctx.call_sub_orchestrator("shipping", charge)
    except df.TaskFailedError:
        ctx.set_custom_status("compensating")
        yield ctx.call_activity("refund", charge)
        return "refunded"
    return "shipped"


async def saga_coro(ctx):
    ctx.logger.info("saga for %s", ctx.get_input())
    charge = await ctx.call_activity("charge", ctx.get_input(), retry=RETRY)
    try:
        await ctx.call_sub_orchestrator("shipping", charge)
    except df.TaskFailedError:
        ctx.set_custom_status("compensating")
        await ctx.call_activity("refund", charge)
        return "refunded"
    return "shipped"


def counter_gen(ctx):
    total = ctx.get_input() or 0
    yield ctx.call_activity("process", total)
    total += yield ctx.wait_for_external_event("add")
    ctx.continue_as_new(total, preserve_unprocessed_events=True)


async def counter_coro(ctx):
    total = ctx.get_input() or 0
    await ctx.call_activity("process", total)
    total += await ctx.wait_for_external_event("add")
    ctx.continue_as_new(total, preserve_unprocessed_events=True)


def shipping_gen(ctx):
    return (yield ctx.call_activity("ship", ctx.get_input()))


async def shipping_coro(ctx):
    return await ctx.call_activity("ship", ctx.get_input())


ORCHESTRATORS = {
    "chain": (chain_gen, chain_coro),
    "fan": (fan_gen, fan_coro),
    "approval": (approval_gen, approval_coro),
    "saga": (saga_gen, saga_coro),
    "counter": (counter_gen, counter_coro),
    "shipping": (shipping_gen, shipping_coro),
}


def build_app(form: str) -> df.App:
    app = new_app()
    for name, (gen, coro) in ORCHESTRATORS.items():
        app.orchestrator(name=name)(pick(form, gen, coro))
    return app


# ---------------------------------------------------------------------------------- scripts


def chain(run: Run) -> None:
    run.start("chain")
    for n, city in enumerate(("Tokyo", "Seattle", "London")):
        run.complete(n, f"Hello {city}!")


def fan_out(run: Run) -> None:
    run.start("fan")
    run.complete(0, [1, 2, 3, 4])
    run.episode(task_completed(4, 40), task_completed(2, 20))
    run.episode(task_completed(2, 20), task_completed(1, 10))  # a duplicate and a new one
    run.complete(3, 30)


def approval_in_time(run: Run) -> None:
    run.start("approval")
    run.complete(0)
    run.raise_event("approval", "ann")


def approval_timed_out(run: Run) -> None:
    run.start("approval")
    run.complete(0)
    run.fire(1)
    run.raise_event("approval", "too late")  # the waiter lost the race: nothing happens
    run.complete(2)


def saga_with_retry_and_compensation(run: Run) -> None:
    run.start("saga", 100)
    run.fail(0, "TimeoutError", "bank slow")
    run.fire(1)
    run.fail(2, "TimeoutError", "bank slow again")
    run.fire(3)
    run.complete(4, "ch_1")
    run.fail(5, "OutOfStock", "sku 7")
    run.complete(6)


def suspended_in_flight(run: Run) -> None:
    run.start("saga", 5)
    run.episode(suspended("maintenance"))
    run.episode(task_completed(0, "ch_2"), event_raised("ignored", 1))
    run.episode(resumed())
    run.episode(suspended(), sub_completed(1, "shipped"), resumed())


def counter_continues_as_new(run: Run) -> None:
    run.start("counter", 1)
    run.raise_event("add", 2)
    run.raise_event("add", 3)
    run.episode(task_completed(0), event_raised("add", 4))


def terminated_mid_flight(run: Run) -> None:
    run.start("fan")
    run.complete(0, [1, 2])
    run.episode(task_completed(1, 1), terminated("enough"), task_completed(2, 2))


def _approved_by(who: str | None) -> Callable[[Any], bool]:
    return lambda out: out["approved"] == who and isinstance(out["request"], uuid.UUID)


# script -> (its steps, the final status, a check of the final decoded output)
SCRIPTS: dict[str, tuple[Callable[[Run], None], RuntimeStatus, Callable[[Any], bool]]] = {
    "chain": (
        chain,
        RuntimeStatus.COMPLETED,
        lambda out: out == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
    ),
    "fan_out": (fan_out, RuntimeStatus.COMPLETED, lambda out: out == 100),
    "approval_in_time": (approval_in_time, RuntimeStatus.COMPLETED, _approved_by("ann")),
    "approval_timed_out": (approval_timed_out, RuntimeStatus.COMPLETED, _approved_by(None)),
    "saga": (saga_with_retry_and_compensation, RuntimeStatus.COMPLETED, "refunded".__eq__),
    "suspended": (suspended_in_flight, RuntimeStatus.COMPLETED, "shipped".__eq__),
    "counter": (counter_continues_as_new, RuntimeStatus.CONTINUED_AS_NEW, (1 + 2).__eq__),
    "terminated": (terminated_mid_flight, RuntimeStatus.TERMINATED, "enough".__eq__),
}


def _run(form: str, script: str, mode: str) -> Run:
    run = Run(build_app(form), mode=mode, check_replay=False)
    SCRIPTS[script][0](run)
    return run


@pytest.mark.parametrize("script", SCRIPTS)
def test_sticky_executor_matches_replay_per_episode(form: str, script: str) -> None:
    sticky = _run(form, script, "sticky")
    replayed = _run(form, script, "replay")
    assert len(sticky.results) == len(replayed.results)
    for number, (live, fresh) in enumerate(zip(sticky.results, replayed.results, strict=True)):
        diffs = same_result(live, fresh)
        assert not diffs, f"episode {number} differs:\n" + "\n".join(diffs)
    assert sticky.history == replayed.history
    _, status, check_output = SCRIPTS[script]
    assert sticky.status is status
    assert check_output(sticky.output), sticky.output


@pytest.mark.parametrize("script", SCRIPTS)
def test_history_round_trips_through_the_stored_form_and_replays(form: str, script: str) -> None:
    run = _run(form, script, "sticky")
    stored = [dump_event(event) for event in run.history]
    loaded = [load_event(text) for text in stored]
    assert loaded == run.history
    assert [dump_event(event) for event in loaded] == stored

    # An executor rebuilt from the stored history is in the state of the live one.
    app = build_app(form)
    rebuilt = OrchestrationExecutor(app, INSTANCE_ID)
    rebuilt.replay(loaded)
    assert rebuilt.is_finished == run.executor.is_finished == run.last.is_finished
    later = run.now + timedelta(minutes=1)
    probe = [event_raised("probe", 1)]
    diffs = same_result(run.executor.run_episode(probe, later), rebuilt.run_episode(probe, later))
    assert not diffs, "\n".join(diffs)


def test_in_flight_state_survives_the_stored_form(form: str) -> None:
    """Cut a run in the middle, store and reload it, and finish it on both sides."""
    app = build_app(form)
    live = Run(app, check_replay=False)
    live.start("fan")
    live.complete(0, [5, 6])
    live.complete(2, 60)

    rebuilt = OrchestrationExecutor(app, INSTANCE_ID)
    rebuilt.replay([load_event(dump_event(e)) for e in live.history])
    assert not rebuilt.is_finished
    last = [task_completed(1, 50)]
    from_live = live.executor.run_episode(last, live.now)
    from_stored = rebuilt.run_episode(last, live.now)
    assert not same_result(from_live, from_stored)
    assert from_stored.status is RuntimeStatus.COMPLETED
    assert from_stored.output == "110"
