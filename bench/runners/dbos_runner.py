"""DBOS's side of the bench (run inside bench/.envs/dbos).

Systems: ``dbos-sqlite`` (SQLite as DBOS ships it: rollback journal), ``dbos-wal`` (the same
file through a SQLAlchemy engine whose connect hook sets WAL and ``synchronous=FULL``) and
``dbos-postgres``. Workflows are started with ``DBOS.start_workflow`` and awaited through their
handle, the nearest thing to a durafn client's ``start_new`` + ``wait_for_completion``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig, Queue

from bench.runners.protocol import (
    Metrics,
    Run,
    Workloads,
    latency_metrics,
    peak_rss_mib,
    rate,
    step_time_metrics,
)

workloads = Workloads()
workloads.none(
    "E.http",
    "DBOS has no HTTP front of its own (applications bring FastAPI or similar)",
)

STAMPS: list[float] = []
QUEUES: dict[str, Queue] = {}


@DBOS.step()
def noop(value: int) -> int:
    return value


@DBOS.step()
def stamp(index: int) -> int:
    STAMPS.append(time.time())
    return index


@DBOS.step()
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@DBOS.workflow()
def chain(steps: int) -> int:
    for index in range(steps):
        noop(index)
    return steps


@DBOS.workflow()
def stamped_chain(steps: int) -> int:
    for index in range(steps):
        stamp(index)
    return steps


@DBOS.workflow()
def one_step(value: int) -> int:
    return noop(value)


@DBOS.workflow()
def child_workflows(count: int) -> int:
    """C1: child workflows started from a workflow, then joined through their handles."""
    handles = [DBOS.start_workflow(one_step, index) for index in range(count)]
    return len([handle.get_result() for handle in handles])


@DBOS.workflow()
def queued_steps(count: int) -> int:
    """C2 and F: DBOS runs steps of one workflow one at a time; its documented fan-out is a
    queue, each enqueued step running as a workflow of its own."""
    queue = QUEUES["fan_out"]
    handles = [queue.enqueue(noop, index) for index in range(count)]
    return len([handle.get_result() for handle in handles])


@DBOS.workflow()
def hello_cities() -> list[str]:
    return [say_hello("Tokyo"), say_hello("Seattle"), say_hello("London")]


def _engine_in_wal_mode(url: str) -> sa.Engine:
    """A SQLite engine set up like DBOS's own (IMMEDIATE transactions, busy timeout, foreign
    keys), plus WAL with a fsync per commit."""
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def pragmas(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=FULL")
        dbapi_connection.isolation_level = "IMMEDIATE"
        dbapi_connection.execute("PRAGMA busy_timeout=30000")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    return engine


@contextmanager
def launched(run: Run) -> Iterator[None]:
    config: DBOSConfig = {"name": "durafn-bench", "log_level": "WARNING"}
    if run.system == "dbos-postgres":
        config["system_database_url"] = run.store
    else:
        url = f"sqlite:///{run.workdir / 'dbos.sqlite'}"
        config["system_database_url"] = url
        if run.system == "dbos-wal":
            config["system_database_engine"] = _engine_in_wal_mode(url)
    DBOS(config=config)
    DBOS.launch()
    QUEUES["fan_out"] = DBOS.register_queue("fan_out")
    try:
        if run.system != "dbos-postgres":
            _note_journal_mode(run)
        DBOS.start_workflow(chain, 2).get_result()  # warm-up, not measured
        yield
    finally:
        DBOS.destroy()


def _note_journal_mode(run: Run) -> None:
    import sqlite3

    with sqlite3.connect(run.workdir / "dbos.sqlite") as connection:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    run.note(f"journal_mode={mode}")


def _result(workflow: Any, *args: Any) -> Any:
    return DBOS.start_workflow(workflow, *args).get_result()


@workloads("A")
def sequential_chains(run: Run) -> Metrics:
    steps, series = run.params["steps"], run.params["series"]
    with launched(run):
        started = time.perf_counter()
        for _ in range(series):
            _result(chain, steps)
        elapsed = time.perf_counter() - started
    return {"steps_per_s": rate(steps * series, elapsed)}


@workloads("B")
def concurrent_chains(run: Run) -> Metrics:
    instances, steps = run.params["instances"], run.params["steps"]
    with launched(run):
        started = time.perf_counter()
        # start_workflow returns once the workflow is recorded and runs it in the background:
        # the 200 are under way together. (Called from 8 or 32 threads at once, B ran no faster
        # on SQLite and a fifth slower on PostgreSQL.)
        handles = [DBOS.start_workflow(chain, steps) for _ in range(instances)]
        for handle in handles:
            handle.get_result()
        elapsed = time.perf_counter() - started
    return {
        "steps_per_s": rate(instances * steps, elapsed),
        "instances_per_s": rate(instances, elapsed),
    }


@workloads("C1")
def sub_orchestrations(run: Run) -> Metrics:
    count = run.params["count"]
    with launched(run):
        started = time.perf_counter()
        _result(child_workflows, count)
        elapsed = time.perf_counter() - started
    return {"sub_orchestrations_per_s": rate(count, elapsed)}


@workloads("C2")
def fan_out(run: Run) -> Metrics:
    count = run.params["count"]
    with launched(run):
        started = time.perf_counter()
        _result(queued_steps, count)
        elapsed = time.perf_counter() - started
    return {"activities_per_s": rate(count, elapsed)}


@workloads("D")
def long_chain(run: Run) -> Metrics:
    steps = run.params["steps"]
    with launched(run):
        STAMPS.clear()
        handle = DBOS.start_workflow(stamped_chain, steps)
        # Watch the steps rather than block on the result: a chain still running at the time
        # limit is measured over the steps it reached.
        while len(STAMPS) < steps and run.remaining() > 5:
            time.sleep(0.1)
        if len(STAMPS) >= steps:
            handle.get_result()
        else:
            run.note(f"stopped at the time limit after {len(STAMPS):,} of {steps:,} steps")
        stamps = list(STAMPS)
    return step_time_metrics(stamps, len(stamps))


@workloads("E")
def hello_cities_latency(run: Run) -> Metrics:
    runs = run.params["runs"]
    with launched(run):
        for _ in range(5):
            _result(hello_cities)
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            _result(hello_cities)
            samples.append(time.perf_counter() - started)
    return latency_metrics("client", samples)


@workloads("F")
def large_fan_out(run: Run) -> Metrics:
    count = run.params["count"]
    with launched(run):
        started = time.perf_counter()
        _result(queued_steps, count)
        elapsed = time.perf_counter() - started
    return {
        "wall_s": elapsed,
        "worker_peak_rss_mib": peak_rss_mib(os.getpid()),
        "activities_per_s": rate(count, elapsed),
    }


if __name__ == "__main__":
    workloads.serve()
