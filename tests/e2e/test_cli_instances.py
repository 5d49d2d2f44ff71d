"""``durafn instances ...`` and ``durafn keys``, run as real processes against a SQLite file.

The worker runs in this process (``df.Runtime`` over the test module's app); the CLI opens the
same store from its own process, with no app loaded, as an operator would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import durafn as df

app = df.App()


@app.activity
def greet(name: str) -> str:
    return f"Hello {name}!"


@app.orchestrator
def hello(ctx: df.OrchestrationContext) -> Any:
    ctx.set_custom_status({"stage": "greeting"})
    greeting = yield ctx.call_activity(greet, ctx.get_input())
    return greeting


@app.orchestrator
def approval(ctx: df.OrchestrationContext) -> Any:
    ctx.set_custom_status("waiting for approval")
    answer = yield ctx.wait_for_external_event("approval")
    return {"request": ctx.get_input(), "answer": answer}


@app.activity
def explode(what: str) -> None:
    raise ValueError(f"boom: {what}")


@app.orchestrator
def failing(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity(explode, ctx.get_input())


WAIT = "30"
COMMANDS = ["list", "show", "start", "raise", "terminate", "suspend", "resume", "purge", "wait"]


def durafn(
    *args: str,
    store: str | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m durafn ARGS`` (with ``--store`` when given) and return what it did."""
    store_args = ["--store", store] if store is not None else []
    return subprocess.run(
        [sys.executable, "-m", "durafn", *args, *store_args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def ok(*args: str, store: str | None = None, stdin: str | None = None) -> str:
    result = durafn(*args, store=store, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(*args: str, store: str) -> Any:
    return json.loads(ok(*args, "--json", store=store))


def fails(code: int, message: str, *args: str, store: str | None = None) -> str:
    """Run a command that must fail with ``code`` and an error line containing ``message``."""
    result = durafn(*args, store=store)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return result.stderr


def client_error(code: int, message: str, *args: str, store: str) -> None:
    """A refused client call: exactly one ``Error: ...`` line on stderr."""
    stderr = fails(code, message, *args, store=store)
    errors = [line for line in stderr.splitlines() if not line.startswith("Waiting for")]
    assert len(errors) == 1 and errors[0].startswith("Error: "), stderr


def status_of(instance_id: str, store: str) -> str:
    document = as_json("instances", "show", instance_id, store=store)
    return str(document["runtimeStatus"])


@pytest.fixture
def runtime(store_url: str) -> Iterator[df.Runtime]:
    with df.Runtime(app, store=store_url) as rt:
        yield rt


# ------------------------------------------------------------------------------ help, version


def test_version_and_help_of_every_command() -> None:
    assert "0.1.0" in ok("--version")
    top = ok("--help")
    assert "instances" in top and "keys" in top
    group = ok("instances", "--help")
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", group, re.MULTILINE), command
        text = ok("instances", command, "--help")
        assert "--store" in text and "--json" in text, command
    assert "--continuation" in ok("instances", "list", "--help")
    assert "--yes" in ok("instances", "purge", "--help")
    assert "DURAFN_KEYS_FILE" in ok("keys", "--help")


# ------------------------------------------------------------------------------ start, wait


def test_start_runs_an_instance_and_wait_prints_its_final_status(
    runtime: df.Runtime, store_url: str
) -> None:
    assert (
        ok("instances", "start", "hello", "--input", '"Tokyo"', "--id", "greet-1", store=store_url)
        == "greet-1\n"
    )
    result = durafn("instances", "wait", "greet-1", "--timeout", WAIT, store=store_url)
    assert result.returncode == 0, result.stderr
    assert "Completed" in result.stdout and "Hello Tokyo!" in result.stdout
    final = as_json("instances", "wait", "greet-1", store=store_url)
    assert final["instanceId"] == "greet-1"
    assert final["runtimeStatus"] == "Completed"
    assert final["output"] == "Hello Tokyo!"
    assert final["input"] == "Tokyo"
    assert final["customStatus"] == {"stage": "greeting"}


def test_start_without_an_id_makes_one_and_json_names_it(store_url: str) -> None:
    started = as_json(
        "instances", "start", "hello", "--input", '{"city": "Paris", "n": [1, 2]}', store=store_url
    )
    assert re.fullmatch(r"[0-9a-f]{32}", started["instanceId"])
    shown = as_json("instances", "show", started["instanceId"], store=store_url)
    assert shown["name"] == "hello"
    assert shown["input"] == {"city": "Paris", "n": [1, 2]}
    assert shown["runtimeStatus"] == "Pending"  # no worker: it waits in the store


def test_start_with_malformed_input_is_a_usage_error_and_creates_nothing(store_url: str) -> None:
    fails(2, "is not valid JSON", "instances", "start", "hello", "--input", "{a", store=store_url)
    fails(
        2,
        "a string needs JSON quotes",
        "instances",
        "start",
        "hello",
        "--input",
        "Tokyo",
        store=store_url,
    )
    assert as_json("instances", "list", store=store_url)["instances"] == []


def test_start_at_schedules_the_start(runtime: df.Runtime, store_url: str) -> None:
    ok(
        "instances",
        "start",
        "hello",
        "--id",
        "later",
        "--start-at",
        "2999-01-02T03:04:05Z",
        store=store_url,
    )
    shown = ok("instances", "show", "later", store=store_url)
    assert "scheduled start" in shown and "2999-01-02 03:04:05" in shown
    fails(
        2,
        "is not an ISO 8601 time",
        "instances",
        "start",
        "hello",
        "--start-at",
        "tomorrow",
        store=store_url,
    )


def test_start_refuses_a_busy_id_and_a_malformed_id(store_url: str) -> None:
    ok("instances", "start", "approval", "--id", "busy", store=store_url)
    client_error(
        1,
        "already exists and is Pending",
        "instances",
        "start",
        "approval",
        "--id",
        "busy",
        store=store_url,
    )
    client_error(
        2, "is malformed", "instances", "start", "approval", "--id", "a/b", store=store_url
    )
    client_error(2, "must not be empty", "instances", "start", "", store=store_url)


def test_wait_exit_codes(runtime: df.Runtime, store_url: str) -> None:
    ok("instances", "start", "failing", "--id", "bad", "--input", '"x"', store=store_url)
    failed = durafn("instances", "wait", "bad", "--timeout", WAIT, store=store_url)
    assert failed.returncode == 1
    assert "Failed" in failed.stdout and "boom: x" in failed.stdout

    ok("instances", "start", "approval", "--id", "stuck", store=store_url)
    client_error(124, "is still", "instances", "wait", "stuck", "--timeout", "0.3", store=store_url)

    ok("instances", "terminate", "stuck", "--reason", "enough", store=store_url)
    terminated = durafn("instances", "wait", "stuck", "--timeout", WAIT, "--json", store=store_url)
    assert terminated.returncode == 1
    assert json.loads(terminated.stdout)["runtimeStatus"] == "Terminated"

    client_error(1, "no instance with id 'ghost'", "instances", "wait", "ghost", store=store_url)
    fails(2, "--timeout", "instances", "wait", "stuck", "--timeout", "-1", store=store_url)


def test_wait_interrupted_with_ctrl_c(store_url: str) -> None:
    ok("instances", "start", "approval", "--id", "pending", store=store_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "durafn", "instances", "wait", "pending", "--store", store_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        assert process.stderr.readline().startswith("Waiting for instance 'pending'")
        # Ctrl-C while the command waits (not while it is still starting up).
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert stdout == "" and stderr == "Error: interrupted (Ctrl-C)\n"


# ------------------------------------------------------------------------------ list


def test_list_filters_and_shows_a_table(
    runtime: df.Runtime, store_url: str, wait_until: Callable[..., Any]
) -> None:
    ok("instances", "start", "hello", "--id", "order-1", "--input", '"A"', store=store_url)
    ok("instances", "wait", "order-1", "--timeout", WAIT, store=store_url)
    ok("instances", "start", "failing", "--id", "order-2", "--input", '"B"', store=store_url)
    durafn("instances", "wait", "order-2", "--timeout", WAIT, store=store_url)
    ok("instances", "start", "approval", "--id", "ticket-1", store=store_url)
    wait_until(lambda: status_of("ticket-1", store_url) == "Running", what="ticket-1 running")

    listed = as_json("instances", "list", store=store_url)
    assert [i["instanceId"] for i in listed["instances"]] == ["ticket-1", "order-2", "order-1"]
    assert listed["continuationToken"] is None
    assert listed["instances"][0]["customStatus"] == "waiting for approval"
    assert listed["instances"][2]["input"] == "A"  # inputs are in, as the management API has them
    without_input = as_json("instances", "list", "--no-input", store=store_url)
    assert [i["input"] for i in without_input["instances"]] == [None, None, None]

    def ids(*filters: str) -> list[str]:
        return [
            i["instanceId"]
            for i in as_json("instances", "list", *filters, store=store_url)["instances"]
        ]

    assert ids("--status", "Completed") == ["order-1"]
    assert ids("--status", "completed", "--status", "FAILED") == ["order-2", "order-1"]
    assert ids("--name", "approval") == ["ticket-1"]
    assert ids("--prefix", "order-") == ["order-2", "order-1"]
    assert ids("--from", "2999-01-01") == []
    assert ids("--to", "2000-01-01T00:00:00+00:00") == []
    assert ids("--from", "2000-01-01", "--to", "2999-01-01", "--name", "hello") == ["order-1"]
    fails(2, "'Done' is not one of", "instances", "list", "--status", "Done", store=store_url)
    fails(2, "is not an ISO 8601 time", "instances", "list", "--from", "yesterday", store=store_url)

    table = ok("instances", "list", store=store_url)
    header = table.splitlines()[0]
    for column in (
        "instance id",
        "name",
        "status",
        "created (UTC)",
        "last updated (UTC)",
        "duration",
        "custom status",
    ):
        assert column in header
    rows = {line.split()[0]: line for line in table.splitlines()[2:] if line.strip()}
    assert list(rows) == ["ticket-1", "order-2", "order-1"]
    assert "Running" in rows["ticket-1"] and "waiting for approval" in rows["ticket-1"]
    assert "Failed" in rows["order-2"]
    assert "Completed" in rows["order-1"] and '{"stage":"greeting"}' in rows["order-1"]
    assert re.search(r"\d+\.\d\ds\s", rows["order-1"])  # a finished instance has a duration
    assert not re.search(r"\d+\.\d\ds\s", rows["ticket-1"])

    empty = durafn("instances", "list", "--name", "nothing", store=store_url)
    assert empty.returncode == 0 and empty.stdout == "" and "No instances match" in empty.stderr


def test_list_pages_with_top_and_continuation(store_url: str) -> None:
    for n in range(5):
        ok("instances", "start", "approval", "--id", f"page-{n}", store=store_url)
    newest_first = [f"page-{n}" for n in reversed(range(5))]

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        extra = ["--continuation", token] if token else []
        page = as_json("instances", "list", "--top", "2", *extra, store=store_url)
        seen += [i["instanceId"] for i in page["instances"]]
        token = page["continuationToken"]
        pages += 1
        if token is None:
            break
    assert seen == newest_first and pages == 3

    first = durafn("instances", "list", "--top", "2", store=store_url)
    assert first.returncode == 0
    assert "page-4" in first.stdout and "page-2" not in first.stdout
    hint = re.search(r"--continuation (\S+)", first.stderr)
    assert hint is not None
    second = ok("instances", "list", "--top", "2", "--continuation", hint[1], store=store_url)
    assert "page-2" in second and "page-4" not in second

    everything = as_json("instances", "list", "--top", "2", "--all", store=store_url)
    assert [i["instanceId"] for i in everything["instances"]] == newest_first
    assert everything["continuationToken"] is None
    table = durafn("instances", "list", "--top", "2", "--all", store=store_url)
    assert all(i in table.stdout for i in newest_first) and "--continuation" not in table.stderr

    client_error(
        2,
        "malformed continuation token",
        "instances",
        "list",
        "--continuation",
        "nope",
        store=store_url,
    )
    fails(2, "--top", "instances", "list", "--top", "0", store=store_url)


# ------------------------------------------------------------------------------ show


def test_show_a_running_instance_with_and_without_input_and_history(
    runtime: df.Runtime, store_url: str, wait_until: Callable[..., Any]
) -> None:
    ok(
        "instances",
        "start",
        "approval",
        "--id",
        "req-1",
        "--input",
        '{"amount": 120}',
        store=store_url,
    )
    wait_until(lambda: status_of("req-1", store_url) == "Running", what="req-1 running")

    panel = ok("instances", "show", "req-1", store=store_url)
    assert "instance req-1" in panel and "approval" in panel and "Running" in panel
    assert '"amount": 120' in panel and "waiting for approval" in panel

    hidden = ok("instances", "show", "req-1", "--no-input", store=store_url)
    assert "amount" not in hidden
    assert as_json("instances", "show", "req-1", "--no-input", store=store_url)["input"] is None

    document = as_json("instances", "show", "req-1", store=store_url)
    assert document["input"] == {"amount": 120} and "historyEvents" not in document

    ok("instances", "raise", "req-1", "approval", "--data", '{"by": "alice"}', store=store_url)
    ok("instances", "wait", "req-1", "--timeout", WAIT, store=store_url)
    with_history = as_json("instances", "show", "req-1", "--history", store=store_url)
    kinds = [e["EventType"] for e in with_history["historyEvents"]]
    assert kinds == ["ExecutionStarted", "EventRaised", "ExecutionCompleted"]
    assert with_history["historyEvents"][1]["Name"] == "approval"
    assert with_history["historyEvents"][1]["Input"] == {"by": "alice"}

    hidden_history = as_json(
        "instances", "show", "req-1", "--history", "--no-input", store=store_url
    )
    assert hidden_history["input"] is None
    assert all("Input" not in e for e in hidden_history["historyEvents"])
    assert hidden_history["historyEvents"][-1]["Result"] == {
        "request": {"amount": 120},
        "answer": {"by": "alice"},
    }

    text = ok("instances", "show", "req-1", "--history", store=store_url)
    assert "history" in text
    for kind in kinds:
        assert kind in text
    assert '{"by":"alice"}' in text


def test_show_a_failed_instance_with_its_stack_trace(runtime: df.Runtime, store_url: str) -> None:
    ok("instances", "start", "failing", "--id", "broken", "--input", '"the disk"', store=store_url)
    durafn("instances", "wait", "broken", "--timeout", WAIT, store=store_url)
    panel = ok("instances", "show", "broken", "--history", store=store_url)
    assert "Failed" in panel and "failure" in panel
    assert "boom: the disk" in panel
    assert "caused by" in panel and "ValueError" in panel and "Traceback" in panel
    assert "TaskFailed" in panel and "explode" in panel
    document = as_json("instances", "show", "broken", store=store_url)
    assert document["runtimeStatus"] == "Failed"
    assert "boom: the disk" in document["failureDetails"]["errorMessage"]
    assert document["failureDetails"]["stackTrace"]


def test_show_an_unknown_instance(store_url: str) -> None:
    client_error(1, "no instance with id 'ghost'", "instances", "show", "ghost", store=store_url)
    client_error(
        1, "no instance with id 'ghost'", "instances", "show", "ghost", "--json", store=store_url
    )


# ------------------------------------------------------------------------------ steering


def test_raise_delivers_an_event(runtime: df.Runtime, store_url: str) -> None:
    ok("instances", "start", "approval", "--id", "exp-1", "--input", '"laptop"', store=store_url)
    sent = as_json(
        "instances", "raise", "exp-1", "approval", "--data", '{"approved": true}', store=store_url
    )
    assert sent == {"instanceId": "exp-1", "action": "raiseEvent", "eventName": "approval"}
    final = as_json("instances", "wait", "exp-1", "--timeout", WAIT, store=store_url)
    assert final["output"] == {"request": "laptop", "answer": {"approved": True}}

    client_error(
        1,
        "has already finished (Completed)",
        "instances",
        "raise",
        "exp-1",
        "approval",
        store=store_url,
    )
    client_error(
        1, "no instance with id 'ghost'", "instances", "raise", "ghost", "approval", store=store_url
    )
    fails(
        2,
        "is not valid JSON",
        "instances",
        "raise",
        "exp-1",
        "approval",
        "--data",
        "{",
        store=store_url,
    )


def test_raise_without_data_and_human_output(runtime: df.Runtime, store_url: str) -> None:
    ok("instances", "start", "approval", "--id", "exp-2", store=store_url)
    result = durafn("instances", "raise", "exp-2", "approval", store=store_url)
    assert result.returncode == 0 and result.stdout == ""
    assert "Event 'approval' queued for instance 'exp-2'" in result.stderr
    final = as_json("instances", "wait", "exp-2", "--timeout", WAIT, store=store_url)
    assert final["output"] == {"request": None, "answer": None}


def test_terminate_with_a_reason(
    runtime: df.Runtime, store_url: str, wait_until: Callable[..., Any]
) -> None:
    ok("instances", "start", "approval", "--id", "t-1", store=store_url)
    sent = as_json("instances", "terminate", "t-1", "--reason", "changed my mind", store=store_url)
    assert sent == {"instanceId": "t-1", "action": "terminate", "reason": "changed my mind"}
    wait_until(lambda: status_of("t-1", store_url) == "Terminated", what="t-1 terminated")
    assert as_json("instances", "show", "t-1", store=store_url)["output"] == "changed my mind"
    client_error(
        1, "has already finished (Terminated)", "instances", "terminate", "t-1", store=store_url
    )
    client_error(
        1, "no instance with id 'ghost'", "instances", "terminate", "ghost", store=store_url
    )


def test_suspend_and_resume(
    runtime: df.Runtime, store_url: str, wait_until: Callable[..., Any]
) -> None:
    ok("instances", "start", "approval", "--id", "s-1", store=store_url)
    wait_until(lambda: status_of("s-1", store_url) == "Running", what="s-1 running")
    sent = as_json("instances", "suspend", "s-1", "--reason", "audit", store=store_url)
    assert sent == {"instanceId": "s-1", "action": "suspend", "reason": "audit"}
    wait_until(lambda: status_of("s-1", store_url) == "Suspended", what="s-1 suspended")

    ok("instances", "raise", "s-1", "approval", "--data", "1", store=store_url)
    client_error(
        124, "is still Suspended", "instances", "wait", "s-1", "--timeout", "0.5", store=store_url
    )

    assert as_json("instances", "resume", "s-1", store=store_url) == {
        "instanceId": "s-1",
        "action": "resume",
    }
    final = as_json("instances", "wait", "s-1", "--timeout", WAIT, store=store_url)
    assert final["runtimeStatus"] == "Completed" and final["output"]["answer"] == 1
    history = as_json("instances", "show", "s-1", "--history", store=store_url)["historyEvents"]
    suspended = [e for e in history if e["EventType"] == "ExecutionSuspended"]
    assert suspended and suspended[0]["Reason"] == "audit"

    client_error(1, "has already finished", "instances", "suspend", "s-1", store=store_url)
    client_error(
        1, "has already finished", "instances", "resume", "s-1", "--reason", "x", store=store_url
    )
    client_error(1, "no instance with id 'ghost'", "instances", "suspend", "ghost", store=store_url)


# ------------------------------------------------------------------------------ purge


def finish(store_url: str, *ids: str, orchestrator: str = "hello") -> None:
    for instance_id in ids:
        ok(
            "instances",
            "start",
            orchestrator,
            "--id",
            instance_id,
            "--input",
            '"x"',
            store=store_url,
        )
    for instance_id in ids:
        durafn("instances", "wait", instance_id, "--timeout", WAIT, store=store_url)


def remaining(store_url: str) -> list[str]:
    return sorted(
        i["instanceId"] for i in as_json("instances", "list", "--all", store=store_url)["instances"]
    )


def test_purge_one_instance(runtime: df.Runtime, store_url: str) -> None:
    finish(store_url, "done-1", "done-2")
    ok("instances", "start", "approval", "--id", "open-1", store=store_url)

    assert ok("instances", "purge", "done-1", store=store_url) == "1 instance(s) deleted\n"
    assert as_json("instances", "purge", "done-2", store=store_url) == {"instancesDeleted": 1}
    assert remaining(store_url) == ["open-1"]

    client_error(1, "no instance with id 'done-1'", "instances", "purge", "done-1", store=store_url)
    client_error(1, "terminate it first", "instances", "purge", "open-1", store=store_url)
    fails(2, "give an INSTANCE_ID, or at least one of", "instances", "purge", store=store_url)
    fails(2, "not both", "instances", "purge", "open-1", "--status", "Completed", store=store_url)


def test_bulk_purge_asks_first(runtime: df.Runtime, store_url: str) -> None:
    finish(store_url, "c-1", "c-2")
    finish(store_url, "f-1", orchestrator="failing")
    ok("instances", "start", "approval", "--id", "open-1", store=store_url)
    everything = ["c-1", "c-2", "f-1", "open-1"]

    refused = durafn("instances", "purge", "--status", "Completed", stdin="n\n", store=store_url)
    assert refused.returncode == 1
    assert "Delete 2 finished instance(s) and their history?" in refused.stderr
    assert "Aborted" in refused.stderr and refused.stdout == ""
    no_answer = durafn("instances", "purge", "--status", "Completed", store=store_url)
    assert no_answer.returncode == 1 and "Aborted" in no_answer.stderr
    assert remaining(store_url) == everything

    accepted = durafn("instances", "purge", "--status", "Completed", stdin="y\n", store=store_url)
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout == "2 instance(s) deleted\n"
    assert remaining(store_url) == ["f-1", "open-1"]

    ignored = durafn("instances", "purge", "--status", "Running", "--yes", store=store_url)
    assert ignored.returncode == 0 and ignored.stdout == "0 instance(s) deleted\n"
    assert "ignoring Running" in ignored.stderr

    nothing = as_json("instances", "purge", "--to", "2000-01-01", store=store_url)
    assert nothing == {"instancesDeleted": 0}
    assert as_json("instances", "purge", "--from", "2000-01-01", "--yes", store=store_url) == {
        "instancesDeleted": 1
    }
    assert remaining(store_url) == ["open-1"]


# ------------------------------------------------------------------------------ store, keys


def test_the_store_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"DURAFN_STORE": f"sqlite:///{tmp_path}/env.db"}
    started = durafn("instances", "start", "hello", "--id", "from-env", env=env)
    assert started.returncode == 0 and (tmp_path / "env.db").exists()
    listed = durafn("instances", "list", "--json", env=env)
    assert [i["instanceId"] for i in json.loads(listed.stdout)["instances"]] == ["from-env"]


def test_a_bad_store_url_is_one_error_line() -> None:
    client_error(1, "unsupported store URL", "instances", "list", store="redis://nowhere")


def test_keys_creates_then_shows_the_keys_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "secrets" / "keys.json"
    env = {"DURAFN_KEYS_FILE": str(keys_file)}
    first = durafn("keys", env=env)
    assert first.returncode == 0, first.stderr
    assert f"Created {keys_file}" in first.stderr
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    stored = json.loads(keys_file.read_text())
    for name in ("default", "durabletask", "master"):
        assert name in first.stdout and stored[name] in first.stdout

    second = durafn("keys", "--json", env=env)
    assert second.returncode == 0
    assert json.loads(second.stdout) == {"file": str(keys_file), "created": False, "keys": stored}
    assert "Keys from" in durafn("keys", env=env).stderr

    (tmp_path / "a-file").write_text("")
    unwritable = durafn("keys", env={"DURAFN_KEYS_FILE": str(tmp_path / "a-file" / "keys.json")})
    assert unwritable.returncode == 1 and "Traceback" not in unwritable.stderr
    assert unwritable.stderr.startswith("Error: cannot read or create the keys file")

    keys_file.write_text("not json")
    broken = durafn("keys", env=env)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert broken.stderr.startswith("Error: ") and str(keys_file) in broken.stderr
    assert broken.stderr.count("\n") == 1
