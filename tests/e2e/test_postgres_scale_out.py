"""Scale-out on PostgreSQL under faults: three worker processes on one task hub, two SIGKILLs
and every database connection terminated once, while 500 instances run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from crashkit import run_crash_test

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SERVER = os.environ.get("DURAFN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A task hub in a fresh PostgreSQL schema, dropped afterwards."""
    try:
        psycopg.connect(SERVER, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("DURAFN_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {SERVER}: {exc}")
        pytest.skip(f"no PostgreSQL server at {SERVER}: {exc}")
    schema = f"durafn_e2e_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{SERVER}?schema={schema}"
    finally:
        # A fresh connection: the test terminates every connection it finds.
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def terminate_every_connection() -> None:
    with psycopg.connect(SERVER, autocommit=True) as conn:
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
        disturb=terminate_every_connection,
        deadline_seconds=420,
    )
    assert report.kills == 2
    assert report.executions >= report.expected_executions, "an activity execution is missing"
    with capsys.disabled():
        print("\n" + report.summary("scale-out (PostgreSQL, 3 workers, connections terminated)"))
