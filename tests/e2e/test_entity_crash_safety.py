"""Entities under crashes: 50 orchestrations each call ``add 1`` on one counter 20 times while a
client sends 1,000 ``add 1`` signals, and the worker processes are SIGKILLed and restarted; the
counter must end at exactly 2,000 (no operation lost, none applied twice)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
from crashkit import start_worker

import durafn as df

APP = Path(__file__).parent / "apps" / "entity_app.py"
ORCHESTRATIONS = 50
CALLS = 20
SIGNALS = 1000
EXPECTED = ORCHESTRATIONS * CALLS + SIGNALS
COUNTER = df.EntityId("counter", "shared")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def run_counter_under_kills(store_url: str, workdir: Path, kills: int) -> tuple[int, int, float]:
    """Run the workload with ``kills`` SIGKILLs; returns (final count, kills that landed while
    operations were still to be applied, seconds)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(20261122)
    began = time.monotonic()
    with (workdir / "workers.log").open("ab") as log:
        running = [start_worker(store_url, log, env, APP) for _ in range(2)]
        try:
            with df.Client(store_url) as client:
                ids = [
                    client.start_new("add_many", instance_id=f"adder-{n:02d}")
                    for n in range(ORCHESTRATIONS)
                ]
                sent: list[int] = []

                def send_signals() -> None:
                    with df.Client(store_url) as sender:
                        for _ in range(SIGNALS):
                            sender.signal_entity(COUNTER, "add", 1)
                            sent.append(1)

                sender = threading.Thread(target=send_signals)
                sender.start()
                done = mid_run = 0
                # Kill n lands once the counter has reached n/(kills+2) of its final value, and
                # has moved since the kill before: every kill lands while operations are
                # applied, however fast the workers are.
                deadline = time.monotonic() + 120
                at_kill = -1
                while done < kills and time.monotonic() < deadline:
                    threshold = EXPECTED * (done + 1) // (kills + 2)
                    count = client.read_entity_state(COUNTER).entity_state or 0
                    if count < max(threshold, at_kill + 1):
                        time.sleep(0.02)
                        continue
                    victim = rng.randrange(len(running))
                    running[victim].send_signal(signal.SIGKILL)
                    running[victim].wait()
                    running[victim] = start_worker(store_url, log, env, APP)
                    done += 1
                    at_kill = client.read_entity_state(COUNTER).entity_state or 0
                    mid_run += at_kill < EXPECTED
                sender.join()
                assert len(sent) == SIGNALS
                for instance_id in ids:
                    status = client.wait_for_completion(instance_id, timeout=240)
                    assert status.runtime_status is df.RuntimeStatus.COMPLETED, status
                deadline = time.monotonic() + 120
                value = None
                while time.monotonic() < deadline:
                    state = client.read_entity_state(COUNTER)
                    value = state.entity_state
                    pending = client.get_entities(name="counter")
                    if value == EXPECTED and pending.entities[0].backlog_queue_size == 0:
                        break
                    time.sleep(0.2)
                time.sleep(1.0)  # nothing more arrives: a duplicate would show now
                final = client.read_entity_state(COUNTER).entity_state
        finally:
            for worker in running:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
    return final, mid_run, time.monotonic() - began


def test_counter_is_exact_when_workers_are_killed_sqlite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    final, kills, seconds = run_counter_under_kills(f"sqlite:///{tmp_path}/hub.db", tmp_path, 5)
    with capsys.disabled():
        print(
            f"\nentity crash safety (SQLite): {ORCHESTRATIONS} orchestrations x {CALLS} calls + "
            f"{SIGNALS} signals, 5 SIGKILLs ({kills} mid-run), counter {final} in {seconds:.1f} s"
        )
    assert final == EXPECTED
    assert kills >= 3, "the kills should land while operations are applied"


def test_counter_is_exact_when_workers_are_killed_postgres(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    final, kills, seconds = run_counter_under_kills(postgres_url, tmp_path, 5)
    with capsys.disabled():
        print(
            f"\nentity crash safety (PostgreSQL): {ORCHESTRATIONS} orchestrations x {CALLS} "
            f"calls + {SIGNALS} signals, 5 SIGKILLs ({kills} mid-run), counter {final} "
            f"in {seconds:.1f} s"
        )
    assert final == EXPECTED
    assert kills >= 3, "the kills should land while operations are applied"
