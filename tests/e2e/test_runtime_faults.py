"""Faults of the runtime itself: crashed episodes, failing stores, hostile activities.

Each test pins a way an instance could get stuck, lose a message or stop a worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import durafn as df
from durafn.core.errors import StoreError
from durafn.store import open_store
from durafn.store.memory import MemoryStore
from durafn.testing import VirtualRuntime
from durafn.worker.clock import VirtualClock
from durafn.worker.worker import Worker, WorkerOptions

STORES = ["memory", "sqlite"]


def store_url(kind: str, tmp_path: Path) -> str | None:
    return None if kind == "memory" else f"sqlite:///{tmp_path}/hub.db"


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return store_url(request.param, tmp_path)


# ------------------------------------------------------------------ lifecycle after continue_as_new

looping = df.App()


@looping.orchestrator
def looper(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    yield ctx.wait_for_external_event("go")
    ctx.continue_as_new((ctx.get_input() or 0) + 1)


def test_terminate_arriving_with_the_event_that_continues_as_new_is_not_lost(
    url: str | None,
) -> None:
    with VirtualRuntime(looping, store=url) as rt:
        instance_id = rt.client.start_new("looper", 0)
        rt.run_until_idle()
        rt.client.raise_event(instance_id, "go")
        rt.client.terminate(instance_id, "stop it")
        rt.run_until_idle()
        status = rt.client.get_status(instance_id)
        assert status is not None
        assert status.runtime_status is df.RuntimeStatus.TERMINATED
        assert status.output == "stop it"


# ------------------------------------------------------------------ crashed episodes

STRICT = {"on": False}


@dataclasses.dataclass
class Money:
    cents: int

    def __post_init__(self) -> None:
        if STRICT["on"] and self.cents < 0:
            raise ValueError("negative money")


faulty = df.App()


@faulty.activity
def refund(_: Any) -> Money:
    return Money(-5)


@faulty.orchestrator
def child(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    money = yield ctx.call_activity("refund")
    return money.cents


@faulty.orchestrator
def parent(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    try:
        return (yield ctx.call_sub_orchestrator("child"))
    except df.TaskFailedError as exc:
        return f"child failed: {exc.failure_details.message}"


def test_a_child_whose_episode_crashes_fails_and_tells_its_parent(
    url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    STRICT["on"] = True
    try:
        with caplog.at_level(logging.CRITICAL), VirtualRuntime(faulty, store=url) as rt:
            status = rt.run_to_completion(rt.client.start_new("parent"))
    finally:
        STRICT["on"] = False
    assert status.runtime_status is df.RuntimeStatus.COMPLETED
    assert "negative money" in status.output


def test_a_history_that_no_longer_replays_fails_the_instance_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"

    @faulty.orchestrator(name="waits_after_refund")
    def waits_after_refund(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
        money = yield ctx.call_activity("refund")
        yield ctx.wait_for_external_event("go")
        return money.cents

    with VirtualRuntime(faulty, store=url) as rt:
        instance_id = rt.client.start_new("waits_after_refund")
        rt.run_until_idle()
        running = rt.client.get_status(instance_id)
        assert running is not None and running.runtime_status is df.RuntimeStatus.RUNNING
    # A new version of the code cannot read the recorded result; a fresh runtime must replay.
    STRICT["on"] = True
    try:
        with caplog.at_level(logging.CRITICAL), VirtualRuntime(faulty, store=url) as rt:
            rt.client.raise_event(instance_id, "go")
            rt.run_until_idle()
            failed = rt.client.get_status(instance_id)
            episodes = rt._worker.episodes if rt._worker else 0
    finally:
        STRICT["on"] = False
    assert failed is not None and failed.runtime_status is df.RuntimeStatus.FAILED
    assert failed.failure_details is not None
    assert "negative money" in failed.failure_details.message
    assert episodes == 1


# ------------------------------------------------------------------ failing stores


class FlakyStore(MemoryStore):
    """Fails its first few calls of one method, as a locked or restarting database would."""

    def __init__(self, name: str, method: str, failures: int) -> None:
        super().__init__(name)
        self.method = method
        self.failures = failures

    def _maybe_fail(self, method: str) -> None:
        if method == self.method and self.failures > 0:
            self.failures -= 1
            raise StoreError("database is locked")

    async def next_visible_at(self, now: datetime) -> datetime | None:
        self._maybe_fail("next_visible_at")
        return await super().next_visible_at(now)

    async def checkpoint(self, item: Any, checkpoint: Any, now: datetime) -> bool:
        self._maybe_fail("checkpoint")
        return await super().checkpoint(item, checkpoint, now)


simple = df.App()


@simple.activity
def double(n: int) -> int:
    return n * 2


@simple.orchestrator
def doubles(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(double, ctx.get_input()))


@pytest.mark.parametrize("method", ["next_visible_at", "checkpoint"])
def test_store_errors_do_not_stop_the_worker(method: str, caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> df.OrchestrationStatus:
        store = FlakyStore(f"flaky-{method}-{id(caplog)}", method, failures=2)
        client = df.AsyncClient(store, app=simple)
        worker = Worker(simple, store, options=WorkerOptions(max_idle=0.05))
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            instance_id = await client.start_new("doubles", 21)
            return await client.wait_for_completion(instance_id, timeout=30)
        finally:
            stop.set()
            await running

    with caplog.at_level(logging.CRITICAL):
        status = asyncio.run(body())
    assert status.output == 42


# ------------------------------------------------------------------ hostile activities

hostile = df.App()


@hostile.activity
def exits(_: Any) -> None:
    sys.exit(3)


@hostile.orchestrator
def calls_exit(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    try:
        yield ctx.call_activity("exits")
    except df.TaskFailedError as exc:
        return exc.failure_details.error_type
    return "returned"


def test_an_activity_calling_sys_exit_fails_the_task_not_the_worker() -> None:
    with VirtualRuntime(hostile) as rt:
        status = rt.run_to_completion(rt.client.start_new("calls_exit"))
    assert status.output == "SystemExit"


@hostile.activity
def echo(value: Any) -> Any:
    return value


@hostile.orchestrator
def exits_after_a_step(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    yield ctx.call_activity("echo", 1)
    sys.exit(3)


@hostile.orchestrator
def exits_at_once(ctx: df.OrchestrationContext) -> None:
    raise KeyboardInterrupt


@hostile.orchestrator
async def cancels_itself(ctx: df.OrchestrationContext) -> None:
    await ctx.call_activity("echo", 1)
    raise asyncio.CancelledError("by its own code")


@hostile.entity
def quitter(ctx: df.EntityContext) -> None:
    if ctx.operation_name == "quit":
        sys.exit(5)
    ctx.set_state((ctx.get_state(lambda: 0) or 0) + ctx.get_input())


@pytest.mark.parametrize(
    ("name", "error_type"),
    [
        ("exits_after_a_step", "SystemExit"),
        ("exits_at_once", "KeyboardInterrupt"),
        ("cancels_itself", "CancelledError"),
    ],
)
def test_orchestrator_code_raising_a_base_exception_fails_the_instance_not_the_worker(
    url: str | None, name: str, error_type: str
) -> None:
    with VirtualRuntime(hostile, store=url) as rt:
        status = rt.run_to_completion(rt.client.start_new(name))
        assert status.runtime_status is df.RuntimeStatus.FAILED
        assert status.failure_details is not None
        assert status.failure_details.error_type == error_type
        # The worker goes on serving.
        assert rt.run_to_completion(rt.client.start_new("calls_exit")).output == "SystemExit"


def test_an_entity_operation_calling_sys_exit_fails_that_operation_only(url: str | None) -> None:
    with VirtualRuntime(hostile, store=url) as rt:
        entity = df.EntityId("quitter", "q")
        rt.client.signal_entity(entity, "add", 2)
        rt.client.signal_entity(entity, "quit")
        rt.client.signal_entity(entity, "add", 3)
        rt.run_until_idle()
        assert rt.client.read_entity_state(entity).entity_state == 5


def test_an_activity_whose_worker_keeps_dying_fails_after_max_attempts() -> None:
    async def body() -> df.OrchestrationStatus:
        clock = VirtualClock(datetime(2030, 1, 1, tzinfo=UTC))
        store = open_store(f"memory://dying-{id(clock)}")
        client = df.AsyncClient(store, app=simple, clock=clock)
        options = WorkerOptions(max_activity_attempts=2, lease=timedelta(seconds=5))
        worker = Worker(simple, store, clock=clock, options=options)
        instance_id = await client.start_new("doubles", 1)
        orchestrations_only = WorkerOptions(activities=False)
        await Worker(simple, store, clock=clock, options=orchestrations_only).run_until_idle()
        # Simulate workers that die mid-activity: lease the task and never finish it.
        for _ in range(2):
            leased = await store.lock_next_activities(
                "doomed", timedelta(seconds=5), clock.now(), 1
            )
            assert len(leased) == 1
            clock.advance(timedelta(seconds=6))
        await worker.run_until_idle()
        status = await client.get_status(instance_id)
        assert status is not None
        return status

    status = asyncio.run(body())
    assert status.runtime_status is df.RuntimeStatus.FAILED
    assert status.failure_details is not None
    assert "giving up" in status.failure_details.message


# ------------------------------------------------------------------ retries and sub-orchestrations

retrying = df.App()


@retrying.activity
def always_down(_: Any) -> None:
    raise RuntimeError("down")


@retrying.orchestrator
def retries_long(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    options = df.RetryOptions(
        timedelta(seconds=1),
        max_number_of_attempts=80,
        backoff_coefficient=2.0,
        max_retry_interval=timedelta(minutes=5),
    )
    try:
        yield ctx.call_activity("always_down", retry=options)
    except df.TaskFailedError:
        return "gave up"


def test_a_long_capped_backoff_does_not_overflow() -> None:
    with VirtualRuntime(retrying) as rt:
        status = rt.run_to_completion(rt.client.start_new("retries_long"))
    assert status.output == "gave up"


@retrying.orchestrator
def sleeps_long(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    yield ctx.create_timer(timedelta(days=1))


@retrying.orchestrator
def restarts_with_child(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    round_ = ctx.get_input()
    child = ctx.call_sub_orchestrator("sleeps_long")
    if round_ == 0:
        ctx.continue_as_new(1)
    yield child
    return "done"


def test_children_of_successive_executions_get_distinct_ids() -> None:
    with VirtualRuntime(retrying) as rt:
        instance_id = rt.client.start_new("restarts_with_child", 0, instance_id="job")
        status = rt.run_to_completion(instance_id)
        children = rt.client.get_status_by(instance_id_prefix="job:").instances
    assert status.output == "done"
    assert len({c.instance_id for c in children}) == len(children) >= 1


def test_terminating_a_parent_terminates_its_running_children() -> None:
    with VirtualRuntime(retrying) as rt:
        rt.client.start_new("restarts_with_child", 1, instance_id="job")
        rt.run_until_idle()
        rt.client.terminate("job", "enough")
        rt.run_until_idle()
        children = rt.client.get_status_by(instance_id_prefix="job:").instances
        # The same id can be started again without colliding with a leftover child.
        rt.client.start_new("restarts_with_child", 1, instance_id="job")
        rt.run_until_idle()
        again = rt.client.get_status("job")
    assert [c.runtime_status for c in children] == [df.RuntimeStatus.TERMINATED]
    assert again is not None and again.runtime_status is df.RuntimeStatus.RUNNING


# ------------------------------------------------------------------ events and abandoned waits

approvals = df.App()


@approvals.orchestrator
def approval_with_cooldown(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    reminders = 0
    while True:
        timer = ctx.create_timer(timedelta(hours=1))
        winner = yield ctx.task_any([ctx.wait_for_external_event("approve"), timer])
        if winner is not timer:
            return f"approved after {reminders} reminders"
        reminders += 1
        yield ctx.create_timer(timedelta(minutes=10))


def test_an_event_arriving_during_a_cooldown_reaches_the_next_wait(url: str | None) -> None:
    with VirtualRuntime(approvals, store=url) as rt:
        instance_id = rt.client.start_new("approval_with_cooldown")
        rt.advance(timedelta(hours=1, minutes=5))  # inside the first cool-down
        rt.client.raise_event(instance_id, "approve", True)
        status = rt.run_to_completion(instance_id, max_time=timedelta(days=1))
    assert status.output == "approved after 1 reminders"


def test_events_left_after_the_end_are_counted_as_dropped(tmp_path: Path) -> None:
    async def body() -> int:
        store = open_store(f"sqlite:///{tmp_path}/hub.db")
        client = df.AsyncClient(store, app=looping)
        worker = Worker(looping, store)
        instance_id = await client.start_new("looper", 0)
        await worker.run_until_idle()
        await client.raise_event(instance_id, "go")
        await client.raise_event(instance_id, "go")  # reaches the ended execution: dropped
        await client.terminate(instance_id)
        await worker.run_until_idle()
        dropped = await store.dropped_events(instance_id)
        worker.close()
        await store.close()
        return dropped

    assert asyncio.run(body()) >= 1
