"""Crash safety: two worker processes on one SQLite file, one killed with SIGKILL again and
again; every instance must complete with the right output and no duplicated history step."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO

import pytest

import durafn as df
from durafn.core.history import HistoryEvent

APP = Path(__file__).parent / "apps" / "crash_app.py"
sys.path.insert(0, str(APP.parent))
import crash_app  # noqa: E402

INSTANCES = 200
KILLS = 6

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def start_worker(store_url: str, log: IO[bytes], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "durafn",
            "worker",
            str(APP),
            "--store",
            store_url,
            "--lease",
            "2",
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def duplicated_steps(history: list[HistoryEvent]) -> list[str]:
    """Steps that appear twice: a scheduling id or a completion id used more than once."""
    seen: Counter[tuple[str, int]] = Counter()
    for event in history:
        for field in ("event_id", "task_scheduled_id", "timer_id"):
            value = getattr(event, field, None)
            if value is not None:
                seen[(event.kind, value)] += 1
    return [f"{kind} #{i}" for (kind, i), count in seen.items() if count > 1]


def test_sigkilled_workers_lose_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store_url = f"sqlite:///{tmp_path}/hub.db"
    activity_log = tmp_path / "activities.log"
    env = {**os.environ, "CRASH_LOG": str(activity_log), "PYTHONUNBUFFERED": "1"}
    worker_log = (tmp_path / "workers.log").open("ab")
    rng = random.Random(20261122)
    workers = [start_worker(store_url, worker_log, env) for _ in range(2)]
    kills = kills_mid_run = 0
    try:
        with df.Client(store_url) as client:
            ids = [
                client.start_new("crash_flow", n, instance_id=f"crash-{n:03d}")
                for n in range(INSTANCES)
            ]
            deadline = time.monotonic() + 240
            while kills < KILLS and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.3, 1.2))
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait()
                kills += 1
                done = client.get_status_by(
                    runtime_status=["Completed"], name="crash_flow", page_size=1000
                )
                if len(done.instances) < INSTANCES:
                    kills_mid_run += 1
                workers[victim] = start_worker(store_url, worker_log, env)
            statuses = [
                client.wait_for_completion(i, timeout=max(1.0, deadline - time.monotonic()))
                for i in ids
            ]
            failures = []
            for n, status in enumerate(statuses):
                if status.runtime_status is not df.RuntimeStatus.COMPLETED:
                    failures.append(
                        f"{status.instance_id}: {status.runtime_status} {status.failure_details}"
                    )
                elif status.output != crash_app.expected_output(n):
                    failures.append(f"{status.instance_id}: output {status.output}")
                full = client.get_status(status.instance_id, show_history=True)
                assert full is not None and full.history is not None
                dupes = duplicated_steps(full.history)
                assert not dupes, f"{status.instance_id} has duplicated steps {dupes}"
            assert not failures, failures[:5]
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        worker_log.close()

    executions = Counter(activity_log.read_text().splitlines())
    expected = INSTANCES * crash_app.ACTIVITIES_PER_INSTANCE
    # Some inputs repeat across instances (e.g. square of n+1 for n and n+1); count per key.
    total = sum(executions.values())
    repeated = total - expected
    assert kills == KILLS
    assert kills_mid_run >= KILLS // 2, "the kills should land while instances are running"
    assert total >= expected, "an activity execution is missing"
    with capsys.disabled():
        print(
            f"\ncrash safety: {INSTANCES} instances, {kills} SIGKILLs ({kills_mid_run} mid-run), "
            f"{expected} activity "
            f"steps, {total} executions ({repeated} re-executions: at-least-once)"
        )
