"""A long entity batch keeps its lease: it runs off the worker's event loop, so the lease keeper
renews meanwhile, and a rival worker neither takes the entity over nor fences its commits off."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import durafn as df
from durafn.client.async_client import AsyncClient
from durafn.store.sqlite import SqliteStore
from durafn.worker import worker as worker_module
from durafn.worker.clock import SystemClock
from durafn.worker.entities import run_entity_batch
from durafn.worker.worker import Worker, WorkerOptions

OPERATIONS = 300
BATCH = 150  # 150 operations of 10 ms: a batch lasts 1.5 leases
SLOW = df.EntityId("slow", "k")

app = df.App()


@app.entity
def slow(ctx: df.EntityContext) -> None:
    time.sleep(0.01)
    ctx.set_state([*ctx.get_state(list), ctx.get_input()])


def test_two_workers_make_progress_on_an_entity_whose_batches_outlast_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        worker_module, "run_entity_batch", functools.partial(run_entity_batch, limit=BATCH)
    )
    path = str(tmp_path / "hub.db")

    async def fill() -> None:
        store = SqliteStore(path)
        client = AsyncClient(store, app=app, clock=SystemClock())
        for n in range(OPERATIONS):
            await client.signal_entity(SLOW, "append", n)
        await store.close()

    asyncio.run(fill())
    done = threading.Event()
    workers: list[Worker] = []

    def run_worker(name: str) -> None:
        async def main() -> None:
            store = SqliteStore(path)
            options = WorkerOptions(lease=timedelta(seconds=1), activities=False, max_idle=0.05)
            worker = Worker(app, store, options=options, worker_id=name)
            workers.append(worker)
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(stop))
            await asyncio.to_thread(done.wait, 60)
            stop.set()
            await running
            await store.close()

        asyncio.run(main())

    async def applied() -> list[int]:
        store = SqliteStore(path)
        state = await AsyncClient(store, app=app, clock=SystemClock()).read_entity_state(SLOW)
        await store.close()
        return list(state.entity_state or [])

    threads = [threading.Thread(target=run_worker, args=(f"w{i}",)) for i in range(2)]
    with caplog.at_level(logging.WARNING, logger="durafn.worker"):
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 30
            while len(asyncio.run(applied())) < OPERATIONS and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            done.set()
            for thread in threads:
                thread.join()

    assert asyncio.run(applied()) == list(range(OPERATIONS)), "each operation once, in order"
    assert sum(w.entity_batches for w in workers) >= OPERATIONS // BATCH
    assert sum(w.leases.renewals for w in workers) > 0
    assert "dropped an episode" not in caplog.text
