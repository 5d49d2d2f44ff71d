"""Restate's side of the bench (run inside bench/.envs/restate).

Per run: a fresh ``restate-server`` (from the npm package) with its own ``--base-dir`` and
ports on loopback, the handlers of :mod:`bench.runners.restate_services` served by hypercorn
(HTTP/2 cleartext) in a second process, registered with ``POST /deployments``. Workflows are
started and awaited through the ingress (one HTTP request per invocation, answered with the
handler's result). Both processes are stopped when the run ends, however it ends.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx

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
    wait_for_http,
    wait_for_port,
)
from bench.systems import RESTATE_SERVER

workloads = Workloads()
workloads.none(
    "E.client",
    "Restate is called through its HTTP ingress (its clients are HTTP clients)",
)


class Restate:
    """A running server with the bench's handlers registered."""

    def __init__(self, ingress: str, server_pid: int, handlers_pid: int) -> None:
        self.ingress = ingress
        self.server_pid = server_pid
        self.handlers_pid = handlers_pid
        self.http = httpx.Client(base_url=ingress, timeout=600)

    def call(self, handler: str, value: Any = None, timeout: float = 600) -> Any:
        answer = self.http.post(f"/bench/{handler}", json=value, timeout=timeout)
        if answer.status_code != 200:
            raise RuntimeError(f"{handler}: HTTP {answer.status_code} {answer.text[:300]}")
        return answer.json()


@contextmanager
def restate_running(run: Run) -> Iterator[Restate]:
    if not RESTATE_SERVER.exists():
        raise RuntimeError(f"no restate-server at {RESTATE_SERVER}; run bash bench/run.sh")
    version = subprocess.run(
        [str(RESTATE_SERVER), "--version"], capture_output=True, text=True, check=False
    )
    workloads.versions["restate-server"] = version.stdout.strip().rpartition(" ")[2]
    ingress_port, admin_port, node_port, handlers_port = (free_port() for _ in range(4))
    server = start_process(
        [
            str(RESTATE_SERVER),
            "--base-dir",
            str(run.workdir / "restate-data"),
            "--no-logo",
            "--listen-mode",
            "tcp",
        ],
        run.workdir / "restate-server.log",
        env={
            "RESTATE_INGRESS__BIND_ADDRESS": f"127.0.0.1:{ingress_port}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"127.0.0.1:{admin_port}",
            "RESTATE_BIND_ADDRESS": f"127.0.0.1:{node_port}",
            "RESTATE_ADVERTISED_ADDRESS": f"http://127.0.0.1:{node_port}/",
            "RESTATE_DISABLE_TELEMETRY": "true",
            "RESTATE_LOG_FILTER": "warn",
        },
    )
    handlers = None
    try:
        # --workers 0: the handlers run in hypercorn's own process (F reads its RSS).
        handlers = start_process(
            [
                sys.executable,
                "-m",
                "hypercorn",
                "bench.runners.restate_services:app",
                "--workers",
                "0",
                "--bind",
                f"127.0.0.1:{handlers_port}",
            ],
            run.workdir / "hypercorn.log",
        )
        admin = f"http://127.0.0.1:{admin_port}"
        wait_for_http(f"{admin}/health", 60, server)
        wait_for_port(handlers_port, 30, handlers)
        answer = httpx.post(
            f"{admin}/deployments", json={"uri": f"http://127.0.0.1:{handlers_port}"}, timeout=30
        )
        if answer.status_code >= 300:
            raise RuntimeError(f"registration failed: HTTP {answer.status_code} {answer.text}")
        restate = Restate(f"http://127.0.0.1:{ingress_port}", server.pid, handlers.pid)
        _warm_up(restate)
        yield restate
        restate.http.close()
    finally:
        # Short grace: the server keeps its HTTP/2 connection to the handlers open, and a
        # graceful hypercorn would wait for it; nothing of a finished run needs to be kept.
        if handlers is not None:
            stop_process(handlers, grace=1)
        stop_process(server, grace=5)


def _warm_up(restate: Restate) -> None:
    """The first calls after registration may race the deployment's propagation."""
    deadline = time.monotonic() + 30
    while True:
        try:
            restate.call("chain", 2)
            return
        except (RuntimeError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@workloads("A")
def sequential_chains(run: Run) -> Metrics:
    steps, series = run.params["steps"], run.params["series"]
    with restate_running(run) as restate:
        started = time.perf_counter()
        for _ in range(series):
            restate.call("chain", steps)
        elapsed = time.perf_counter() - started
    return {"steps_per_s": rate(steps * series, elapsed)}


async def _concurrent_calls(ingress: str, handler: str, values: list[Any]) -> None:
    limits = httpx.Limits(max_connections=len(values), max_keepalive_connections=len(values))
    async with httpx.AsyncClient(base_url=ingress, timeout=600, limits=limits) as http:

        async def call(value: Any) -> None:
            answer = await http.post(f"/bench/{handler}", json=value)
            if answer.status_code != 200:
                raise RuntimeError(f"{handler}: HTTP {answer.status_code} {answer.text[:300]}")

        await asyncio.gather(*(call(value) for value in values))


@workloads("B")
def concurrent_chains(run: Run) -> Metrics:
    instances, steps = run.params["instances"], run.params["steps"]
    with restate_running(run) as restate:
        started = time.perf_counter()
        asyncio.run(_concurrent_calls(restate.ingress, "chain", [steps] * instances))
        elapsed = time.perf_counter() - started
    return {
        "steps_per_s": rate(instances * steps, elapsed),
        "instances_per_s": rate(instances, elapsed),
    }


@workloads("C1")
def sub_orchestrations(run: Run) -> Metrics:
    count = run.params["count"]
    with restate_running(run) as restate:
        started = time.perf_counter()
        restate.call("sub_calls", count)
        elapsed = time.perf_counter() - started
    return {"sub_orchestrations_per_s": rate(count, elapsed)}


@workloads("C2")
def fan_out(run: Run) -> Metrics:
    count = run.params["count"]
    with restate_running(run) as restate:
        started = time.perf_counter()
        restate.call("fan_out", count)
        elapsed = time.perf_counter() - started
    return {"activities_per_s": rate(count, elapsed)}


@workloads("D")
def long_chain(run: Run) -> Metrics:
    steps = run.params["steps"]
    stamps_file = run.workdir / "stamps.txt"
    with restate_running(run) as restate:
        request = {"steps": steps, "stamps_file": str(stamps_file)}
        with suppress(httpx.TimeoutException):
            restate.call("stamped_chain", request, timeout=max(run.remaining() - 10, 1))
    stamps = [float(line) for line in stamps_file.read_text().split()]
    if len(stamps) < steps:
        run.note(f"stopped at the time limit after {len(stamps):,} of {steps:,} steps")
    return step_time_metrics(stamps, len(stamps))


@workloads("E")
def hello_cities_latency(run: Run) -> Metrics:
    runs = run.params["runs"]
    with restate_running(run) as restate:
        for _ in range(5):
            restate.call("hello_cities")
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            restate.call("hello_cities")
            samples.append(time.perf_counter() - started)
    return latency_metrics("http", samples)


@workloads("F")
def large_fan_out(run: Run) -> Metrics:
    """The "worker" is the handler process; the Rust server's own RSS is reported beside it."""
    count = run.params["count"]
    with restate_running(run) as restate:
        started = time.perf_counter()
        restate.call("fan_out", count)
        elapsed = time.perf_counter() - started
        handlers_rss = peak_rss_mib(restate.handlers_pid)
        server_rss = peak_rss_mib(restate.server_pid)
    run.note(f"restate-server peak RSS {server_rss:.0f} MiB")
    return {
        "wall_s": elapsed,
        "worker_peak_rss_mib": handlers_rss,
        "activities_per_s": rate(count, elapsed),
    }


if __name__ == "__main__":
    workloads.serve()
