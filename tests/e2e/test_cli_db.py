"""``durafn db status|upgrade`` on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from durafn.store.postgres_schema import SCHEMA_VERSION as PG_VERSION
from durafn.store.sqlite_schema import SCHEMA_VERSION as SQLITE_VERSION


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
