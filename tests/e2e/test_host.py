"""``durafn start`` end to end: the real process, driven over HTTP.

Most tests share one host (module scope) serving ``apps/host_app.py`` on a SQLite file, each
test using its own instance ids or id prefix; the README flow, keys and shutdown tests start
their own. Every host is stopped with SIGTERM and must exit with code 0. Oversized bodies are
tested in-process, with a small body limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import free_port, poll

import durafn as df
from durafn.host.server import create_asgi_app
from durafn.loader import load_app
from durafn.store import open_store

pytestmark = pytest.mark.e2e

HERE = Path(__file__).parent
HOST_APP = HERE / "apps" / "host_app.py"
HELLO_CITIES = HERE.parents[1] / "examples" / "hello_cities.py"
MGMT = "/runtime/webhooks/durabletask"
URL_FIELDS = (
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
)
PAYLOAD_FIELDS = ("id", *URL_FIELDS)
STATUS_FIELDS = (
    "name",
    "instanceId",
    "runtimeStatus",
    "input",
    "customStatus",
    "output",
    "createdTime",
    "lastUpdatedTime",
)
WHOLE_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
PRECISE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
GREETINGS = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


# ------------------------------------------------------------------------------- harness


class Host:
    """One ``durafn start`` process, its output in a file, and an HTTP client to it."""

    def __init__(
        self, app: Path, store: str, workdir: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"host-{self.port}.log"
        command = [sys.executable, "-m", "durafn", "start", str(app), "--store", store]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        poll(self._answers, timeout=30, what=f"the host on port {self.port}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"durafn start exited with {self.process.returncode}:\n{self.output()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait for the exit code (killed and failed after ``timeout``)."""
        self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the host did not stop within {timeout} s of SIGTERM:\n{self.output()}")

    # -- management API shortcuts

    def status(self, instance_id: str, **params: str) -> httpx.Response:
        return self.http.get(f"{MGMT}/instances/{instance_id}", params=params)

    def start(self, name: str, body: Any = None, instance_id: str | None = None) -> str:
        path = f"{MGMT}/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
        response = self.http.post(path, json=body)
        assert response.status_code == 202, response.text
        started: str = response.json()["id"]
        return started

    def wait_for(self, instance_id: str, *statuses: str) -> dict[str, Any]:
        """Poll the status until its runtimeStatus is one of ``statuses``; return the document."""

        def reached() -> dict[str, Any] | None:
            document: dict[str, Any] = self.status(instance_id).json()
            return document if document.get("runtimeStatus") in statuses else None

        found: dict[str, Any] = poll(reached, what=f"{instance_id} to be {'/'.join(statuses)}")
        return found

    def list_all(self, top: int = 1000, **params: str) -> list[dict[str, Any]]:
        """Every page of ``GET instances`` with these filters, in the order served."""
        found: list[dict[str, Any]] = []
        headers: dict[str, str] = {}
        while True:
            response = self.http.get(
                f"{MGMT}/instances", params={"top": str(top), **params}, headers=headers
            )
            assert response.status_code == 200, response.text
            found += response.json()
            token = response.headers["x-ms-continuation-token"]
            if not token:
                return found
            headers = {"x-ms-continuation-token": token}


@pytest.fixture
def start_host(tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """``start_host(app, *args, env=..., store=...)``; every host is stopped (exit 0) at the end."""
    hosts: list[Host] = []

    def start(app: Path, *args: str, env: dict[str, str] | None = None, store: str = "") -> Host:
        host = Host(app, store or f"sqlite:///{tmp_path}/hub.db", tmp_path, *args, env=env)
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        if host.process.poll() is None:
            code = host.stop()
            assert code == 0, host.output()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """The shared host of ``apps/host_app.py`` on loopback (no keys)."""
    workdir = tmp_path_factory.mktemp("host")
    shared = Host(HOST_APP, f"sqlite:///{workdir}/hub.db", workdir)
    yield shared
    assert shared.stop() == 0, shared.output()


def assert_error(response: httpx.Response, code: int, error: str | None = None) -> str:
    """The response is ``code`` with a JSON ``{"error", "message"}`` body; returns the message."""
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert body["message"], body
    if error is not None:
        assert body["error"] == error, body
    message: str = body["message"]
    return message


def ids(documents: list[dict[str, Any]]) -> list[str]:
    return [d["instanceId"] for d in documents]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------- README flow


def test_readme_flow_of_hello_cities(start_host: Callable[..., Host]) -> None:
    hello = start_host(HELLO_CITIES)
    assert "http_start: [POST]" in hello.output()

    started = hello.http.post("/api/orchestrators/hello_cities")
    assert started.status_code == 202, started.text
    payload = started.json()
    assert list(payload) == list(PAYLOAD_FIELDS)
    instance_id = payload["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", instance_id)
    assert started.headers["Location"] == payload["statusQueryGetUri"]
    assert started.headers["Retry-After"] == "10"
    instance_url = f"{hello.base_url}{MGMT}/instances/{instance_id}"
    for field in URL_FIELDS:
        assert payload[field].startswith(instance_url), payload[field]
        assert "taskHub=" in payload[field] and "code=" not in payload[field]
    assert "/raiseEvent/{eventName}?" in payload["sendEventPostUri"]
    assert "/terminate?reason={text}&" in payload["terminatePostUri"]
    assert payload["purgeHistoryDeleteUri"] == payload["statusQueryGetUri"]

    seen: list[int] = []

    def finished() -> httpx.Response | None:
        response = httpx.get(payload["statusQueryGetUri"])
        seen.append(response.status_code)
        if response.status_code == 202:  # still running: says where and when to poll again
            assert response.json()["runtimeStatus"] in {"Pending", "Running"}
            assert response.headers["Retry-After"] == "5"
            assert response.headers["Location"] == payload["statusQueryGetUri"]
            return None
        return response

    final = poll(finished, what="hello_cities to finish")
    assert set(seen) <= {200, 202} and seen[-1] == 200
    document = final.json()
    assert list(document) == list(STATUS_FIELDS)
    assert document["runtimeStatus"] == "Completed"
    assert document["output"] == GREETINGS
    assert document["name"] == "hello_cities" and document["instanceId"] == instance_id
    assert WHOLE_SECONDS.fullmatch(document["createdTime"])
    assert WHOLE_SECONDS.fullmatch(document["lastUpdatedTime"])
    assert "Location" not in final.headers

    history = hello.status(instance_id, showHistory="true").json()["historyEvents"]
    assert [e["EventType"] for e in history] == [
        "ExecutionStarted",
        "TaskCompleted",
        "TaskCompleted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert history[0]["FunctionName"] == "hello_cities"
    completed = history[1:4]
    assert [e["FunctionName"] for e in completed] == ["say_hello"] * 3
    assert [e["Input"] for e in completed] == ["Tokyo", "Seattle", "London"]
    assert all(PRECISE.fullmatch(e["ScheduledTime"]) for e in completed)
    assert all(PRECISE.fullmatch(e["Timestamp"]) for e in history)
    assert [e["Timestamp"] for e in history] == sorted(e["Timestamp"] for e in history)
    assert not any("Result" in e for e in history)  # results only with showHistoryOutput
    assert history[-1]["OrchestrationStatus"] == "Completed"

    with_output = hello.status(instance_id, showHistory="true", showHistoryOutput="true").json()
    events = with_output["historyEvents"]
    assert [e["Result"] for e in events[1:4]] == GREETINGS
    assert events[-1]["Result"] == GREETINGS

    without_input = hello.status(instance_id, showHistory="true", showInput="false").json()
    assert without_input["input"] is None and "input" in without_input
    assert not any("Input" in e for e in without_input["historyEvents"])
    assert "historyEvents" not in hello.status(instance_id).json()

    # The management API starts it as well, and purges it.
    again = hello.http.post(f"{MGMT}/orchestrators/hello_cities")
    assert again.status_code == 202
    assert hello.wait_for(again.json()["id"], "Completed")["output"] == GREETINGS
    purged = hello.http.delete(payload["purgeHistoryDeleteUri"])
    assert purged.status_code == 200 and purged.json() == {"instancesDeleted": 1}
    assert_error(hello.status(instance_id), 404, "InstanceNotFound")


# ------------------------------------------------------------------------------- management API


def test_start_with_and_without_an_instance_id(host: Host) -> None:
    response = host.http.post(f"{MGMT}/orchestrators/echo", json={"n": 1})
    assert response.status_code == 202
    generated = response.json()["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert response.headers["Location"] == response.json()["statusQueryGetUri"]
    assert response.headers["Retry-After"] == "10"

    chosen = host.http.post(f"{MGMT}/orchestrators/echo/start-chosen", json=[1, "two"])
    assert chosen.status_code == 202
    assert chosen.json()["id"] == "start-chosen"
    assert chosen.json()["statusQueryGetUri"].startswith(
        f"{host.base_url}{MGMT}/instances/start-chosen?"
    )
    assert host.wait_for(generated, "Completed")["output"] == {"n": 1}
    done = host.wait_for("start-chosen", "Completed")
    assert done["output"] == [1, "two"] and done["input"] == [1, "two"]

    # Function names are not case-sensitive in URLs.
    mixed = host.http.post(f"{MGMT}/orchestrators/ECHO/start-mixed-case", json=3)
    assert mixed.status_code == 202
    assert host.wait_for("start-mixed-case", "Completed")["name"] == "echo"

    # No body is input None; a finished id may be started again (a new run replaces it).
    host.start("echo", None, "start-chosen")
    assert host.wait_for("start-chosen", "Completed")["output"] is None


def test_starting_a_running_instance_id_again_is_409(host: Host) -> None:
    host.start("wait_for_approval", "first", "dup-running")
    running = host.wait_for("dup-running", "Running")
    again = host.http.post(f"{MGMT}/orchestrators/wait_for_approval/dup-running", json="second")
    assert "already exists" in assert_error(again, 409, "InstanceAlreadyExists")
    now = host.status("dup-running")
    assert now.status_code == 202
    assert now.json()["input"] == "first"
    assert now.json()["createdTime"] == running["createdTime"]


def test_raise_event_completes_the_instance_with_its_data(host: Host) -> None:
    host.start("wait_for_approval", {"order": 7}, "event-1")
    waiting = host.wait_for("event-1", "Running")
    assert waiting["customStatus"] == "waiting"
    response = host.status("event-1")
    assert response.status_code == 202 and response.headers["Retry-After"] == "5"
    assert response.headers["Location"] == f"{host.base_url}{MGMT}/instances/event-1"

    raised = host.http.post(f"{MGMT}/instances/event-1/raiseEvent/approval", json={"by": "ann"})
    assert raised.status_code == 202 and raised.content == b""
    done = host.wait_for("event-1", "Completed")
    assert done["output"] == {"input": {"order": 7}, "approval": {"by": "ann"}}
    assert host.status("event-1").status_code == 200
    history = host.status("event-1", showHistory="true").json()["historyEvents"]
    raised_event = next(e for e in history if e["EventType"] == "EventRaised")
    assert raised_event["Name"] == "approval" and raised_event["Input"] == {"by": "ann"}


def test_suspend_and_resume(host: Host) -> None:
    host.start("wait_for_approval", None, "suspend-1")
    host.wait_for("suspend-1", "Running")
    assert host.http.post(f"{MGMT}/instances/suspend-1/suspend?reason=lunch").status_code == 202
    suspended = host.wait_for("suspend-1", "Suspended")
    assert host.status("suspend-1").status_code == 202  # not finished
    # Suspending again is accepted and changes nothing.
    assert host.http.post(f"{MGMT}/instances/suspend-1/suspend").status_code == 202

    # An event to a suspended instance waits for the resume.
    raised = host.http.post(f"{MGMT}/instances/suspend-1/raiseEvent/approval", json="yes")
    assert raised.status_code == 202
    time.sleep(0.3)
    assert host.status("suspend-1").json()["runtimeStatus"] == "Suspended"

    assert host.http.post(f"{MGMT}/instances/suspend-1/resume?reason=back").status_code == 202
    done = host.wait_for("suspend-1", "Completed")
    assert done["output"] == {"input": None, "approval": "yes"}
    assert suspended["customStatus"] == "waiting"
    history = host.status("suspend-1", showHistory="true").json()["historyEvents"]
    kinds = [e["EventType"] for e in history]
    assert kinds.index("ExecutionSuspended") < kinds.index("ExecutionResumed")
    reasons = [e.get("Reason") for e in history if e["EventType"] == "ExecutionSuspended"]
    assert reasons == ["lunch", None]  # the second suspend is recorded and changes nothing


def test_resume_of_a_running_instance_is_accepted_and_changes_nothing(host: Host) -> None:
    host.start("wait_for_approval", None, "resume-running")
    host.wait_for("resume-running", "Running")
    assert host.http.post(f"{MGMT}/instances/resume-running/resume").status_code == 202
    host.http.post(f"{MGMT}/instances/resume-running/raiseEvent/approval", json=1)
    assert host.wait_for("resume-running", "Completed")["output"]["approval"] == 1


def test_terminate(host: Host) -> None:
    host.start("sleep_long", None, "terminate-1")
    host.wait_for("terminate-1", "Running")
    response = host.http.post(f"{MGMT}/instances/terminate-1/terminate?reason=enough")
    assert response.status_code == 202 and response.content == b""
    done = host.wait_for("terminate-1", "Terminated")
    assert done["output"] == "enough"
    assert host.status("terminate-1").status_code == 200
    history = host.status("terminate-1", showHistory="true").json()["historyEvents"]
    timer, terminated = history[1], history[2]
    assert timer["EventType"] == "TimerCreated" and PRECISE.fullmatch(timer["FireAt"])
    assert terminated["EventType"] == "ExecutionTerminated" and terminated["Input"] == "enough"


def test_a_suspended_instance_can_be_terminated(host: Host) -> None:
    host.start("sleep_long", None, "terminate-suspended")
    host.wait_for("terminate-suspended", "Running")
    host.http.post(f"{MGMT}/instances/terminate-suspended/suspend")
    host.wait_for("terminate-suspended", "Suspended")
    host.http.post(f"{MGMT}/instances/terminate-suspended/terminate")
    host.wait_for("terminate-suspended", "Terminated")


def test_a_finished_instance_refuses_events_and_control_with_410(host: Host) -> None:
    host.start("echo", "done", "finished-1")
    host.wait_for("finished-1", "Completed")
    host.start("fail_now", "x", "finished-2")
    host.wait_for("finished-2", "Failed")
    for instance_id in ("finished-1", "finished-2"):
        base = f"{MGMT}/instances/{instance_id}"
        for path in ("raiseEvent/approval", "terminate", "suspend", "resume"):
            response = host.http.post(f"{base}/{path}", json=None)
            assert "already finished" in assert_error(response, 410, "InstanceNotRunning")
    assert host.status("finished-1").json()["output"] == "done"
    assert host.status("finished-2").json()["runtimeStatus"] == "Failed"


def test_unknown_instances_are_404(host: Host) -> None:
    base = f"{MGMT}/instances/no-such-instance"
    for method, path in [
        ("GET", base),
        ("DELETE", base),
        ("POST", f"{base}/raiseEvent/approval"),
        ("POST", f"{base}/terminate"),
        ("POST", f"{base}/suspend"),
        ("POST", f"{base}/resume"),
        ("POST", f"{base}/restart"),
    ]:
        response = host.http.request(method, path)
        assert "no-such-instance" in assert_error(response, 404, "InstanceNotFound"), path


def test_a_failed_instance_answers_200_or_500_on_request(host: Host) -> None:
    host.start("fail_now", "the input", "failed-1")
    document = host.wait_for("failed-1", "Failed")
    assert document["input"] == "the input"
    assert "boom: the input" in document["output"]
    assert "boom: the input" in document["failureDetails"]["errorMessage"]
    assert host.status("failed-1").status_code == 200
    history = host.status("failed-1", showHistory="true").json()["historyEvents"]
    task_failed = next(e for e in history if e["EventType"] == "TaskFailed")
    assert task_failed["FunctionName"] == "explode" and task_failed["Input"] == "the input"
    assert "boom: the input" in task_failed["FailureDetails"]["ErrorMessage"]
    assert history[-1]["OrchestrationStatus"] == "Failed"
    flagged = host.status("failed-1", returnInternalServerErrorOnFailure="true")
    assert flagged.status_code == 500
    assert flagged.json()["runtimeStatus"] == "Failed"
    # The flag only matters for failures.
    host.start("echo", 1, "completed-flagged")
    host.wait_for("completed-flagged", "Completed")
    ok = host.status("completed-flagged", returnInternalServerErrorOnFailure="true")
    assert ok.status_code == 200


def test_purge_one_instance(host: Host) -> None:
    host.start("echo", 1, "purge-1")
    host.wait_for("purge-1", "Completed")
    response = host.http.delete(f"{MGMT}/instances/purge-1")
    assert response.status_code == 200 and response.json() == {"instancesDeleted": 1}
    assert_error(host.status("purge-1"), 404)
    assert_error(host.http.delete(f"{MGMT}/instances/purge-1"), 404)

    host.start("sleep_long", None, "purge-running")
    host.wait_for("purge-running", "Running")
    refused = host.http.delete(f"{MGMT}/instances/purge-running")
    assert "terminate it first" in assert_error(refused, 409, "InstanceStillRunning")
    assert host.status("purge-running").json()["runtimeStatus"] == "Running"


def test_purge_many_by_creation_time_and_status(host: Host) -> None:
    host.start("echo", 0, "pm-early")
    host.wait_for("pm-early", "Completed")
    time.sleep(0.01)
    window_start = datetime.now(UTC)
    for name, instance_id in [
        ("echo", "pm-ok-1"),
        ("echo", "pm-ok-2"),
        ("fail_now", "pm-failed-1"),
        ("fail_now", "pm-failed-2"),
        ("sleep_long", "pm-running"),
    ]:
        host.start(name, None, instance_id)
    for instance_id in ("pm-ok-1", "pm-ok-2", "pm-failed-1", "pm-failed-2", "pm-running"):
        host.wait_for(instance_id, "Completed", "Failed", "Running")
    window_end = datetime.now(UTC)
    before = ids(host.list_all(instanceIdPrefix="pm-"))
    window = {"createdTimeFrom": iso(window_start), "createdTimeTo": iso(window_end)}

    message = assert_error(host.http.delete(f"{MGMT}/instances"), 400, "BadRequest")
    assert "createdTimeFrom" in message
    no_from = host.http.delete(f"{MGMT}/instances", params={"createdTimeTo": iso(window_end)})
    assert_error(no_from, 400)
    assert ids(host.list_all(instanceIdPrefix="pm-")) == before

    failed = host.http.delete(f"{MGMT}/instances", params={**window, "runtimeStatus": "Failed"})
    assert failed.status_code == 200 and failed.json() == {"instancesDeleted": 2}
    assert sorted(ids(host.list_all(instanceIdPrefix="pm-"))) == [
        "pm-early",
        "pm-ok-1",
        "pm-ok-2",
        "pm-running",
    ]
    rest = host.http.delete(f"{MGMT}/instances", params=window)  # running ones are kept
    assert rest.status_code == 200 and rest.json() == {"instancesDeleted": 2}
    assert sorted(ids(host.list_all(instanceIdPrefix="pm-"))) == ["pm-early", "pm-running"]
    assert_error(host.http.delete(f"{MGMT}/instances", params=window), 404)


def test_restart_with_a_new_or_the_same_instance_id(host: Host) -> None:
    host.start("echo", {"x": 1}, "restart-1")
    host.wait_for("restart-1", "Completed")

    fresh = host.http.post(f"{MGMT}/instances/restart-1/restart")
    assert fresh.status_code == 202
    new_id = fresh.json()["id"]
    assert new_id != "restart-1" and list(fresh.json()) == list(PAYLOAD_FIELDS)
    assert fresh.headers["Location"] == fresh.json()["statusQueryGetUri"]
    restarted = host.wait_for(new_id, "Completed")
    assert restarted["output"] == {"x": 1} and restarted["name"] == "echo"

    same = host.http.post(f"{MGMT}/instances/restart-1/restart?restartWithNewInstanceId=false")
    assert same.status_code == 202 and same.json()["id"] == "restart-1"
    assert host.wait_for("restart-1", "Completed")["output"] == {"x": 1}

    # A running instance: restarting it under its own id conflicts; under a new id it is fine.
    host.start("wait_for_approval", "again", "restart-running")
    host.wait_for("restart-running", "Running")
    conflict = host.http.post(
        f"{MGMT}/instances/restart-running/restart", params={"restartWithNewInstanceId": "false"}
    )
    assert_error(conflict, 409, "InstanceAlreadyExists")
    copy = host.http.post(f"{MGMT}/instances/restart-running/restart")
    assert copy.status_code == 202
    assert host.wait_for(copy.json()["id"], "Running")["input"] == "again"


def test_list_filters(host: Host) -> None:
    host.start("echo", "a", "lf-a")
    host.wait_for("lf-a", "Completed")
    time.sleep(0.01)
    middle = datetime.now(UTC)
    host.start("fail_now", "b", "lf-b")
    host.start("sleep_long", "c", "lf-c")
    host.wait_for("lf-b", "Failed")
    host.wait_for("lf-c", "Running")

    def listed(**params: str) -> list[str]:
        response = host.http.get(f"{MGMT}/instances", params={"instanceIdPrefix": "lf-", **params})
        assert response.status_code == 200, response.text
        return ids(response.json())

    assert listed() == ["lf-c", "lf-b", "lf-a"]  # newest first
    assert listed(runtimeStatus="Completed,Failed") == ["lf-b", "lf-a"]
    assert listed(runtimeStatus="Running") == ["lf-c"]
    both = host.http.get(
        f"{MGMT}/instances?instanceIdPrefix=lf-&runtimeStatus=Completed&runtimeStatus=Running"
    )
    assert ids(both.json()) == ["lf-c", "lf-a"]
    assert listed(createdTimeFrom=iso(middle)) == ["lf-c", "lf-b"]
    assert listed(createdTimeTo=iso(middle)) == ["lf-a"]
    assert listed(instanceIdPrefix="lf-b") == ["lf-b"]
    assert listed(instanceIdPrefix="lf-nothing") == []

    page = host.http.get(f"{MGMT}/instances", params={"instanceIdPrefix": "lf-", "top": "2"})
    assert ids(page.json()) == ["lf-c", "lf-b"]
    assert page.headers["x-ms-continuation-token"]
    last = host.http.get(
        f"{MGMT}/instances",
        params={"instanceIdPrefix": "lf-", "top": "2"},
        headers={"x-ms-continuation-token": page.headers["x-ms-continuation-token"]},
    )
    assert ids(last.json()) == ["lf-a"] and last.headers["x-ms-continuation-token"] == ""

    documents = host.http.get(f"{MGMT}/instances", params={"instanceIdPrefix": "lf-"}).json()
    assert [d["input"] for d in documents] == ["c", "b", "a"]  # showInput defaults to true
    assert all(list(d) == list(STATUS_FIELDS) or "failureDetails" in d for d in documents)
    hidden = host.http.get(f"{MGMT}/instances?instanceIdPrefix=lf-&showInput=false").json()
    assert [d["input"] for d in hidden] == [None, None, None]
    assert_error(host.http.get(f"{MGMT}/instances?runtimeStatus=Sleeping"), 400)


def test_paging_over_250_instances(host: Host) -> None:
    started = [f"page-{n:03d}" for n in range(250)]
    for instance_id in started:
        host.start("echo", instance_id, instance_id)

    pages: list[list[str]] = []
    headers: dict[str, str] = {}
    while True:
        response = host.http.get(
            f"{MGMT}/instances", params={"instanceIdPrefix": "page-", "top": "40"}, headers=headers
        )
        assert response.status_code == 200
        pages.append(ids(response.json()))
        token = response.headers["x-ms-continuation-token"]
        if not token:
            break
        headers = {"x-ms-continuation-token": token}
    assert [len(p) for p in pages] == [40] * 6 + [10]
    listed = [instance_id for page in pages for instance_id in page]
    assert listed == started[::-1]  # each exactly once, newest first

    # The whole hub, unfiltered, in pages of 100: every instance once.
    everything = ids(host.list_all(top=100))
    assert len(everything) == len(set(everything))
    assert set(started) <= set(everything)


def test_the_openapi_document_lists_every_route(host: Host) -> None:
    response = host.http.get(f"{MGMT}/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert f"{MGMT}/instances/{{instanceId}}/raiseEvent/{{eventName}}" in paths
    assert set(paths[f"{MGMT}/instances"]) >= {"get", "delete"}
    entity = f"{MGMT}/entities/{{entityName}}/{{entityKey}}"
    assert set(paths[entity]) >= {"get", "post"}
    assert f"{MGMT}/entities" in paths
    assert len(paths) == 12  # 9 for instances, 3 for entities


# ------------------------------------------------------------------------------- bad input


def test_bad_input_is_refused_with_a_json_error_and_changes_nothing(host: Host) -> None:
    host.start("wait_for_approval", None, "bad-waiting")
    host.wait_for("bad-waiting", "Running")
    before = sorted(ids(host.list_all()))

    malformed = host.http.post(
        f"{MGMT}/orchestrators/echo/bad-json",
        content=b'{"unclosed": ',
        headers={"content-type": "application/json"},
    )
    assert "not valid JSON" in assert_error(malformed, 400, "BadRequest")
    assert_error(host.status("bad-json"), 404)

    unknown = host.http.post(f"{MGMT}/orchestrators/no_such_orchestrator/bad-name", json=1)
    message = assert_error(unknown, 400, "FunctionNotFound")
    assert "no_such_orchestrator" in message and "echo" in message  # lists the registered ones
    assert_error(host.status("bad-name"), 404)

    for bad_id in ("%20leading-space", "x" * 300, "hash%23in-it", "tab%09in-it"):
        response = host.http.post(f"{MGMT}/orchestrators/echo/{bad_id}", json=1)
        assert "instance_id" in assert_error(response, 400), bad_id

    bad_event = host.http.post(
        f"{MGMT}/instances/bad-waiting/raiseEvent/approval",
        content=b"not json",
        headers={"content-type": "application/json"},
    )
    assert_error(bad_event, 400, "BadRequest")

    for query in ("top=0", "top=many", "showInput=maybe", "createdTimeFrom=yesterday"):
        assert_error(host.http.get(f"{MGMT}/instances?{query}"), 400)
    assert_error(host.status("bad-waiting", showHistory="yes"), 400)
    other_hub = host.http.get(f"{MGMT}/instances/bad-waiting?taskHub=OtherHub")
    assert "OtherHub" in assert_error(other_hub, 400)
    assert host.http.get(f"{MGMT}/instances/bad-waiting?taskHub=DEFAULT").status_code == 202

    wrong_method = host.http.put(f"{MGMT}/instances")
    assert_error(wrong_method, 405, "MethodNotAllowed")
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE"}
    assert_error(host.http.get(f"{MGMT}/orchestrators/echo"), 405)
    assert_error(host.http.patch(f"{MGMT}/instances/bad-waiting/terminate"), 405)
    assert_error(host.http.get(f"{MGMT}/no/such/route"), 404, "NotFound")
    assert_error(host.http.get("/api/no-such-function"), 404, "NotFound")
    assert_error(host.http.get("/elsewhere"), 404, "NotFound")

    assert sorted(ids(host.list_all())) == before
    still = host.status("bad-waiting", showHistory="true").json()
    assert still["runtimeStatus"] == "Running"
    assert "EventRaised" not in [e["EventType"] for e in still["historyEvents"]]


def test_oversized_bodies_are_413_and_change_nothing() -> None:
    app = load_app(str(HOST_APP))
    store = open_store(f"memory://oversized-{uuid.uuid4().hex}")
    asgi = create_asgi_app(app, df.AsyncClient(store, app=app), keys=None, max_body_bytes=1024)
    big = {"blob": "x" * 2000}

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * 256

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.post(f"{MGMT}/orchestrators/echo/big-1", json=big)
            assert "1024" in assert_error(response, 413, "PayloadTooLarge")
            assert_error(await client.get(f"{MGMT}/instances/big-1"), 404)

            # A chunked body without Content-Length is cut off at the limit as well.
            streamed = await client.post(f"{MGMT}/orchestrators/echo/big-2", content=chunks())
            assert_error(streamed, 413)

            # No worker runs here: the instance stays Pending, and must get no event.
            small = await client.post(f"{MGMT}/orchestrators/wait_for_approval/small", json=1)
            assert small.status_code == 202
            before = (await client.get(f"{MGMT}/instances/small?showHistory=true")).json()
            assert "historyEvents" not in before  # Pending: nothing to show yet
            event = await client.post(f"{MGMT}/instances/small/raiseEvent/approval", json=big)
            assert_error(event, 413)
            assert_error(await client.post("/api/sync/echo", json=big), 413)
            assert ids((await client.get(f"{MGMT}/instances")).json()) == ["small"]
            after = (await client.get(f"{MGMT}/instances/small?showHistory=true")).json()
            assert after == before
            fits = await client.post(f"{MGMT}/orchestrators/echo/fits", json={"blob": "x" * 900})
            assert fits.status_code == 202
        await store.close()

    asyncio.run(scenario())


# ------------------------------------------------------------------------------- HTTP functions


def test_sync_function_with_the_blocking_client_returning_a_dict(host: Host) -> None:
    response = host.http.post("/api/sync/echo?tag=t1", json={"k": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["tag"] == "t1" and body["type"] == "application/json"
    assert host.wait_for(body["id"], "Completed")["output"] == {"k": 1}


def test_async_function_returning_the_check_status_response(host: Host) -> None:
    response = host.http.post("/api/async/echo", json="hi")
    assert response.status_code == 202
    payload = response.json()
    assert list(payload) == list(PAYLOAD_FIELDS)
    assert response.headers["Location"] == payload["statusQueryGetUri"]
    assert payload["statusQueryGetUri"].startswith(f"{host.base_url}{MGMT}/instances/")

    def done() -> dict[str, Any] | None:
        status: dict[str, Any] = httpx.get(payload["statusQueryGetUri"]).json()
        return status if status["runtimeStatus"] == "Completed" else None

    assert poll(done)["output"] == "hi"


def test_route_and_query_params_and_response_kinds(host: Host) -> None:
    item = host.http.get("/api/items/42/parts/wheel?q=red")
    assert item.status_code == 201
    assert item.text == "42/wheel?red"
    assert item.headers["X-Item"] == "42"
    assert item.headers["content-type"].startswith("text/plain")

    deleted = host.http.delete("/api/items/42/parts/wheel")
    assert deleted.status_code == 204 and deleted.content == b""
    wrong = host.http.put("/api/items/42/parts/wheel")
    assert_error(wrong, 405)
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD", "DELETE"}

    plain = host.http.get("/api/plain")
    assert plain.status_code == 200 and plain.text == "plain text"
    assert plain.headers["X-Kind"] == "starlette"


def test_wait_for_completion_or_check_status_response(host: Host) -> None:
    fast = host.http.post("/api/wait/echo", json="quick")
    assert fast.status_code == 200
    assert fast.json() == "quick"

    slow = host.http.post("/api/wait/sleep_briefly?timeout_ms=200", json=30)
    assert slow.status_code == 202
    payload = slow.json()
    assert slow.headers["Location"] == payload["statusQueryGetUri"]
    assert host.wait_for(payload["id"], "Running")["name"] == "sleep_briefly"
    host.http.post(f"{MGMT}/instances/{payload['id']}/terminate")

    failed = host.http.post("/api/wait/fail_now", json="w")
    assert failed.status_code == 500
    assert failed.json()["runtimeStatus"] == "Failed"


# ------------------------------------------------------------------------------- keys


def test_keys_off_loopback(start_host: Callable[..., Host], tmp_path: Path) -> None:
    keys_file = tmp_path / "secrets" / "keys.json"
    host = start_host(HOST_APP, "--host", "0.0.0.0", env={"DURAFN_KEYS_FILE": str(keys_file)})
    keys = json.loads(keys_file.read_text())
    assert set(keys) == {"default", "durabletask", "master"}
    assert len(set(keys.values())) == 3
    assert keys_file.stat().st_mode & 0o777 == 0o600
    shown = host.output()
    assert f"function key {keys['default']}" in shown
    assert f"management key {keys['durabletask']}" in shown

    instances = f"{MGMT}/instances"
    refused = host.http.get(instances)
    assert "code=" in assert_error(refused, 401, "Unauthorized")
    assert refused.headers["WWW-Authenticate"]
    assert host.http.get(instances, params={"code": keys["durabletask"]}).status_code == 200
    assert (
        host.http.get(instances, headers={"x-functions-key": keys["durabletask"]}).status_code
        == 200
    )
    assert host.http.get(instances, params={"code": keys["master"]}).status_code == 200
    assert_error(host.http.get(instances, params={"code": "wrong"}), 401)
    assert_error(host.http.get(instances, headers={"x-functions-key": keys["default"]}), 401)
    assert_error(host.http.post(f"{MGMT}/orchestrators/echo", json=1), 401)
    assert host.http.get(instances, params={"code": keys["durabletask"]}).json() == []

    # The URLs handed out carry the management key, so following them just works.
    started = host.http.post(
        f"{MGMT}/orchestrators/echo", params={"code": keys["durabletask"]}, json="k"
    )
    assert started.status_code == 202
    payload = started.json()
    for field in URL_FIELDS:
        assert f"code={keys['durabletask']}" in payload[field]

    def done() -> dict[str, Any] | None:
        status: dict[str, Any] = httpx.get(payload["statusQueryGetUri"]).json()
        return status if status.get("runtimeStatus") == "Completed" else None

    assert poll(done)["output"] == "k"

    via_function = host.http.post("/api/async/echo", params={"code": keys["default"]}, json=2)
    assert via_function.status_code == 202
    assert f"code={keys['durabletask']}" in via_function.json()["statusQueryGetUri"]
    assert httpx.get(via_function.json()["statusQueryGetUri"]).status_code in {200, 202}

    # HTTP functions by auth level.
    assert host.http.get("/api/open").json() == {"level": "anonymous"}
    assert_error(host.http.get("/api/guarded"), 401)
    assert_error(host.http.get("/api/guarded", params={"code": keys["durabletask"]}), 401)
    assert host.http.get("/api/guarded", params={"code": keys["default"]}).status_code == 200
    assert host.http.get("/api/guarded", headers={"x-functions-key": keys["master"]}).json() == {
        "level": "function"
    }
    assert_error(host.http.get("/api/admin-only", params={"code": keys["default"]}), 401)
    assert host.http.get("/api/admin-only", params={"code": keys["master"]}).status_code == 200

    # A second host on loopback with --require-keys reuses the same keys file.
    strict = start_host(
        HOST_APP,
        "--require-keys",
        env={"DURAFN_KEYS_FILE": str(keys_file)},
        store=f"sqlite:///{tmp_path}/other.db",
    )
    assert f"management key {keys['durabletask']}" in strict.output()
    assert_error(strict.http.get(instances), 401)
    assert strict.http.get(instances, params={"code": keys["durabletask"]}).status_code == 200
    assert json.loads(keys_file.read_text()) == keys


# ------------------------------------------------------------------------------- shutdown


def test_graceful_shutdown_mid_run_and_restart(start_host: Callable[..., Host]) -> None:
    first = start_host(HOST_APP)
    started = [first.start("slow_steps", n, f"shutdown-{n:03d}") for n in range(100)]
    first.wait_for(started[-1], "Running")
    finished_before = sum(
        d["runtimeStatus"] == "Completed" for d in first.list_all(instanceIdPrefix="shutdown-")
    )
    assert finished_before < 100  # the last one has a timer of a second or more ahead

    stopping = time.monotonic()
    assert first.stop() == 0, first.output()
    assert time.monotonic() - stopping < 30
    assert "Traceback" not in first.output(), first.output()

    second = start_host(HOST_APP)

    def all_done() -> list[dict[str, Any]] | None:
        documents = second.list_all(instanceIdPrefix="shutdown-")
        finished = all(d["runtimeStatus"] == "Completed" for d in documents)
        return documents if finished and len(documents) == 100 else None

    documents = poll(all_done, timeout=60, what="every instance to complete after the restart")
    assert {d["instanceId"]: d["output"] for d in documents} == {
        f"shutdown-{n:03d}": (n + 6) * 10 for n in range(100)
    }


# ------------------------------------------------------------------------ every example is servable

EXAMPLES_DIR = Path(__file__).parents[2] / "examples"
# One orchestrator of each example and an input it accepts.
EXAMPLE_RUNS = {
    "async_orchestrator.py": ("hello_cities_async", None),
    "hello_cities.py": ("hello_cities", None),
}


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES_DIR.glob("*.py")))
def test_every_example_is_servable(example: str, start_host: Callable[..., Host]) -> None:
    host = start_host(EXAMPLES_DIR / example)
    listing = host.http.get(f"{MGMT}/instances")
    assert listing.status_code == 200
    output = host.output()
    assert "Functions:" in output
    assert "orchestrationTrigger" in output
    name, body = EXAMPLE_RUNS.get(example, (None, None))
    if name is not None:
        instance_id = host.start(name, body)
        assert host.wait_for(instance_id, "Completed")["output"]
