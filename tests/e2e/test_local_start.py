"""Instances started by a client beside a worker go straight to that worker.

A runtime (or host) runs a worker and a client in one process: the client creates each new
instance leased to the worker, which runs its first episode at once instead of claiming it.
When the worker has no free slot, is not running, or runs on another event loop, the client
creates the instance as usual and any worker claims it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import durafn as df
from durafn.client.async_client import AsyncClient
from durafn.core.history import ExecutionStarted
from durafn.core.status import RuntimeStatus
from durafn.store.base import NewInstance, OrchestrationWorkItem
from durafn.store.sqlite import SqliteStore
from durafn.worker.checkpoint import new_execution_id
from durafn.worker.worker import Worker, WorkerOptions

app = df.App()


@app.activity
def shout(value: str) -> str:
    return value.upper()


@app.orchestrator
def greet(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity("shout", ctx.get_input()))


class ClaimCountingStore(SqliteStore):
    """A SQLite store that remembers which instances its claims leased."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.claimed: list[str] = []

    async def lock_next_orchestrations(
        self,
        owner: str,
        lease: timedelta,
        now: datetime,
        limit: int,
        max_messages: int = 10_000,
    ) -> list[OrchestrationWorkItem]:
        items = await super().lock_next_orchestrations(owner, lease, now, limit, max_messages)
        self.claimed += [item.instance_id for item in items]
        return items


def test_a_runtime_runs_the_instances_its_client_starts_without_claiming_them(
    tmp_path: Path,
) -> None:
    store = ClaimCountingStore(tmp_path / "hub.db")
    with df.Runtime(app, store=store) as rt:
        # Until its dispatcher runs, the worker takes nothing this way: wait for it once.
        rt.client.wait_for_completion(rt.client.start_new("greet", "warm"), timeout=30)
        ids = [rt.client.start_new("greet", f"hi {n}") for n in range(5)]
        outputs = [rt.client.wait_for_completion(i, timeout=30).output for i in ids]
    assert outputs == [f"HI {n}" for n in range(5)]
    assert not set(ids) & set(store.claimed), "a started instance went through a claim"


def test_a_client_beside_a_worker_that_is_not_running_creates_instances_for_anyone(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        client = AsyncClient(store, app=app)
        client.local_worker = Worker(app, store)  # never run
        instance_id = await client.start_new("greet", "x")
        item = await store.lock_next_orchestration("other", timedelta(seconds=30), _now())
        assert item is not None and item.instance_id == instance_id
        await store.close()

    asyncio.run(scenario())


def test_a_worker_without_a_free_slot_leaves_new_instances_to_the_claims(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = ClaimCountingStore(tmp_path / "hub.db")
        options = WorkerOptions(max_concurrent_orchestrations=1, max_concurrent_activities=1)
        worker = Worker(app, store, options=options)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        client = AsyncClient(store, app=app)
        client.local_worker = worker
        await asyncio.sleep(0.05)
        slot = worker.reserve()  # the one slot, taken as a creation in flight would take it
        assert slot is not None and worker.reserve() is None
        instance_id = await client.start_new("greet", "y")
        worker.adopt(None)  # the slot comes back: the worker claims the instance
        status = await client.wait_for_completion(instance_id, timeout=30)
        assert status.output == "Y"
        assert instance_id in store.claimed
        stop.set()
        await task
        await store.close()

    asyncio.run(scenario())


def test_an_instance_adopted_after_the_worker_stopped_is_let_go_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        worker = Worker(app, store)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.05)
        slot = worker.reserve()
        assert slot is not None
        owner, lease = slot
        stop.set()
        await task
        assert worker.reserve() is None
        item = await store.create_instance_leased(_new_instance("late"), _now(), owner, lease)
        worker.adopt(item)
        await asyncio.sleep(0.05)
        other = await store.lock_next_orchestration("other", lease, _now())
        assert other is not None and other.instance_id == item.instance_id
        record = await store.get_instance(item.instance_id)
        assert record is not None and record.status is RuntimeStatus.PENDING
        await store.close()

    asyncio.run(scenario())


def _now() -> datetime:
    return datetime.now(UTC)


def _new_instance(instance_id: str) -> NewInstance:
    started = ExecutionStarted(
        timestamp=_now(), name="greet", execution_id=new_execution_id(), input='"z"'
    )
    return NewInstance(instance_id, started, None)


class GatedCreationStore(SqliteStore):
    """A SQLite store whose leased creations wait for ``gate`` first."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def create_instance_leased(
        self, new: NewInstance, now: datetime, owner: str, lease: timedelta
    ) -> OrchestrationWorkItem:
        self.waiting.set()
        await self.gate.wait()
        return await super().create_instance_leased(new, now, owner, lease)


def test_a_start_cancelled_while_its_instance_is_created_still_runs_the_instance(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        store = GatedCreationStore(tmp_path / "hub.db")
        worker = Worker(app, store)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        client = AsyncClient(store, app=app)
        client.local_worker = worker
        await asyncio.sleep(0.05)
        starting = asyncio.create_task(client.start_new("greet", "w", instance_id="cut"))
        await store.waiting.wait()
        starting.cancel()
        store.gate.set()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        # The creation goes on without its caller; once it commits, the worker runs it.
        for _ in range(200):
            if await store.get_instance("cut") is not None:
                break
            await asyncio.sleep(0.01)
        status = await client.wait_for_completion("cut", timeout=10)
        assert status.output == "W"
        assert worker.reserve() is not None  # every slot came back
        worker.adopt(None)
        stop.set()
        await task
        await store.close()

    asyncio.run(scenario())


def test_a_worker_whose_run_was_cancelled_takes_no_new_instances(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        worker = Worker(app, store)
        task = asyncio.create_task(worker.run(asyncio.Event()))
        await asyncio.sleep(0.05)
        slot = worker.reserve()
        assert slot is not None
        worker.adopt(None)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert worker.reserve() is None
        await store.close()

    asyncio.run(scenario())
