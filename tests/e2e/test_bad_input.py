"""Bad input end to end: each gets a clear error, and nothing else in the task hub changes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import durafn as df
from durafn.core.codec import MAX_PAYLOAD_BYTES

app = df.App()

WAIT = 20.0


@app.activity
def double(n: int) -> int:
    return 2 * n


@app.activity
def returns_a_set(_: Any) -> Any:
    return {1, 2, 3}


@app.orchestrator
def waiter(ctx: df.OrchestrationContext) -> Any:
    value = yield ctx.wait_for_external_event("go")
    return {"input": ctx.get_input(), "event": value}


@app.orchestrator
def doubler(ctx: df.OrchestrationContext) -> Any:
    result = yield ctx.call_activity(double, ctx.get_input())
    return result


@app.orchestrator
def calls_unknown_activity(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity("no_such_activity", 1)


@app.orchestrator
def catches_unserializable_result(ctx: df.OrchestrationContext) -> Any:
    try:
        yield ctx.call_activity(returns_a_set, None)
    except df.TaskFailedError as exc:
        return {"error_type": exc.failure_details.error_type, "message": str(exc)}
    return "unreachable"


@app.orchestrator
def ignores_unserializable_result(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity(returns_a_set, None)


@app.orchestrator
def sends_unserializable_activity_input(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity(double, {1, 2})


@app.orchestrator
def returns_unserializable_output(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity(double, 1)
    return object()


@app.orchestrator
def sets_unserializable_custom_status(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity(double, 1)
    ctx.set_custom_status({"seen": {1, 2}})


@app.orchestrator
def starts_child_with_a_busy_id(ctx: df.OrchestrationContext) -> Any:
    try:
        yield ctx.call_sub_orchestrator(waiter, "child", instance_id=ctx.get_input())
    except df.TaskFailedError as exc:
        return {"error_type": exc.failure_details.error_type, "message": str(exc)}
    return "unreachable"


@app.orchestrator
def waits_for_a_malformed_event_name(ctx: df.OrchestrationContext) -> Any:
    yield ctx.wait_for_external_event("bad\nname")


# ---------------------------------------------------------------------------------- helpers


@pytest.fixture
def rt(store_url: str) -> Iterator[df.Runtime]:
    with df.Runtime(app, store=store_url) as runtime:
        yield runtime


@pytest.fixture
def client(rt: df.Runtime) -> df.Client:
    return rt.client


@dataclass(frozen=True)
class Row:
    instance_id: str
    runtime_status: df.RuntimeStatus
    input: Any
    output: Any
    custom_status: Any
    last_updated_time: datetime
    history_length: int


def snapshot(client: df.Client) -> list[Row]:
    """Everything observable about every instance of the task hub."""
    page = client.get_status_by(page_size=1000, show_input=True)
    assert page.continuation_token is None
    rows = []
    for status in page.instances:
        full = client.get_status(status.instance_id, show_history=True)
        assert full is not None and full.history is not None
        rows.append(
            Row(
                status.instance_id,
                status.runtime_status,
                repr(status.input),
                repr(status.output),
                repr(status.custom_status),
                status.last_updated_time,
                len(full.history),
            )
        )
    return rows


def running_instance(
    client: df.Client,
    wait_until: Callable[..., Any],
    instance_id: str = "busy",
    input: Any = "kept",
) -> str:
    """A ``waiter`` instance that is Running and idle (waiting for its "go" event)."""
    client.start_new("waiter", input, instance_id=instance_id)
    wait_until(
        lambda: (
            (s := client.get_status(instance_id)) is not None
            and s.runtime_status is df.RuntimeStatus.RUNNING
        ),
        what="a running instance",
    )
    return instance_id


def finished_instance(client: df.Client, instance_id: str = "done") -> str:
    client.start_new("doubler", 21, instance_id=instance_id)
    status = client.wait_for_completion(instance_id, timeout=WAIT)
    assert status.runtime_status is df.RuntimeStatus.COMPLETED
    return instance_id


def assert_completes_normally(client: df.Client, instance_id: str, input: Any) -> None:
    client.raise_event(instance_id, "go", "fine")
    status = client.wait_for_completion(instance_id, timeout=WAIT)
    assert status.runtime_status is df.RuntimeStatus.COMPLETED
    assert status.output == {"input": input, "event": "fine"}


class Opaque:
    """An object the codec does not know."""


# ---------------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({1, 2}, "set"),
        (Opaque(), "Opaque"),
        ({"ok": [1, b"raw"]}, "bytes"),
        ({1: "int key"}, "dict key 1"),
        (float("nan"), "NaN"),
    ],
    ids=["set", "object", "nested-bytes", "int-key", "nan"],
)
def test_unserializable_start_input_is_refused_before_anything_is_stored(
    client: df.Client, value: Any, named: str
) -> None:
    before = snapshot(client)

    with pytest.raises(TypeError, match=named) as raised:
        client.start_new("waiter", value, instance_id="never")
    assert "input of orchestrator 'waiter'" in str(raised.value)
    with pytest.raises(TypeError, match=named):
        client.start_new("waiter", value)

    assert snapshot(client) == before == []
    assert client.get_status("never") is None


def test_oversized_start_input_is_refused(client: df.Client) -> None:
    with pytest.raises(df.PayloadTooLarge, match="over the limit") as raised:
        client.start_new("waiter", "x" * MAX_PAYLOAD_BYTES, instance_id="huge")
    assert isinstance(raised.value, ValueError)
    assert snapshot(client) == []


@pytest.mark.parametrize("value", [{1, 2}, Opaque(), float("inf")], ids=["set", "object", "inf"])
def test_unserializable_event_data_is_refused_and_the_instance_is_untouched(
    client: df.Client, wait_until: Callable[..., Any], value: Any
) -> None:
    instance_id = running_instance(client, wait_until)
    before = snapshot(client)

    with pytest.raises(TypeError, match="data of event 'go'"):
        client.raise_event(instance_id, "go", value)

    assert snapshot(client) == before
    assert_completes_normally(client, instance_id, "kept")


# ---------------------------------------------------------------------------------- unknown names


def test_unknown_orchestrator_with_the_runtime_client_lists_the_registered_ones(
    client: df.Client,
) -> None:
    with pytest.raises(df.FunctionNotFound) as raised:
        client.start_new("no_such_orchestrator", 1, instance_id="ghost")

    message = str(raised.value)
    assert "'no_such_orchestrator'" in message
    for name in app.orchestrator_names:
        assert name in message
    assert raised.value.kind == "orchestrator"
    assert raised.value.name == "no_such_orchestrator"
    assert isinstance(raised.value, LookupError)

    def not_registered(ctx: df.OrchestrationContext) -> None:
        return None

    with pytest.raises(df.FunctionNotFound, match="not_registered"):
        client.start_new(not_registered)
    assert snapshot(client) == []


def test_unknown_orchestrator_through_a_client_without_app_fails_the_instance(
    rt: df.Runtime, store_url: str
) -> None:
    with df.Client(store_url) as plain:
        instance_id = plain.start_new("no_such_orchestrator", 1, instance_id="ghost")
        status = plain.wait_for_completion(instance_id, timeout=WAIT)

    assert status.runtime_status is df.RuntimeStatus.FAILED
    failure = status.failure_details
    assert failure is not None
    assert failure.error_type == "FunctionNotFound"
    assert "'no_such_orchestrator'" in failure.message
    for name in app.orchestrator_names:
        assert name in failure.message
    assert [s.instance_id for s in snapshot(rt.client)] == ["ghost"]


def test_unknown_activity_fails_the_instance_listing_the_registered_ones(client: df.Client) -> None:
    instance_id = client.start_new("calls_unknown_activity")
    status = client.wait_for_completion(instance_id, timeout=WAIT)

    assert status.runtime_status is df.RuntimeStatus.FAILED
    failure = status.failure_details
    assert failure is not None
    assert failure.error_type == "FunctionNotFound"
    assert "activity 'no_such_activity' is not registered" in failure.message
    assert "double" in failure.message and "returns_a_set" in failure.message
    assert "calls_unknown_activity" in (failure.stack_trace or "")


# ---------------------------------------------------------------------------------- malformed ids


MALFORMED_IDS = ["", "a/b", "x" * 300, "a\nb", " padded ", "q?x", "h#x", "back\\slash"]


@pytest.mark.parametrize(
    "bad_id",
    MALFORMED_IDS,
    ids=["empty", "slash", "too-long", "newline", "padded", "question", "hash", "backslash"],
)
def test_malformed_instance_ids_are_refused_by_every_method(
    client: df.Client, bad_id: str, wait_until: Callable[..., Any]
) -> None:
    running_instance(client, wait_until)
    before = snapshot(client)
    calls: dict[str, Callable[[], Any]] = {
        "start_new": lambda: client.start_new("waiter", 1, instance_id=bad_id),
        "get_status": lambda: client.get_status(bad_id),
        "raise_event": lambda: client.raise_event(bad_id, "go", 1),
        "terminate": lambda: client.terminate(bad_id, "why"),
        "suspend": lambda: client.suspend(bad_id),
        "resume": lambda: client.resume(bad_id),
        "purge_instance_history": lambda: client.purge_instance_history(bad_id),
    }
    for method, call in calls.items():
        with pytest.raises(ValueError, match="instance_id") as raised:
            call()
        assert repr(bad_id)[:40].strip("'") in str(raised.value), method

    assert snapshot(client) == before
    assert_completes_normally(client, "busy", "kept")


def test_longest_allowed_instance_id_works(client: df.Client) -> None:
    longest = "x" * 256
    client.start_new("doubler", 1, instance_id=longest)
    assert client.wait_for_completion(longest, timeout=WAIT).output == 2


@pytest.mark.parametrize(
    "bad_name",
    ["", "a\nb", "x" * 300, 42, None],
    ids=["empty", "newline", "too-long", "int", "none"],
)
def test_malformed_event_names_are_refused(
    client: df.Client, wait_until: Callable[..., Any], bad_name: Any
) -> None:
    instance_id = running_instance(client, wait_until)
    before = snapshot(client)

    with pytest.raises(ValueError, match="event name"):
        client.raise_event(instance_id, bad_name, 1)

    assert snapshot(client) == before
    assert_completes_normally(client, instance_id, "kept")


def test_malformed_event_name_inside_an_orchestrator_fails_the_instance(client: df.Client) -> None:
    instance_id = client.start_new("waits_for_a_malformed_event_name")
    status = client.wait_for_completion(instance_id, timeout=WAIT)

    assert status.runtime_status is df.RuntimeStatus.FAILED
    assert status.failure_details.error_type == "ValueError"
    assert "event name" in status.failure_details.message


# ---------------------------------------------------------------------------------- wrong instance


def test_event_to_an_unknown_instance(client: df.Client) -> None:
    with pytest.raises(df.InstanceNotFound, match="'nobody'") as raised:
        client.raise_event("nobody", "go", 1)
    assert raised.value.instance_id == "nobody"
    for steer in (client.terminate, client.suspend, client.resume):
        with pytest.raises(df.InstanceNotFound):
            steer("nobody")
    assert snapshot(client) == []


@pytest.mark.parametrize("action", ["raise_event", "terminate", "suspend", "resume"])
def test_messages_to_a_finished_instance_are_refused(client: df.Client, action: str) -> None:
    instance_id = finished_instance(client)
    before = snapshot(client)
    send: Callable[[], Any] = {
        "raise_event": lambda: client.raise_event(instance_id, "go", 1),
        "terminate": lambda: client.terminate(instance_id, "late"),
        "suspend": lambda: client.suspend(instance_id, "late"),
        "resume": lambda: client.resume(instance_id, "late"),
    }[action]

    with pytest.raises(df.InstanceNotRunning, match="already finished") as raised:
        send()

    assert raised.value.instance_id == instance_id
    assert raised.value.status == "Completed"
    assert snapshot(client) == before
    assert client.get_status(instance_id).output == 42


def test_double_start_of_a_running_id_leaves_the_instance_alone(
    client: df.Client, wait_until: Callable[..., Any]
) -> None:
    instance_id = running_instance(client, wait_until, "busy", {"first": True})
    before = snapshot(client)

    with pytest.raises(df.InstanceAlreadyExists, match="'busy'") as raised:
        client.start_new("waiter", {"second": True}, instance_id=instance_id)
    assert raised.value.status == "Running"
    with pytest.raises(df.InstanceAlreadyExists):
        client.start_new("doubler", 5, instance_id=instance_id)

    assert snapshot(client) == before
    assert client.get_status(instance_id).input == {"first": True}
    assert_completes_normally(client, instance_id, {"first": True})


def test_sub_orchestration_with_a_busy_instance_id_fails_its_task(
    client: df.Client, wait_until: Callable[..., Any]
) -> None:
    running_instance(client, wait_until, "busy", {"first": True})

    parent = client.start_new("starts_child_with_a_busy_id", "busy")
    status = client.wait_for_completion(parent, timeout=WAIT)

    assert status.runtime_status is df.RuntimeStatus.COMPLETED
    assert status.output["error_type"] == "InstanceAlreadyExists"
    assert "'busy' already exists and is Running" in status.output["message"]
    assert client.get_status("busy").input == {"first": True}
    assert client.get_status("busy").parent_instance_id is None
    assert_completes_normally(client, "busy", {"first": True})


# ---------------------------------------------------------------------------------- queries


@pytest.mark.parametrize(
    ("filters", "fragment"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"runtime_status": ["running"]}, "unknown runtime status"),
        ({"runtime_status": ["Done"]}, "unknown runtime status"),
        ({"continuation_token": "not-a-token"}, "continuation token"),
    ],
    ids=["page-size-0", "page-size-1001", "lowercase-status", "unknown-status", "bad-token"],
)
def test_malformed_queries_are_refused(
    client: df.Client, filters: dict[str, Any], fragment: str
) -> None:
    finished_instance(client)
    before = snapshot(client)

    with pytest.raises(ValueError, match=fragment):
        client.get_status_by(**filters)
    if "runtime_status" in filters:
        with pytest.raises(ValueError, match=fragment):
            client.purge_instance_history_by(runtime_status=filters["runtime_status"])

    assert snapshot(client) == before


def test_naive_datetimes_in_queries_are_read_as_utc(client: df.Client) -> None:
    finished_instance(client)
    naive_past = datetime(2000, 1, 1)
    assert [
        s.instance_id for s in client.get_status_by(created_time_from=naive_past).instances
    ] == ["done"]
    assert client.purge_instance_history_by(created_time_to=naive_past) == 0


# ------------------------------------------------------------------------------ bad values inside


def test_activity_returning_an_unserializable_value_is_a_task_failure(client: df.Client) -> None:
    caught = client.wait_for_completion(
        client.start_new("catches_unserializable_result"), timeout=WAIT
    )
    assert caught.runtime_status is df.RuntimeStatus.COMPLETED
    assert caught.output["error_type"] == "TypeError"
    assert "result of activity 'returns_a_set'" in caught.output["message"]
    assert "set" in caught.output["message"]

    failed = client.wait_for_completion(
        client.start_new("ignores_unserializable_result"), timeout=WAIT
    )
    assert failed.runtime_status is df.RuntimeStatus.FAILED
    assert failed.failure_details.error_type == "TaskFailedError"
    assert "result of activity 'returns_a_set' of type set" in failed.failure_details.message
    assert failed.failure_details.is_caused_by(TypeError)


@pytest.mark.parametrize(
    ("orchestrator", "fragment"),
    [
        ("sends_unserializable_activity_input", "input of activity 'double' of type set"),
        ("returns_unserializable_output", "orchestrator output of type object"),
        ("sets_unserializable_custom_status", "custom status['seen'] of type set"),
    ],
)
def test_unserializable_values_inside_an_orchestrator_fail_it_clearly(
    client: df.Client, orchestrator: str, fragment: str
) -> None:
    status = client.wait_for_completion(client.start_new(orchestrator), timeout=WAIT)

    assert status.runtime_status is df.RuntimeStatus.FAILED
    assert status.failure_details.error_type == "TypeError"
    assert fragment in status.failure_details.message
    assert "cannot cross the durable boundary" in status.failure_details.message


# ---------------------------------------------------------------------------------- bad stores


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://localhost/db", "unsupported store URL"),
        ("sqlite://somehost/hub.db", "has a host"),
        ("sqlite:///", "names no file"),
        ("sqlite:///hub.db?bogus=1", "unknown option"),
        ("sqlite:///hub.db?synchronous=sometimes", "synchronous"),
    ],
    ids=["scheme", "host", "no-file", "unknown-option", "bad-synchronous"],
)
def test_bad_store_urls_raise_store_error(
    url: str, fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(df.StoreError, match=fragment):
        df.AsyncClient(url)
    with pytest.raises(df.StoreError, match=fragment), df.Client(url):
        pass
    with pytest.raises(df.StoreError, match=fragment), df.Runtime(app, store=url):
        pass
    assert list(tmp_path.iterdir()) == []


async def _use(url: str) -> None:
    client = df.AsyncClient(url)
    try:
        await client.get_status("x")
    finally:
        await client.close()


def test_a_directory_as_the_store_file_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(df.StoreError, match="unable to open"):
        asyncio.run(_use(f"sqlite:///{tmp_path}"))


def test_a_file_that_is_not_a_database_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(df.StoreError, match="not a database"):
        asyncio.run(_use(f"sqlite:///{tmp_path}/notes.txt"))


def test_a_store_path_under_a_regular_file_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    with pytest.raises(df.StoreError):
        asyncio.run(_use(f"sqlite:///{tmp_path}/plain-file/hub.db"))


def test_closing_a_client_whose_store_never_opened_does_not_raise(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = df.AsyncClient(f"sqlite:///{tmp_path}")
        with pytest.raises(df.StoreError):
            await client.get_status("x")
        await client.close()

    asyncio.run(scenario())


def test_closing_an_unused_client_creates_no_file(tmp_path: Path) -> None:
    with df.Client(f"sqlite:///{tmp_path}/unused.db"):
        pass
    assert not (tmp_path / "unused.db").exists()


def _loop_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("durafn-")}


def test_a_client_with_a_bad_store_url_leaves_no_thread_behind() -> None:
    before = _loop_threads()
    with pytest.raises(df.StoreError):
        df.Client("mysql://localhost/db")
    assert _loop_threads() == before


def test_a_runtime_with_a_bad_store_url_leaves_no_thread_behind() -> None:
    before = _loop_threads()
    with pytest.raises(df.StoreError), df.Runtime(app, store="mysql://localhost/db"):
        pass
    assert _loop_threads() == before
