"""The bench still runs: a quick durafn-only run of two workloads exits 0 and writes its JSON.

Nothing here looks at a timing; the bench is the measure (bench/README.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

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
            "A,C2",
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
    for system in ("durafn-sqlite", "durafn-sqlite-relaxed", "durafn-postgres-relaxed"):
        runs = [run for run in document["runs"] if run["system"] == system]
        assert {run["workload"] for run in runs} == {"A", "C2"}, system
        assert all(run["ok"] for run in runs), system
    assert "activities_per_s" in document["medians"]["durafn-sqlite"]["C2"]
    assert "| A | steps/s |" in answer.stdout
    assert "durafn SQLite relaxed" in answer.stdout
    assert "Performance targets" in answer.stdout
