"""Entity steps of an orchestration whose code changed, or whose history no longer replays.

A lock-holding instance that fails (its code now takes another path, or a past result no longer
decodes) still releases its locks; a signal already sent is not sent again when the changed code
ends before the point where it was recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

import durafn as df
from durafn.client.async_client import AsyncClient
from durafn.executor.entity import SchedulerState
from durafn.store import open_store
from durafn.worker.clock import VirtualClock
from durafn.worker.worker import Worker, WorkerOptions

A = df.EntityId("acct", "a")
C = df.EntityId("counter", "c")
BROKEN = {"on": False}


@dataclasses.dataclass
class Receipt:
    n: int

    def __post_init__(self) -> None:
        if BROKEN["on"]:
            raise ValueError("Receipt changed shape")  # e.g. a field added in a later deploy


def locking_app(version: str) -> df.App:
    app = df.App()

    @app.entity
    def acct(ctx: df.EntityContext) -> None:
        ctx.set_state(ctx.get_state(lambda: 0) + 1)

    @app.activity
    def make_receipt(_: object) -> Receipt:
        return Receipt(1)

    def grab(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
        yield ctx.call_activity("make_receipt")
        with (yield ctx.lock(A)):
            yield ctx.call_entity(A, "touch")
            yield ctx.wait_for_external_event("go")
        return "done"

    if version == "v1":
        app.orchestrator(grab)
    elif version == "v2-returns-early":

        @app.orchestrator(name="grab")
        def grab2(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
            yield ctx.call_activity("make_receipt")
            return "changed"
    elif version == "v2-different-step":

        @app.orchestrator(name="grab")
        def grab3(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
            yield ctx.call_activity("make_receipt")
            yield ctx.call_activity("make_receipt")  # history has EntityLockRequested here
            return "changed"

    @app.orchestrator
    def second(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
        with (yield ctx.lock(A)):
            yield ctx.call_entity(A, "touch")
        return "second done"

    return app


async def lock_scenario(version: str, *, break_decode: bool = False) -> None:
    BROKEN["on"] = False
    store = open_store(f"memory://leak-{uuid.uuid4().hex}")
    clock = VirtualClock()
    opts = WorkerOptions(cache_size=0)
    v1 = locking_app("v1")
    client = AsyncClient(store, app=v1, clock=clock)
    iid = await client.start_new("grab")
    await Worker(v1, store, clock=clock, options=opts).run_until_idle()
    rec = await store.get_instance(A.instance_id)
    assert SchedulerState.load(rec.entity_state).lock_owner == iid  # v1 holds the lock

    # Deploy v2 (or break the decoding of a past result), then wake the instance up.
    BROKEN["on"] = break_decode
    v2 = locking_app(version)
    await client.raise_event(iid, "go")
    await Worker(v2, store, clock=clock, options=opts).run_until_idle()
    status = await client.get_status(iid)
    assert status.runtime_status.value == "Failed"

    other = await client.start_new("second")
    await Worker(v2, store, clock=clock, options=opts).run_until_idle()
    rec = await store.get_instance(A.instance_id)
    sched = SchedulerState.load(rec.entity_state)
    second = await client.get_status(other)
    try:
        assert sched.lock_owner is None, f"A still locked by failed instance {sched.lock_owner}"
        assert second.runtime_status.value == "Completed"
    finally:
        await store.close()


def test_lock_released_when_v2_returns_early() -> None:
    asyncio.run(lock_scenario("v2-returns-early"))


def test_lock_released_when_v2_asks_for_a_different_step() -> None:
    asyncio.run(lock_scenario("v2-different-step"))


def test_lock_released_when_replay_cannot_decode_a_past_result() -> None:
    asyncio.run(lock_scenario("v1", break_decode=True))


def signalling_app(version: str) -> df.App:
    app = df.App()

    @app.entity
    def counter(ctx: df.EntityContext) -> None:
        ctx.set_state(ctx.get_state(lambda: 0) + ctx.get_input())

    if version == "v1":

        @app.orchestrator
        def notify(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
            ctx.signal_entity(C, "add", 1)
            yield ctx.wait_for_external_event("go")
            return "v1"
    else:

        @app.orchestrator(name="notify")
        def notify2(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
            ctx.signal_entity(C, "add", 1)
            return "v2"
            yield  # a generator

    return app


async def signal_scenario(url: str) -> None:
    store = open_store(url)
    clock = VirtualClock()
    opts = WorkerOptions(cache_size=0)
    v1 = signalling_app("v1")
    client = AsyncClient(store, app=v1, clock=clock)
    iid = await client.start_new("notify")
    await Worker(v1, store, clock=clock, options=opts).run_until_idle()
    assert (await client.read_entity_state(C)).entity_state == 1

    v2 = signalling_app("v2")
    await client.raise_event(iid, "go")
    await Worker(v2, store, clock=clock, options=opts).run_until_idle()
    status = await client.get_status(iid)
    counter = (await client.read_entity_state(C)).entity_state
    assert status.runtime_status.value == "Completed"
    await store.close()
    assert counter == 1, f"signal applied {counter} times"


def test_signal_not_resent_on_replay_memory() -> None:
    asyncio.run(signal_scenario(f"memory://resend-{uuid.uuid4().hex}"))


def test_signal_not_resent_on_replay_sqlite(tmp_path: Path) -> None:
    asyncio.run(signal_scenario(f"sqlite:///{tmp_path}/x.db"))
