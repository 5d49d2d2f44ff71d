"""How fast an idle worker picks up a newly started instance.

    python -m bench.pickup_latency [--runs 100] [--stores postgres,sqlite]

For each store, one ``durafn worker`` process serves this file's app. The bench starts an
instance, waits for it to complete, lets the worker fall idle again (it sleeps until notified
or until its safety-net poll), and repeats. The pickup latency of a run is the time from the
client's commit of the start (the instance's created time) to the start of its first episode
(the timestamp of the first ``OrchestratorStarted`` in its history): both clocks are this
machine's. Prints the median, p90 and max per store; nothing is asserted.

PostgreSQL: a fresh schema on ``$DURAFN_BENCH_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import durafn as df
from durafn.core.history import OrchestratorStarted

app = df.App()


@app.orchestrator
def picked_up(ctx: df.OrchestrationContext) -> object:
    return ctx.get_input()


POSTGRES = os.environ.get("DURAFN_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def measure(store_url: str, runs: int, idle: tuple[float, float]) -> list[float]:
    """Pickup latencies in milliseconds of ``runs`` instances started at an idle worker."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "durafn", "worker", __file__, "--store", store_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latencies: list[float] = []
    rng = random.Random(7)
    try:
        with df.Client(store_url) as client:
            # Warm up: the worker is up and has created the schema once this completes.
            client.wait_for_completion(client.start_new("picked_up", 0), timeout=120)
            for n in range(runs):
                time.sleep(rng.uniform(*idle))
                instance_id = client.start_new("picked_up", n)
                client.wait_for_completion(instance_id, timeout=30)
                status = client.get_status(instance_id, show_history=True)
                assert status is not None and status.history is not None
                first = next(e for e in status.history if isinstance(e, OrchestratorStarted))
                latencies.append((first.timestamp - status.created_time).total_seconds() * 1000)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    return latencies


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def report(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    return (
        f"{name:<10} runs={len(ordered):<4} median={statistics.median(ordered):7.2f} ms  "
        f"p90={p90:7.2f} ms  max={ordered[-1]:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument(
        "--idle",
        type=float,
        nargs=2,
        default=(0.2, 0.6),
        metavar=("MIN", "MAX"),
        help="seconds the worker stays idle before each start (uniformly drawn)",
    )
    args = parser.parse_args()
    lines = []
    for store in args.stores.split(","):
        if store == "postgres":
            schema = f"durafn_pickup_{uuid.uuid4().hex[:8]}"
            try:
                latencies = measure(f"{POSTGRES}?schema={schema}", args.runs, tuple(args.idle))
            finally:
                _drop_schema(schema)
        elif store == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'pickup.db'}"
                latencies = measure(url, args.runs, tuple(args.idle))
        else:
            parser.error(f"unknown store {store!r} (postgres, sqlite)")
        lines.append(report(store, latencies))
        print(lines[-1], flush=True)
    print("\nidle worker pickup latency (start committed -> first episode begins)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
