"""durafn's side of the bench, through its public API only.

Most workloads run a ``df.Runtime`` (worker and client in this process), as a script or a
notebook would; B and G run it with the async client on uvloop (as an application would, and
as durafn's own loops are), to have many calls in flight at once. E over HTTP serves the app
with ``durafn start``; F runs the worker as a separate ``durafn worker`` process, so its peak
RSS is the worker's own. A system with ``extra_workers`` runs that many ``durafn worker``
processes beside this one.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import uvloop

import durafn as df
from bench.runners import durafn_app
from bench.runners.durafn_app import app
from bench.runners.protocol import (
    Metrics,
    Run,
    Workloads,
    free_port,
    latency_metrics,
    peak_rss_mib,
    rate,
    start_process,
    step_time_metrics,
    stop_process,
    wait_for_port,
)
from bench.systems import BY_NAME

APP_FILE = Path(durafn_app.__file__).resolve()
T = TypeVar("T")
workloads = Workloads()


def _run_to_completion(client: df.Client, name: str, value: object, run: Run) -> object:
    instance_id = client.start_new(name, value)
    return _completed(client, instance_id, run)


def _completed(client: df.Client, instance_id: str, run: Run) -> object:
    status = client.wait_for_completion(instance_id, timeout=run.remaining())
    if status.runtime_status is not df.RuntimeStatus.COMPLETED:
        raise RuntimeError(f"instance {instance_id} ended {status.runtime_status.value}")
    return status.output


async def _completed_async(client: df.AsyncClient, instance_id: str, run: Run) -> object:
    status = await client.wait_for_completion(instance_id, timeout=run.remaining())
    if status.runtime_status is not df.RuntimeStatus.COMPLETED:
        raise RuntimeError(f"instance {instance_id} ended {status.runtime_status.value}")
    return status.output


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop, as an application would (durafn's own loops are uvloop's)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@contextmanager
def _more_workers(run: Run) -> Iterator[None]:
    """The system's ``durafn worker`` processes beside this one (``extra_workers``), serving
    the same store before anything is timed; stopped afterwards."""
    logs = [
        run.workdir / f"durafn-worker-{n}.log" for n in range(BY_NAME[run.system].extra_workers)
    ]
    command = [sys.executable, "-m", "durafn", "worker", str(APP_FILE), "--store", run.store]
    workers = [start_process([*command, "--log-level", "INFO"], log) for log in logs]
    try:
        for worker, log in zip(workers, logs, strict=True):
            _wait_until_serving(worker, log, run)
        yield
    finally:
        for worker in workers:
            stop_process(worker)


def _wait_until_serving(worker: subprocess.Popen[bytes], log: Path, run: Run) -> None:
    deadline = time.monotonic() + min(60.0, run.remaining())
    while " started" not in log.read_text(errors="replace"):
        if worker.poll() is not None:
            raise RuntimeError(f"durafn worker exited with {worker.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"durafn worker did not start in time; see {log}")
        time.sleep(0.05)


def _warm_up(client: df.Client, run: Run) -> None:
    """Open the store, create the schema, start the pools: not part of any measurement."""
    _run_to_completion(client, "chain", 2, run)


@workloads("A")
def sequential_chains(run: Run) -> Metrics:
    steps, series = run.params["steps"], run.params["series"]
    with _more_workers(run), df.Runtime(app, store=run.store) as rt:
        _warm_up(rt.client, run)
        started = time.perf_counter()
        for _ in range(series):
            _run_to_completion(rt.client, "chain", steps, run)
        elapsed = time.perf_counter() - started
    return {"steps_per_s": rate(steps * series, elapsed)}


@workloads("B")
def concurrent_chains(run: Run) -> Metrics:
    """Started at once: one client call each, all in flight together (``asyncio.gather`` over
    the async client), as Restate's instances are started by concurrent HTTP calls."""
    instances, steps = run.params["instances"], run.params["steps"]

    async def body() -> float:
        async with df.Runtime(app, store=run.store) as rt:
            client = rt.async_client
            await _completed_async(client, await client.start_new("chain", 2), run)  # warm-up
            started = time.perf_counter()
            ids = await asyncio.gather(
                *(client.start_new("chain", steps) for _ in range(instances))
            )
            for instance_id in ids:
                await _completed_async(client, instance_id, run)
            return time.perf_counter() - started

    with _more_workers(run):
        elapsed = run_async(body())
    return {
        "steps_per_s": rate(instances * steps, elapsed),
        "instances_per_s": rate(instances, elapsed),
    }


@workloads("C1")
def sub_orchestrations(run: Run) -> Metrics:
    count = run.params["count"]
    with _more_workers(run), df.Runtime(app, store=run.store) as rt:
        _warm_up(rt.client, run)
        started = time.perf_counter()
        _run_to_completion(rt.client, "sub_orchestrations", count, run)
        elapsed = time.perf_counter() - started
    return {"sub_orchestrations_per_s": rate(count, elapsed)}


@workloads("C2")
def fan_out(run: Run) -> Metrics:
    count = run.params["count"]
    with _more_workers(run), df.Runtime(app, store=run.store) as rt:
        _warm_up(rt.client, run)
        started = time.perf_counter()
        _run_to_completion(rt.client, "fan_out", count, run)
        elapsed = time.perf_counter() - started
    return {"activities_per_s": rate(count, elapsed)}


@workloads("D")
def long_chain(run: Run) -> Metrics:
    steps = run.params["steps"]
    with df.Runtime(app, store=run.store) as rt:
        _warm_up(rt.client, run)
        durafn_app.STAMPS.clear()
        instance_id = rt.client.start_new("stamped_chain", steps)
        try:
            _completed(rt.client, instance_id, run)
        except TimeoutError:
            done = len(durafn_app.STAMPS)
            run.note(f"stopped at the time limit after {done:,} of {steps:,} steps")
            if done <= 200:
                raise
    stamps = list(durafn_app.STAMPS)
    return step_time_metrics(stamps, len(stamps))


@workloads("G")
def entity_signals(run: Run) -> Metrics:
    """Signals sent by many concurrent callers while the worker runs; timed until every one
    is applied: to one entity, then spread over ``entities`` entities."""
    signals, entities = run.params["signals"], run.params["entities"]

    async def flood(rt: df.Runtime, targets: list[df.EntityId]) -> float:
        client = rt.async_client
        started = time.perf_counter()
        senders = 64

        async def send(sender: int) -> None:
            for n in range(sender, signals, senders):
                await client.signal_entity(targets[n % len(targets)], "add", 1)

        await asyncio.gather(*(send(s) for s in range(senders)))
        per_target = signals // len(targets)
        for target in targets:
            while (await client.read_entity_state(target)).entity_state != per_target:
                if run.remaining() <= 0:
                    raise TimeoutError("the signals were not all applied in time")
                await asyncio.sleep(0.005)
        return time.perf_counter() - started

    async def body() -> Metrics:
        async with df.Runtime(app, store=run.store) as rt:
            one = await flood(rt, [df.EntityId("counter", "one")])
            many = await flood(rt, [df.EntityId("counter", f"e{n}") for n in range(entities)])
        return {
            "signals_per_s": rate(signals, one),
            "spread_signals_per_s": rate(signals, many),
        }

    return run_async(body())


@workloads("E")
def hello_cities_latency(run: Run) -> Metrics:
    runs = run.params["runs"]
    metrics: Metrics = {}
    with df.Runtime(app, store=run.store) as rt:
        for _ in range(5):
            _run_to_completion(rt.client, "hello_cities", None, run)
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            _run_to_completion(rt.client, "hello_cities", None, run)
            samples.append(time.perf_counter() - started)
    metrics.update(latency_metrics("client", samples))
    metrics.update(_http_latency(run, runs))
    return metrics


def _http_latency(run: Run, runs: int) -> Metrics:
    """hello_cities through ``durafn start``: one POST that starts it and answers its output."""
    port = free_port()
    server = start_process(
        [
            sys.executable,
            "-m",
            "durafn",
            "start",
            str(APP_FILE),
            "--store",
            run.store,
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        run.workdir / "durafn-start.log",
    )
    try:
        wait_for_port(port, 30, server)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def call() -> None:
            connection.request(
                "POST",
                "/api/run/hello_cities",
                body=b"null",
                headers={"Content-Type": "application/json"},
            )
            answer = connection.getresponse()
            body = answer.read()
            if answer.status != 200:
                raise RuntimeError(f"HTTP {answer.status}: {body[:300]!r}")
            if len(json.loads(body)) != 3:
                raise RuntimeError(f"unexpected output {body[:300]!r}")

        for _ in range(5):
            call()
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            call()
            samples.append(time.perf_counter() - started)
        connection.close()
    finally:
        stop_process(server)
    return latency_metrics("http", samples)


@workloads("F")
def large_fan_out(run: Run) -> Metrics:
    count = run.params["count"]
    worker = start_process(
        [
            sys.executable,
            "-m",
            "durafn",
            "worker",
            str(APP_FILE),
            "--store",
            run.store,
            "--log-level",
            "WARNING",
        ],
        run.workdir / "durafn-worker.log",
    )
    metrics: Metrics = {}
    try:
        with df.Client(run.store, app=app) as client:
            _run_to_completion(client, "chain", 2, run)
            started = time.perf_counter()
            instance_id = client.start_new("fan_out", count)
            try:
                status = client.wait_for_completion(instance_id, timeout=run.remaining() - 15)
            except TimeoutError:
                # The worker's peak RSS so far is still worth reporting.
                run.note(f"stopped at the time limit before the {count:,} activities completed")
            else:
                if status.runtime_status is not df.RuntimeStatus.COMPLETED:
                    raise RuntimeError(f"fan_out ended {status.runtime_status.value}")
                elapsed = time.perf_counter() - started
                metrics.update(wall_s=elapsed, activities_per_s=rate(count, elapsed))
        metrics["worker_peak_rss_mib"] = peak_rss_mib(worker.pid)
    finally:
        stop_process(worker)
    return metrics


if __name__ == "__main__":
    workloads.serve()
