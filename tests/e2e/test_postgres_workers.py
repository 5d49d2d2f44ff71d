"""Worker processes on one PostgreSQL task hub: fencing of a paused worker, and many workers
starting at once against an empty database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from crashkit import duplicated_steps

import durafn as df
from durafn.store import postgres_target
from durafn.store.postgres_schema import SCHEMA_VERSION

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FENCING_APP = Path(__file__).parent / "apps" / "fencing_app.py"
CRASH_APP = Path(__file__).parent / "apps" / "crash_app.py"


def start_worker(
    app: Path, store_url: str, log: Path, env: dict[str, str], *extra: str
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "durafn", "worker", str(app), "--store", store_url]
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [*command, *extra], env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )


def stop(*workers: subprocess.Popen[bytes]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGCONT)
            worker.send_signal(signal.SIGKILL)
        worker.wait()


def test_a_paused_worker_loses_its_instance_and_its_late_commit_is_rejected(
    postgres_url: str, tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "FENCING_DIR": str(markers), "PYTHONUNBUFFERED": "1"}
    lease = ("--lease", "2", "--log-level", "INFO")
    log_a, log_b = tmp_path / "worker-a.log", tmp_path / "worker-b.log"
    paused = start_worker(FENCING_APP, postgres_url, log_a, {**env, "FENCING_SLEEP": "3"}, *lease)
    rival: subprocess.Popen[bytes] | None = None
    try:
        with df.Client(postgres_url) as client:
            instance_id = client.start_new("lingering", instance_id="fenced")
            marker_a = markers / f"episode-{paused.pid}"
            wait_until(marker_a.exists, timeout=60, what="worker A inside the lingering episode")
            paused.send_signal(signal.SIGSTOP)
            stopped_at = time.monotonic()

            # Worker B waits out A's lease, takes the instance over and finishes it.
            rival = start_worker(
                FENCING_APP, postgres_url, log_b, {**env, "FENCING_SLEEP": "0"}, *lease
            )
            status = client.wait_for_completion(instance_id, timeout=60)
            taken_over_after = time.monotonic() - stopped_at
            assert status.runtime_status is df.RuntimeStatus.COMPLETED
            assert status.output == ["first", "second"]
            assert (markers / f"episode-{rival.pid}").exists(), "B never ran the episode"

            # A wakes up, finishes its episode and tries to commit: the store refuses.
            paused.send_signal(signal.SIGCONT)
            wait_until(
                lambda: "dropped an episode of fenced" in log_a.read_text(),
                timeout=30,
                what="worker A's late commit to be rejected",
            )
            full = client.get_status(instance_id, show_history=True)
            assert full is not None and full.history is not None
            assert duplicated_steps(full.history) == []
            kinds = [event.kind for event in full.history]
            assert kinds.count("TaskScheduled") == 2
            assert kinds.count("ExecutionCompleted") == 1
            assert client.get_status(instance_id) == status, "the late commit changed nothing"
    finally:
        stop(paused, *([rival] if rival else []))
    print(
        f"\nfencing: B took the instance over {taken_over_after:.1f} s after A was paused; "
        f"A's late commit: {_line(log_a, 'dropped an episode')}"
    )


def _line(log: Path, text: str) -> str:
    return next(line for line in log.read_text().splitlines() if text in line).strip()


def test_twenty_workers_starting_at_once_create_one_schema(
    postgres_url: str, tmp_path: Path, wait_until: Callable[..., Any]
) -> None:
    target = postgres_target(postgres_url)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = [tmp_path / f"worker-{n}.log" for n in range(20)]
    # Each worker names its connections, so the test can see every one of them come up.
    workers = [
        start_worker(
            CRASH_APP,
            f"{postgres_url}&application_name=durafn_w{n}",
            logs[n],
            env,
            "--log-level",
            "WARNING",
        )
        for n in range(20)
    ]
    try:

        def connected() -> bool:
            with psycopg.connect(target.conninfo, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT DISTINCT application_name FROM pg_stat_activity "
                    "WHERE application_name LIKE 'durafn_w%%'"
                ).fetchall()
            return len(rows) == 20

        wait_until(connected, timeout=180, what="20 workers connected")
        assert all(worker.poll() is None for worker in workers), "a worker exited"
        with psycopg.connect(target.conninfo, autocommit=True) as conn:
            versions = conn.execute(
                f'SELECT id, version FROM "{target.schema}".durafn_schema_version'
            ).fetchall()
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "ORDER BY table_name",
                (target.schema,),
            ).fetchall()
        assert versions == [(1, SCHEMA_VERSION)]
        assert [t for (t,) in tables] == [
            "activity_tasks",
            "durafn_schema_version",
            "history",
            "inbox",
            "instances",
        ]
        # And they work: a few instances complete across the twenty.
        with df.Client(postgres_url) as client:
            ids = [client.start_new("crash_flow", n) for n in range(5)]
            for instance_id in ids:
                status = client.wait_for_completion(instance_id, timeout=120)
                assert status.runtime_status is df.RuntimeStatus.COMPLETED
    finally:
        stop(*workers)
    problems = [
        f"{log.name}: {line}"
        for log in logs
        for line in log.read_text().splitlines()
        if "ERROR" in line or "Traceback" in line
    ]
    assert problems == []
