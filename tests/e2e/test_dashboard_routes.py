"""The dashboard's JSON routes, in process: Starlette's TestClient over the host's ASGI app,
with a worker (``df.Runtime``) on an in-memory store moving the instances along. The browser
tests are in test_dashboard.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

import durafn as df
from durafn.dashboard import create_dashboard_app
from durafn.dashboard.routes import KEY_COOKIE
from durafn.host.keys import HostKeys
from durafn.host.server import create_asgi_app

pytestmark = pytest.mark.e2e

API = "/dashboard/api"

app = df.App()


@app.orchestrator
def greet(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(hello, ctx.get_input()))


@app.activity
def hello(name: str) -> str:
    return f"Hello {name}!"


@app.orchestrator
def approve(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    ctx.set_custom_status("waiting")
    decision = yield ctx.wait_for_external_event("approval")
    return decision


@app.orchestrator
def parent(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield ctx.call_sub_orchestrator(greet, "child"))


@app.orchestrator
def sleeper(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    yield ctx.create_timer(ctx.current_utc_datetime + timedelta(hours=1))


@app.entity
def counter(ctx: df.EntityContext) -> None:
    ctx.set_state(ctx.get_state(lambda: 0) + ctx.get_input())


@app.orchestrator
def crash(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    raise ValueError("bad input")
    yield


@pytest.fixture
def runtime() -> Iterator[df.Runtime]:
    with df.Runtime(app, store=f"memory://dashboard-{uuid.uuid4().hex}") as rt:
        yield rt


def host(rt: df.Runtime, keys: HostKeys | None = None) -> TestClient:
    asgi = create_asgi_app(app, df.AsyncClient(rt.client.async_client.store, app=app), keys)
    return TestClient(asgi)


def finish(rt: df.Runtime, *ids: str) -> None:
    for instance_id in ids:
        rt.client.wait_for_completion(instance_id, timeout=4)


def test_list_counts_filters_and_pages(runtime: df.Runtime) -> None:
    ids = [runtime.client.start_new(greet, f"n{i}", instance_id=f"g-{i}") for i in range(5)]
    finish(runtime, *ids)
    runtime.client.start_new(approve, instance_id="a-1")
    http = host(runtime)

    counts = http.get(f"{API}/counts").json()
    assert counts["total"] == 6 and counts["counts"]["Completed"] == 5
    assert set(counts["counts"]) == {s.value for s in df.RuntimeStatus}
    # Counts leave the status filter out (they are the tabs of every status) but keep the rest.
    assert http.get(f"{API}/counts?prefix=g-&status=Running").json()["total"] == 5

    first = http.get(f"{API}/instances?top=2&prefix=g-").json()
    assert [row["instanceId"] for row in first["instances"]] == ["g-4", "g-3"]
    row = first["instances"][0]
    assert row["name"] == "greet" and row["runtimeStatus"] == "Completed"
    assert row["createdTime"].endswith("Z") and "." in row["createdTime"]
    second = http.get(f"{API}/instances?top=2&prefix=g-&token={first['continuationToken']}")
    assert [r["instanceId"] for r in second.json()["instances"]] == ["g-2", "g-1"]

    by_name = http.get(f"{API}/instances?name=approve").json()["instances"]
    assert [r["instanceId"] for r in by_name] == ["a-1"]
    by_status = http.get(f"{API}/instances?status=Completed,Failed").json()["instances"]
    assert len(by_status) == 5
    future = http.get(f"{API}/instances", params={"from": "2999-01-01T00:00:00Z"}).json()
    assert future["instances"] == [] and future["continuationToken"] is None


def test_detail_has_history_timeline_and_children(runtime: df.Runtime) -> None:
    runtime.client.start_new(parent, instance_id="p-1")
    finish(runtime, "p-1")
    http = host(runtime)
    document = http.get(f"{API}/instances/p-1").json()
    assert document["instance"]["runtimeStatus"] == "Completed"
    assert document["instance"]["output"] == "Hello child!"
    (child,) = document["children"]
    assert child["runtimeStatus"] == "Completed" and child["name"] == "greet"
    types = [e["eventType"] for e in document["history"]]
    assert "SubOrchestrationInstanceCreated" in types and "OrchestratorStarted" in types
    (lane,) = document["timeline"]["lanes"]
    assert lane["kind"] == "suborchestration" and lane["instanceId"] == child["instanceId"]

    child_document = http.get(f"{API}/instances/{child['instanceId']}").json()
    assert child_document["instance"]["parentInstanceId"] == "p-1"
    completed = [e for e in child_document["history"] if e["eventType"] == "TaskCompleted"]
    assert completed[0]["details"]["result"] == "Hello child!"
    assert http.get(f"{API}/instances/nope").status_code == 404


def test_failure_shows_its_stack_trace(runtime: df.Runtime) -> None:
    runtime.client.start_new(crash, instance_id="c-1")
    finish(runtime, "c-1")
    failure = host(runtime).get(f"{API}/instances/c-1").json()["instance"]["failure"]
    assert failure["errorType"] == "ValueError" and failure["errorMessage"] == "bad input"
    assert "Traceback" in failure["stackTrace"]


def test_actions(runtime: df.Runtime) -> None:
    http = host(runtime)
    started = http.post(f"{API}/orchestrators/greet", json={"input": "web", "instanceId": "s-1"})
    assert started.status_code == 202 and started.json() == {"id": "s-1"}
    assert runtime.client.wait_for_completion("s-1", timeout=4).output == "Hello web!"

    http.post(f"{API}/orchestrators/approve", json={"instanceId": "w-1"})
    _wait_status(runtime, "w-1", "Running")
    raised = http.post(
        f"{API}/instances/w-1/raise-event", json={"name": "approval", "data": {"ok": True}}
    )
    assert raised.status_code == 202
    assert runtime.client.wait_for_completion("w-1", timeout=4).output == {"ok": True}

    http.post(f"{API}/orchestrators/sleeper", json={"instanceId": "z-1"})
    _wait_status(runtime, "z-1", "Running")
    assert http.post(f"{API}/instances/z-1/suspend", json={}).status_code == 202
    _wait_status(runtime, "z-1", "Suspended")
    assert http.post(f"{API}/instances/z-1/resume", json={}).status_code == 202
    _wait_status(runtime, "z-1", "Running")
    assert http.post(f"{API}/instances/z-1/terminate", json={"reason": "x"}).status_code == 202
    assert runtime.client.wait_for_completion("z-1", timeout=4).runtime_status.value == (
        "Terminated"
    )
    assert http.post(f"{API}/instances/z-1/purge").json() == {"instancesDeleted": 1}
    assert http.post(f"{API}/instances/z-1/purge").status_code == 404
    # Refused operations answer as the management API does.
    assert http.post(f"{API}/instances/s-1/terminate", json={}).status_code == 410
    assert http.post(f"{API}/orchestrators/nothing", json={}).status_code == 400
    assert http.post(f"{API}/instances/s-1/raise-event", json={}).status_code == 400
    assert http.post(f"{API}/instances/s-1/terminate", json=[1]).status_code == 400


def test_bulk_actions_count_first(runtime: df.Runtime) -> None:
    for i in range(3):
        runtime.client.start_new(sleeper, instance_id=f"bulk-s{i}")
    done = [runtime.client.start_new(greet, "x", instance_id=f"bulk-g{i}") for i in range(4)]
    finish(runtime, *done)
    runtime.client.start_new(greet, "x", instance_id="other-1")
    finish(runtime, "other-1")
    http = host(runtime)

    preview = http.post(f"{API}/bulk/purge", json={"prefix": "bulk-", "dryRun": True}).json()
    assert preview == {"count": 4, "dryRun": True}
    assert runtime.client.get_status("bulk-g0") is not None  # a dry run changes nothing
    purged = http.post(f"{API}/bulk/purge", json={"prefix": "bulk-"}).json()
    assert purged == {"count": 4, "dryRun": False}
    assert runtime.client.get_status("other-1") is not None

    flt: dict[str, Any] = {"prefix": "bulk-", "status": ["Running", "Pending"]}
    for i in range(3):
        _wait_status(runtime, f"bulk-s{i}", "Running")
    assert http.post(f"{API}/bulk/terminate", json={**flt, "dryRun": True}).json()["count"] == 3
    assert http.post(f"{API}/bulk/terminate", json=flt).json()["count"] == 3
    for i in range(3):
        assert runtime.client.wait_for_completion(f"bulk-s{i}", timeout=4).runtime_status == (
            df.RuntimeStatus.TERMINATED
        )
    # Purging among unfinished statuses only matches nothing.
    assert http.post(f"{API}/bulk/purge", json={"status": ["Running"]}).json()["count"] == 0


def test_entities_are_listed_with_their_state_and_signalled(runtime: df.Runtime) -> None:
    http = host(runtime)
    assert http.get(f"{API}/entities").json() == {"entities": [], "continuationToken": None}
    assert http.get(f"{API}/info").json()["entities"] == ["counter"]
    for key, amount in (("tokyo", 3), ("tokyo", 4), ("lima", 1)):
        signal = {"name": "Counter", "key": key, "operation": "add", "input": amount}
        answer = http.post(f"{API}/entities/signal", json=signal)
        assert answer.status_code == 202 and answer.json()["instanceId"] == f"@counter@{key}"

    def states() -> dict[str, Any]:
        listed = http.get(f"{API}/entities?name=counter").json()["entities"]
        return {e["key"]: e["state"] for e in listed}

    deadline = time.monotonic() + 4
    while states() != {"tokyo": 7, "lima": 1} and time.monotonic() < deadline:
        time.sleep(0.02)
    assert states() == {"tokyo": 7, "lima": 1}
    (lima,) = [e for e in http.get(f"{API}/entities").json()["entities"] if e["key"] == "lima"]
    assert lima["name"] == "counter" and lima["exists"] and lima["lockedBy"] is None
    # Entities are not orchestration instances: the list and the counts leave them out.
    assert http.get(f"{API}/counts").json()["total"] == 0
    bad = {"name": "counter", "key": "x"}
    assert http.post(f"{API}/entities/signal", json=bad).status_code == 400
    unknown = {"name": "nothing", "key": "x", "operation": "add"}
    assert http.post(f"{API}/entities/signal", json=unknown).status_code == 400


def test_bad_queries_are_400(runtime: df.Runtime) -> None:
    http = host(runtime)
    assert http.get(f"{API}/instances?status=Sleeping").status_code == 400
    assert http.get(f"{API}/instances", params={"from": "yesterday"}).status_code == 400
    assert http.get(f"{API}/instances?top=0").status_code == 400
    assert http.get(f"{API}/instances?token=garbage").status_code == 400
    assert http.get("/dashboard/static/../routes.py").status_code == 404
    assert http.get("/dashboard/static/secret.txt").status_code == 404


def test_page_and_assets_are_served_with_a_strict_policy(runtime: df.Runtime) -> None:
    http = host(runtime)
    page = http.get("/")
    assert page.status_code == 200 and 'src="/dashboard/static/main.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = http.get("/dashboard/static/main.js")
    assert script.headers["content-type"].startswith("text/javascript")
    info = http.get(f"{API}/info").json()
    assert info["readOnly"] is False and "greet" in info["orchestrators"]


def test_keys_guard_every_route_and_the_cookie_carries_the_key(runtime: df.Runtime) -> None:
    keys = HostKeys.generate()
    http = host(runtime, keys)
    for path in ("/", "/dashboard/static/main.js", f"{API}/info", f"{API}/instances"):
        assert http.get(path).status_code == 401, path
    assert http.post(f"{API}/orchestrators/greet", json={}).status_code == 401
    assert http.get(f"{API}/info?code={keys.default}").status_code == 401  # function key
    assert http.get(f"{API}/info", headers={"x-functions-key": keys.master}).status_code == 200

    page = http.get(f"/?code={keys.durabletask}")
    assert page.status_code == 200
    cookie = page.headers["set-cookie"]
    assert KEY_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    # The browser sends the cookie from now on; TestClient keeps it like one.
    assert http.get(f"{API}/instances").status_code == 200
    http.cookies.clear()
    http.cookies.set(KEY_COOKIE, "wrong")
    assert http.get(f"{API}/instances").status_code == 401


def test_read_only_refuses_every_action_with_403(runtime: df.Runtime) -> None:
    runtime.client.start_new(sleeper, instance_id="ro-1")
    _wait_status(runtime, "ro-1", "Running")
    asgi = create_dashboard_app(runtime.client.async_client, keys=None, read_only=True)
    http = TestClient(asgi)
    assert http.get(f"{API}/info").json()["readOnly"] is True
    assert http.get(f"{API}/instances").status_code == 200
    actions = [
        "/orchestrators/greet",
        "/instances/ro-1/raise-event",
        "/instances/ro-1/terminate",
        "/instances/ro-1/suspend",
        "/instances/ro-1/resume",
        "/instances/ro-1/purge",
        "/bulk/terminate",
        "/bulk/purge",
        "/entities/signal",
    ]
    for path in actions:
        response = http.post(API + path, json={"name": "approval", "dryRun": True})
        assert response.status_code == 403, path
        assert response.json()["error"] == "Forbidden"
    still = runtime.client.get_status("ro-1")
    assert still is not None and still.runtime_status is df.RuntimeStatus.RUNNING


def _wait_status(rt: df.Runtime, instance_id: str, status: str) -> None:
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        current = rt.client.get_status(instance_id)
        if current is not None and current.runtime_status.value == status:
            return
        time.sleep(0.01)
    pytest.fail(f"{instance_id} never reached {status}")
