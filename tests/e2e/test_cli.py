"""The ``durafn`` command line, run as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import durafn as df

EXAMPLES = Path(__file__).parents[2] / "examples"


def durafn(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durafn", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
        env={**os.environ, **env} if env else None,
    )


def test_help_lists_the_worker_command() -> None:
    result = durafn("--help")
    assert result.returncode == 0
    assert "worker" in result.stdout


def test_worker_with_a_missing_app_file_is_a_usage_error(tmp_path: Path) -> None:
    result = durafn("worker", str(tmp_path / "nope.py"), "--store", f"sqlite:///{tmp_path}/h.db")
    assert result.returncode == 2
    assert "no such file" in result.stderr


def test_an_unknown_event_loop_choice_is_refused_before_anything_starts(tmp_path: Path) -> None:
    trio = {"DURAFN_EVENT_LOOP": "trio"}
    result = durafn("worker", str(EXAMPLES / "hello_cities.py"), cwd=tmp_path, env=trio)
    assert result.returncode == 1
    assert "Error: DURAFN_EVENT_LOOP must be uvloop or asyncio, not 'trio'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "durafn.db").exists()
    # Commands that run no event loop do not care.
    created = durafn("new", "project", cwd=tmp_path, env=trio)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "project" / "function_app.py").exists()


def test_worker_with_an_unknown_attribute_is_a_usage_error(tmp_path: Path) -> None:
    result = durafn(
        "worker", f"{EXAMPLES / 'hello_cities.py'}:missing", "--store", f"sqlite:///{tmp_path}/h.db"
    )
    assert result.returncode == 2
    assert "no durafn App named 'missing'" in result.stderr


def test_worker_process_runs_instances_and_stops_on_sigterm(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/hub.db"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "durafn",
            "worker",
            str(EXAMPLES / "hello_cities.py"),
            "--store",
            store,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        with df.Client(store) as client:
            instance_id = client.start_new("hello_cities")
            status = client.wait_for_completion(instance_id, timeout=30)
        assert status.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    finally:
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert time.monotonic() - started < 30
    assert "serving 1 orchestrator(s) and 1 activity(ies)" in stderr


def test_worker_roles_split_the_work(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/hub.db"
    app = str(EXAMPLES / "hello_cities.py")
    command = [sys.executable, "-m", "durafn", "worker", app, "--store", store]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    orchestrators = subprocess.Popen(
        [*command, "--orchestrations-only"], env=env, stderr=subprocess.DEVNULL
    )
    try:
        with df.Client(store) as client:
            instance_id = client.start_new("hello_cities")
            # Without an activity worker the first step is scheduled and waits. (The worker
            # process may take a while to start on a loaded machine.)
            deadline = time.monotonic() + 60
            while (waiting := client.get_status(instance_id)) is not None and (
                waiting.runtime_status is df.RuntimeStatus.PENDING and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            time.sleep(0.5)
            waiting = client.get_status(instance_id)
            assert waiting is not None
            assert waiting.runtime_status is df.RuntimeStatus.RUNNING
            assert waiting.output is None
            activities = subprocess.Popen(
                [*command, "--activities-only"], env=env, stderr=subprocess.DEVNULL
            )
            try:
                status = client.wait_for_completion(instance_id, timeout=30)
            finally:
                activities.send_signal(signal.SIGTERM)
                assert activities.wait(timeout=30) == 0
        assert status.output == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    finally:
        orchestrators.send_signal(signal.SIGTERM)
        assert orchestrators.wait(timeout=30) == 0


def test_worker_roles_exclude_each_other(tmp_path: Path) -> None:
    result = durafn(
        "worker",
        str(EXAMPLES / "hello_cities.py"),
        "--orchestrations-only",
        "--activities-only",
        "--store",
        f"sqlite:///{tmp_path}/h.db",
    )
    assert result.returncode == 2
    assert "exclude each other" in result.stderr


def test_worker_in_place_activities_must_not_be_negative(tmp_path: Path) -> None:
    result = durafn(
        "worker",
        str(EXAMPLES / "hello_cities.py"),
        "--in-place-activities",
        "-1",
        "--store",
        f"sqlite:///{tmp_path}/h.db",
    )
    assert result.returncode == 2
    assert "--in-place-activities" in result.stderr
