"""A crash harness: worker processes on one task hub, killed at random while instances run.

Shared by the SQLite crash-safety test and the PostgreSQL scale-out test.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import durafn as df
from durafn.core.history import HistoryEvent

APP = Path(__file__).parent / "apps" / "crash_app.py"
sys.path.insert(0, str(APP.parent))
import crash_app  # noqa: E402


def start_worker(
    store_url: str, log: IO[bytes], env: dict[str, str], app: Path = APP
) -> subprocess.Popen[bytes]:
    """A ``durafn worker`` process serving ``app`` (the crash app unless told).

    It runs 4 episodes at a time, not the default 64: the workloads then last long enough for
    every kill to catch the victim with instances in hand."""
    command = [sys.executable, "-m", "durafn", "worker", str(app), "--store", store_url]
    return subprocess.Popen(
        [*command, "--lease", "2", "--max-orchestrations", "4", "--log-level", "WARNING"],
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


@dataclass
class CrashReport:
    instances: int
    kills: int
    kills_mid_run: int
    expected_executions: int
    executions: int

    @property
    def re_executions(self) -> int:
        return self.executions - self.expected_executions

    def summary(self, title: str) -> str:
        return (
            f"{title}: {self.instances} instances, {self.kills} SIGKILLs "
            f"({self.kills_mid_run} mid-run), {self.expected_executions} activity steps, "
            f"{self.executions} executions ({self.re_executions} re-executions: at-least-once)"
        )


def run_crash_test(
    store_url: str,
    workdir: Path,
    *,
    instances: int,
    workers: int,
    kills: int,
    seed: int = 20261122,
    deadline_seconds: float = 300,
    disturb: Callable[[], None] | None = None,
) -> CrashReport:
    """Start ``workers`` processes and ``instances`` of ``crash_flow``; SIGKILL a random worker
    ``kills`` times (restarting it each time) and call ``disturb`` once halfway; then check every
    instance completed with the right output and no duplicated history step."""
    activity_log = workdir / "activities.log"
    env = {**os.environ, "CRASH_LOG": str(activity_log), "PYTHONUNBUFFERED": "1"}
    rng = random.Random(seed)
    kills_done = kills_mid_run = 0
    with (workdir / "workers.log").open("ab") as log:
        running = [start_worker(store_url, log, env) for _ in range(workers)]
        try:
            with df.Client(store_url) as client:
                ids = [
                    client.start_new("crash_flow", n, instance_id=f"crash-{n:04d}")
                    for n in range(instances)
                ]
                deadline = time.monotonic() + deadline_seconds
                # Kill n lands once n/(kills+2) of the instances have completed, and at least
                # one more than at the kill before (so it does not just hit the worker that
                # kill restarted): every kill lands while instances run, however fast the
                # workers are (kills at fixed intervals could all come after the last one).
                done_at_kill = -1
                while kills_done < kills and time.monotonic() < deadline:
                    threshold = instances * (kills_done + 1) // (kills + 2)
                    completed = _completed(client)
                    if completed < max(threshold, done_at_kill + 1):
                        time.sleep(0.02)
                        continue
                    victim = rng.randrange(len(running))
                    running[victim].send_signal(signal.SIGKILL)
                    running[victim].wait()
                    kills_done += 1
                    done_at_kill = _completed(client)
                    if done_at_kill < instances:
                        kills_mid_run += 1
                    running[victim] = start_worker(store_url, log, env)
                    if disturb is not None and kills_done == (kills + 1) // 2:
                        disturb()
                failures = []
                for n, instance_id in enumerate(ids):
                    remaining = max(1.0, deadline - time.monotonic())
                    status = client.wait_for_completion(instance_id, timeout=remaining)
                    if status.runtime_status is not df.RuntimeStatus.COMPLETED:
                        failures.append(
                            f"{instance_id}: {status.runtime_status} {status.failure_details}"
                        )
                    elif status.output != crash_app.expected_output(n):
                        failures.append(f"{instance_id}: output {status.output}")
                    full = client.get_status(instance_id, show_history=True)
                    assert full is not None and full.history is not None
                    dupes = duplicated_steps(full.history)
                    assert not dupes, f"{instance_id} has duplicated steps {dupes}"
                assert not failures, failures[:5]
        finally:
            for worker in running:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
    executions = sum(Counter(activity_log.read_text().splitlines()).values())
    return CrashReport(
        instances,
        kills_done,
        kills_mid_run,
        instances * crash_app.ACTIVITIES_PER_INSTANCE,
        executions,
    )


def _completed(client: df.Client) -> int:
    """How many crash_flow instances have completed."""
    done = client.get_status_by(runtime_status=["Completed"], name="crash_flow", page_size=1000)
    return len(done.instances)
