"""Entities over HTTP: ``durafn start`` serving the entity app, through the management API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

APP = Path(__file__).parent / "apps" / "entity_app.py"
ENTITIES = "/runtime/webhooks/durabletask/entities"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def http(tmp_path: Path, wait_until: Callable[..., Any]) -> Iterator[httpx.Client]:
    port = _free_port()
    log = (tmp_path / "host.log").open("w")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "durafn", "start", str(APP), "--port", str(port)),
            *("--store", f"sqlite:///{tmp_path}/hub.db"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def answers() -> bool:
        assert process.poll() is None, (tmp_path / "host.log").read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    wait_until(answers, timeout=30, what="the host")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    log.close()


def test_signal_read_and_list_entities(http: httpx.Client, wait_until: Callable[..., Any]) -> None:
    assert http.get(f"{ENTITIES}/counter/a").status_code == 404
    for amount in (1, 2, 3):
        response = http.post(f"{ENTITIES}/Counter/a", params={"op": "add"}, json=amount)
        assert response.status_code == 202, response.text
    wait_until(lambda: http.get(f"{ENTITIES}/counter/a").status_code == 200)
    wait_until(lambda: http.get(f"{ENTITIES}/counter/a").json() == 6)
    http.post(f"{ENTITIES}/account/x", params={"op": "deposit"}, json=10)
    wait_until(lambda: http.get(f"{ENTITIES}/account/x").json() == {"balance": 10})

    listed = http.get(ENTITIES, params={"fetchState": "true"})
    assert listed.status_code == 200
    assert listed.headers["x-ms-continuation-token"] == ""
    by_name = {e["entityId"]["name"]: e for e in listed.json()}
    assert by_name["counter"]["entityId"] == {"name": "counter", "key": "a"}
    assert by_name["counter"]["state"] == 6
    assert by_name["account"]["state"] == {"balance": 10}
    assert by_name["counter"]["lastOperationTime"].endswith("Z")
    counters = http.get(f"{ENTITIES}/counter").json()
    assert [e["entityId"]["key"] for e in counters] == ["a"]
    assert "state" not in counters[0]  # fetchState defaults to false, as in Durable Functions
    # Entities are not instances.
    assert http.get("/runtime/webhooks/durabletask/instances").json() == []


def test_orchestrations_call_entities_started_over_http(
    http: httpx.Client, wait_until: Callable[..., Any]
) -> None:
    started = http.post("/runtime/webhooks/durabletask/orchestrators/add_many")
    assert started.status_code == 202
    status_url = started.json()["statusQueryGetUri"]
    wait_until(lambda: http.get(status_url).json()["runtimeStatus"] == "Completed", timeout=30)
    assert http.get(status_url).json()["output"] == 20
    assert http.get(f"{ENTITIES}/counter/shared").json() == 20


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "error"),
    [
        ("post", "nosuch/a", {"op": "add"}, 400, "FunctionNotFound"),
        ("post", "counter/a", {}, 400, "BadRequest"),
        ("post", "bad@name/a", {"op": "add"}, 400, "ValueError"),
        ("get", "counter/never", {}, 404, "EntityNotFound"),
        ("get", "", {"top": "0"}, 400, "BadRequest"),
    ],
)
def test_bad_entity_requests_get_clear_errors(
    http: httpx.Client, method: str, path: str, params: dict[str, str], status: int, error: str
) -> None:
    url = f"{ENTITIES}/{path}".rstrip("/")
    response = http.request(method.upper(), url, params=params, json=1)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
