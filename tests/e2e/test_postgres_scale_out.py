"""Scale-out on PostgreSQL under faults: three worker processes on one task hub, two SIGKILLs
and every database connection terminated once, while 500 instances run."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from crashkit import run_crash_test

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def terminate_every_connection(postgres_url: str) -> None:
    with psycopg.connect(postgres_url.partition("?")[0], autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def test_three_workers_survive_kills_and_a_database_disconnect(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_crash_test(
        postgres_url,
        tmp_path,
        instances=500,
        workers=3,
        kills=2,
        disturb=lambda: terminate_every_connection(postgres_url),
        deadline_seconds=420,
    )
    assert report.kills == 2
    assert report.executions >= report.expected_executions, "an activity execution is missing"
    with capsys.disabled():
        print("\n" + report.summary("scale-out (PostgreSQL, 3 workers, connections terminated)"))
