"""Orchestration leases are renewed while an episode runs, so a slow episode keeps its instance."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

import durafn as df
from durafn.client.async_client import AsyncClient
from durafn.core.errors import StoreError
from durafn.core.history import HistoryEvent
from durafn.store.base import OrchestrationWorkItem
from durafn.store.memory import MemoryStore
from durafn.worker.clock import VirtualClock
from durafn.worker.leases import LeaseKeeper
from durafn.worker.worker import Worker, WorkerOptions

app = df.App()


@app.activity
def echo(value: Any) -> Any:
    return value


@app.orchestrator
def two_steps(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity("echo", 1)
    second = yield ctx.call_activity("echo", 2)
    return [first, second]


class SlowHistoryStore(MemoryStore):
    """A memory store whose history reads take ``delay`` seconds, like a loaded database."""

    delay = 0.0

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        await asyncio.sleep(self.delay)
        return await super().get_history(instance_id)


class LateClaimStore(MemoryStore):
    """A memory store whose claims come 0.2 s late: its worker claims only what another worker
    of the same hub has not claimed first (or could not keep)."""

    async def lock_next_orchestrations(
        self,
        owner: str,
        lease: timedelta,
        now: datetime,
        limit: int,
        max_messages: int = 10_000,
    ) -> list[OrchestrationWorkItem]:
        await asyncio.sleep(0.2)
        return await super().lock_next_orchestrations(
            owner, lease, now + timedelta(seconds=0.2), limit, max_messages
        )


def test_the_keeper_renews_held_leases_and_lets_go_of_lost_ones() -> None:
    async def scenario() -> None:
        clock = VirtualClock()
        store = MemoryStore(uuid.uuid4().hex)
        client = AsyncClient(store, app=app, clock=clock)
        await client.start_new("two_steps", instance_id="slow")
        lease = timedelta(seconds=30)
        item = await store.lock_next_orchestration("me", lease, clock.now())
        assert item is not None
        keeper = LeaseKeeper(store, lease, clock)
        keeper.hold(item)

        clock.advance(timedelta(seconds=5))
        await keeper.renew_due()
        assert keeper.renewals == 0, "a fresh lease is not renewed"

        clock.advance(timedelta(seconds=6))
        await keeper.renew_due()
        assert keeper.renewals == 1
        assert item.locked_until == clock.now() + lease
        clock.advance(timedelta(seconds=25))  # past the first lease, inside the renewed one
        assert await store.lock_next_orchestration("other", lease, clock.now()) is None

        clock.advance(timedelta(seconds=60))  # the holder went silent: the lease expires
        taken = await store.lock_next_orchestration("other", lease, clock.now())
        assert taken is not None
        await keeper.renew_due()
        assert keeper.renewals == 1, "a lost lease is not renewed"
        await keeper.renew_due()
        assert keeper.renewals == 1, "a lost lease is let go"
        await client.close()

    asyncio.run(scenario())


class SlowRenewalStore(MemoryStore):
    """A memory store whose renewals take 0.05 s each, and which counts how many overlap."""

    running = 0
    most = 0

    async def renew_orchestration_lease(
        self, item: OrchestrationWorkItem, lease: timedelta, now: datetime
    ) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(0.05)
            await super().renew_orchestration_lease(item, lease, now)
        finally:
            self.running -= 1


def test_the_keeper_renews_the_due_leases_together() -> None:
    async def scenario() -> None:
        clock = VirtualClock()
        store = SlowRenewalStore(uuid.uuid4().hex)
        client = AsyncClient(store, app=app, clock=clock)
        for n in range(8):
            await client.start_new("two_steps", instance_id=f"i{n}")
        lease = timedelta(seconds=30)
        keeper = LeaseKeeper(store, lease, clock)
        items = await store.lock_next_orchestrations("me", lease, clock.now(), 8)
        assert len(items) == 8
        for item in items:
            keeper.hold(item)
        keeper.release(items[0])  # its episode committed: not renewed
        clock.advance(timedelta(seconds=11))
        await keeper.renew_due()
        assert keeper.renewals == 7
        assert store.most == 7, "the renewals waited for one another"
        assert all(item.locked_until == clock.now() + lease for item in items[1:])
        await client.close()

    asyncio.run(scenario())


def test_a_slow_episode_keeps_its_instance_from_a_second_worker(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> tuple[Worker, Any]:
        name = uuid.uuid4().hex
        store = SlowHistoryStore(name)
        other_store = LateClaimStore(name)
        # No sticky cache (nor a held instance): every episode reads its history, slowly
        # (2.5 leases).
        options = WorkerOptions(
            lease=timedelta(seconds=1), cache_size=0, max_idle=0.05, in_place_activities=0
        )
        slow = Worker(app, store, options=options, worker_id="slow")
        rival = Worker(app, other_store, options=WorkerOptions(activities=False, max_idle=0.05))
        client = AsyncClient(other_store, app=app)
        instance_id = await client.start_new("two_steps")
        stop = asyncio.Event()
        running = [asyncio.create_task(slow.run(stop))]
        # The first episode has no history to wait for; slow it down from then on.
        store.delay = 2.5
        running.append(asyncio.create_task(rival.run(stop)))
        status = await client.wait_for_completion(instance_id, timeout=30)
        stop.set()
        await asyncio.gather(*running)
        await client.close()
        return slow, status

    with caplog.at_level(logging.WARNING, logger="durafn.worker"):
        slow, status = asyncio.run(scenario())
    assert status.runtime_status is df.RuntimeStatus.COMPLETED
    assert status.output == [1, 2]
    assert "dropped an episode" not in caplog.text
    assert slow.leases.renewals >= 2


class OneLostResultStore(MemoryStore):
    """A memory store that fails the first activity result it is given, as a store that
    cannot commit for a moment would."""

    failed = 0

    async def complete_activity(self, item: Any, result: HistoryEvent, now: datetime) -> bool:
        if not self.failed:
            self.failed += 1
            raise StoreError("the store is busy")
        return await super().complete_activity(item, result, now)


def test_an_activity_whose_result_could_not_be_delivered_runs_again_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its worker lets its task go at once: it does not wait for its lease (ten minutes
    here) to expire before it runs again."""

    async def scenario() -> Any:
        store = OneLostResultStore(uuid.uuid4().hex)
        options = WorkerOptions(lease=timedelta(minutes=10), max_idle=0.05, in_place_activities=0)
        worker = Worker(app, store, options=options)
        client = AsyncClient(store, app=app)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            instance_id = await client.start_new("two_steps")
            return await client.wait_for_completion(instance_id, timeout=30)
        finally:
            stop.set()
            await task
            await client.close()

    with caplog.at_level(logging.ERROR, logger="durafn.worker"):
        status = asyncio.run(scenario())
    assert status.runtime_status is df.RuntimeStatus.COMPLETED
    assert status.output == [1, 2]
    assert "could not deliver the result of activity echo" in caplog.text
