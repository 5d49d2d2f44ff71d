"""``GET /metrics``: the backlog and the worker's counters in the Prometheus text format."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

import durafn as df
from durafn.host.keys import HostKeys
from durafn.host.server import create_asgi_app
from durafn.store import open_store
from durafn.worker.worker import Worker, WorkerOptions

app = df.App()


@app.activity
def echo(value: Any) -> Any:
    return value


@app.orchestrator
def fan_out(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    results = yield ctx.task_all([ctx.call_activity("echo", n) for n in range(ctx.get_input())])
    return sum(results)


def samples(text: str) -> dict[str, tuple[dict[str, str], float]]:
    return {
        sample.name: (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_report_the_backlog_and_the_worker_counters() -> None:
    store = open_store(f"memory://metrics-{uuid.uuid4().hex}")
    client = df.AsyncClient(store, app=app)
    asgi = create_asgi_app(app, client, keys=None)
    # Activities go through the queue (not run in place), so the backlog shows them.
    options = WorkerOptions(
        max_concurrent_orchestrations=2, max_concurrent_activities=4, in_place_activities=0
    )
    worker = Worker(app, store, options=options, worker_id="w-test")
    asgi.state.durafn.worker = worker

    async def scenario() -> tuple[str, str, str]:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            empty = (await http.get("/metrics")).text
            for n in range(3):
                await client.start_new("fan_out", 10, instance_id=f"f{n}")
            queued = await http.get("/metrics")
            assert queued.headers["content-type"].startswith("text/plain")
            # One episode each: 30 activities become visible.
            for _ in range(3):
                item = await store.lock_next_orchestration(
                    "w-test", options.lease, client.clock.now()
                )
                assert item is not None
                await worker.process_orchestration(item)
            scheduled = (await http.get("/metrics")).text
        await store.close()
        return empty, queued.text, scheduled

    empty, queued, scheduled = asyncio.run(scenario())
    assert samples(empty)["durafn_backlog_orchestrations"] == ({"task_hub": "default"}, 0.0)
    assert samples(empty)["durafn_recommended_workers"][1] == 0.0
    assert samples(queued)["durafn_backlog_orchestrations"][1] == 3.0
    assert samples(queued)["durafn_recommended_workers"][1] == 2.0  # 3 instances, 2 per worker
    after = samples(scheduled)
    assert after["durafn_backlog_orchestrations"][1] == 0.0
    assert after["durafn_backlog_activities"][1] == 30.0
    assert after["durafn_recommended_workers"][1] == 8.0  # 30 activities, 4 per worker
    assert after["durafn_backlog_scheduled"][1] == 0.0
    labels, episodes = after["durafn_worker_episodes_total"]
    assert (labels, episodes) == ({"task_hub": "default", "worker": "w-test"}, 3.0)
    assert after["durafn_worker_activities_total"][1] == 0.0
    assert after["durafn_worker_activities_in_place_total"][1] == 0.0
    assert after["durafn_worker_steps_on_threads_total"][1] == 0.0


def test_metrics_need_the_management_key_when_keys_are_required() -> None:
    store = open_store(f"memory://metrics-{uuid.uuid4().hex}")
    keys = HostKeys.generate()
    asgi = create_asgi_app(app, df.AsyncClient(store, app=app), keys=keys)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            codes = [
                (await http.get("/metrics")).status_code,
                (await http.get("/metrics", params={"code": keys.default})).status_code,
                (await http.get("/metrics", params={"code": keys.durabletask})).status_code,
                (await http.get("/metrics", headers={"x-functions-key": keys.master})).status_code,
            ]
        await store.close()
        return codes

    assert asyncio.run(scenario()) == [401, 401, 200, 200]
