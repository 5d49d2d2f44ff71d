"""The bench still runs: a quick durafn-only run of two workloads exits 0 and writes its JSON.

Nothing here looks at a timing; the bench is the measure (bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from bench.driver import Postgres, _store  # noqa: E402
from bench.systems import BY_NAME  # noqa: E402

pytestmark = pytest.mark.e2e


def test_a_quick_durafn_run_reports_and_writes_its_json(tmp_path: Path) -> None:
    answer = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--peers",
            "durafn",
            "--only",
            "A,B,C2",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    [path] = tmp_path.glob("*-quick.json")
    document = json.loads(path.read_text())
    assert document["mode"] == "quick"
    for system in ("durafn-sqlite", "durafn-sqlite-relaxed", "durafn-sqlite-2w"):
        runs = [run for run in document["runs"] if run["system"] == system]
        assert {run["workload"] for run in runs} == {"A", "B", "C2"}, system
        assert all(run["ok"] for run in runs), system
    assert "activities_per_s" in document["medians"]["durafn-sqlite"]["C2"]
    assert "| A | steps/s |" in answer.stdout
    assert "| B | instances/s |" in answer.stdout
    assert "durafn SQLite relaxed" in answer.stdout
    assert "durafn SQLite 2 workers" in answer.stdout
    assert "Performance targets" in answer.stdout


class _FakePostgres(Postgres):
    """A server's fresh database, without the server: only the URL matters here."""

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        yield self.admin_url


@pytest.mark.parametrize(
    "admin",
    [
        "postgresql://bench@127.0.0.1:5432/fresh",
        "postgresql://bench@127.0.0.1/fresh?sslmode=disable",
    ],
)
def test_the_relaxed_postgres_system_turns_synchronous_commit_off(
    admin: str, tmp_path: Path
) -> None:
    server = _FakePostgres(admin)
    with _store(BY_NAME["durafn-postgres"], tmp_path, server) as durable:
        assert "options" not in conninfo_to_dict(durable)
    with _store(BY_NAME["durafn-postgres-relaxed"], tmp_path, server) as relaxed:
        params = conninfo_to_dict(relaxed)
    assert params["options"] == "-c synchronous_commit=off"
    assert params["dbname"] == "fresh"
    if "sslmode" in admin:
        assert params["sslmode"] == "disable"


def test_the_relaxed_sqlite_system_commits_with_synchronous_normal(tmp_path: Path) -> None:
    with _store(BY_NAME["durafn-sqlite"], tmp_path, _FakePostgres("")) as durable:
        assert durable == f"sqlite:///{tmp_path / 'hub.db'}"
    with _store(BY_NAME["durafn-sqlite-relaxed"], tmp_path, _FakePostgres("")) as relaxed:
        assert relaxed == f"sqlite:///{tmp_path / 'hub.db'}?synchronous=normal"
