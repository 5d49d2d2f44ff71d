"""The ``durafn`` command line, run as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import durafn as df

EXAMPLES = Path(__file__).parents[2] / "examples"
APPS = Path(__file__).parent / "apps"


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


def _worker_command(store: str, *options: str) -> list[str]:
    """``durafn worker`` of the hello_cities example on ``store``."""
    app = str(EXAMPLES / "hello_cities.py")
    return [sys.executable, "-m", "durafn", "worker", app, "--store", store, *options]


def _terminate(process: subprocess.Popen[str], timeout: float) -> tuple[str, float]:
    """SIGTERM ``process`` and wait for it: its stderr, and how many seconds it took to end."""
    process.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    _, stderr = process.communicate(timeout=timeout)
    return stderr, time.monotonic() - asked


@pytest.mark.parametrize("options", [[], ["--no-start-ahead"]])
def test_worker_process_runs_instances_and_stops_on_sigterm(
    tmp_path: Path, options: list[str]
) -> None:
    store = f"sqlite:///{tmp_path}/hub.db"
    worker = subprocess.Popen(
        _worker_command(store, *options),
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
        stderr, took = _terminate(worker, timeout=30)
    assert worker.returncode == 0, stderr
    assert took < 30
    assert "serving 1 orchestrator(s) and 1 activity(ies)" in stderr


def test_a_stopping_worker_ends_at_its_grace_and_its_running_activity_runs_again(
    tmp_path: Path,
) -> None:
    """A sync activity still running when the shutdown grace (10 s) is over does not hold the
    process: it ends, the activity is let go at once, and the next worker runs it again."""
    store = f"sqlite:///{tmp_path}/hub.db"
    started, fast = tmp_path / "started", tmp_path / "fast"
    env = {**os.environ, "STOP_APP_STARTED": str(started), "STOP_APP_FAST": str(fast)}
    command = [sys.executable, "-m", "durafn", "worker", str(APPS / "stop_app.py")]
    command += ["--store", store, "--lease", "600"]
    with df.Client(store) as client:
        worker = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        try:
            instance_id = client.start_new("long_flow", 21)
            deadline = time.monotonic() + 60
            while not started.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert started.exists(), "the activity never started"
        finally:
            stderr, took = _terminate(worker, timeout=120)
        # Ten minutes of activity left, a lease of ten minutes: neither held the process.
        assert worker.returncode == 0, stderr
        assert took < 60
        fast.touch()
        second = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            status = client.wait_for_completion(instance_id, timeout=60)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=120)
    assert status.runtime_status is df.RuntimeStatus.COMPLETED
    assert status.output == 42


def test_worker_roles_split_the_work(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/hub.db"
    command = _worker_command(store)
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


def _worker_processes(
    tmp_path: Path, count: int, **popen: Any
) -> tuple[subprocess.Popen[str], Path, list[int]]:
    """``durafn worker --processes count`` on a fresh store, once every process serves: the
    command, its stderr file, and the pids of its processes (the first is the command's)."""
    errors = tmp_path / "worker.err"
    with errors.open("w") as sink:  # the processes write to their own copy of it
        command = subprocess.Popen(
            _worker_command(f"sqlite:///{tmp_path}/hub.db", "--processes", str(count)),
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            **popen,
        )
    deadline = time.monotonic() + 60
    serving: list[int] = []
    while len(serving) < count:
        assert time.monotonic() < deadline, errors.read_text()
        assert command.poll() is None, errors.read_text()
        time.sleep(0.1)
        # "durafn worker <host>:<pid>:<suffix> serving ..."
        serving = [
            int(line.split()[2].split(":")[-2])
            for line in errors.read_text().splitlines()
            if line.startswith("durafn worker ") and " serving " in line
        ]
    assert serving[0] == command.pid
    return command, errors, serving


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_worker_processes_share_the_work_and_stop_together(tmp_path: Path) -> None:
    command, errors, pids = _worker_processes(tmp_path, 2)
    try:
        with df.Client(f"sqlite:///{tmp_path}/hub.db") as client:
            ids = [client.start_new("hello_cities") for _ in range(20)]
            outputs = [client.wait_for_completion(i, timeout=30).output for i in ids]
        assert outputs == [["Hello Tokyo!", "Hello Seattle!", "Hello London!"]] * 20
    finally:
        command.send_signal(signal.SIGTERM)
        command.wait(timeout=60)
    assert command.returncode == 0, errors.read_text()
    assert len(set(pids)) == 2
    assert _gone(pids[1])
    assert errors.read_text().count("stopped") == 2


def test_a_worker_process_that_dies_is_reported(tmp_path: Path) -> None:
    command, errors, pids = _worker_processes(tmp_path, 2)
    try:
        os.kill(pids[1], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "exited with -9" not in errors.read_text():
            assert time.monotonic() < deadline, errors.read_text()
            time.sleep(0.1)
    finally:
        command.send_signal(signal.SIGTERM)
        command.wait(timeout=60)
    assert command.returncode == 1
    assert "worker processes exited with [-9]" in errors.read_text()


def test_worker_processes_must_be_at_least_one(tmp_path: Path) -> None:
    result = durafn(
        "worker",
        str(EXAMPLES / "hello_cities.py"),
        "--store",
        f"sqlite:///{tmp_path}/hub.db",
        "--processes",
        "0",
    )
    assert result.returncode == 2
    assert "--processes" in result.stderr


def test_ctrl_c_stops_every_worker_process(tmp_path: Path) -> None:
    # A terminal's Ctrl-C reaches the whole process group, the helpers as well.
    command, errors, pids = _worker_processes(tmp_path, 3, start_new_session=True)
    try:
        os.killpg(command.pid, signal.SIGINT)
        command.wait(timeout=60)
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
    assert command.returncode == 0, errors.read_text()
    assert all(_gone(pid) for pid in pids[1:])
    assert errors.read_text().count("stopped") == 3
