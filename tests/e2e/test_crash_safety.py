"""Crash safety: two worker processes on one SQLite file, one killed with SIGKILL again and
again; every instance must complete with the right output and no duplicated history step."""

from __future__ import annotations

from pathlib import Path

import pytest
from crashkit import run_crash_test

INSTANCES = 200
KILLS = 6

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]


def test_sigkilled_workers_lose_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_crash_test(
        f"sqlite:///{tmp_path}/hub.db", tmp_path, instances=INSTANCES, workers=2, kills=KILLS
    )
    assert report.kills == KILLS
    assert report.kills_mid_run >= KILLS // 2, "the kills should land while instances run"
    assert report.executions >= report.expected_executions, "an activity execution is missing"
    with capsys.disabled():
        print("\n" + report.summary("crash safety (SQLite)"))
