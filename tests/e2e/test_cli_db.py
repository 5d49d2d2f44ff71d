"""``durafn db status|upgrade`` on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from durafn.store.postgres_schema import SCHEMA_VERSION as PG_VERSION
from durafn.store.sqlite_schema import SCHEMA_VERSION as SQLITE_VERSION

SERVER = os.environ.get("DURAFN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def durafn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durafn", "db", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_sqlite_status_and_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    before = durafn("status", "--store", url)
    assert before.returncode == 0, before.stderr
    assert f"schema version 0, this durafn expects {SQLITE_VERSION}: not created yet" in (
        before.stdout
    )
    assert not (tmp_path / "hub.db").exists()
    upgraded = durafn("upgrade", "--store", url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"from version 0 to {SQLITE_VERSION}" in upgraded.stdout
    again = durafn("upgrade", "--store", url)
    assert "nothing to do" in again.stdout
    assert "up to date" in durafn("status", "--store", url).stdout


@pytest.fixture
def postgres_url() -> Iterator[str]:
    try:
        psycopg.connect(SERVER, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("DURAFN_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {SERVER}: {exc}")
        pytest.skip(f"no PostgreSQL server at {SERVER}: {exc}")
    schema = f"durafn_db_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{SERVER}?schema={schema}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_postgres_status_and_upgrade(postgres_url: str) -> None:
    assert "not created yet" in durafn("status", "--store", postgres_url).stdout
    upgraded = durafn("upgrade", "--store", postgres_url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"from version 0 to {PG_VERSION}" in upgraded.stdout
    assert "up to date" in durafn("status", "--store", postgres_url).stdout


def test_a_store_without_a_schema_is_a_clear_error() -> None:
    result = durafn("status", "--store", "memory://x")
    assert result.returncode == 1
    assert "has no schema to manage" in result.stderr
