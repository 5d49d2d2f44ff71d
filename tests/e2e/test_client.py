"""Every client operation on a real SQLite file, with the real background worker.

Each test body is written once as a coroutine and runs twice: with the blocking ``Client`` of
``with df.Runtime(...)`` (its calls wrapped so the body can ``await`` them) and with the
``AsyncClient`` of ``async with df.Runtime(...)``, the worker then sharing the test's loop.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import durafn as df

app = df.App()

WAIT = 20.0


@app.activity
def double(n: int) -> int:
    return 2 * n


@app.orchestrator
def doubler(ctx: df.OrchestrationContext) -> Any:
    result = yield ctx.call_activity(double, ctx.get_input())
    ctx.set_custom_status({"doubled": ctx.get_input()})
    return result


@app.orchestrator
async def waiter(ctx: df.OrchestrationContext) -> Any:
    ctx.set_custom_status("waiting")
    value = await ctx.wait_for_external_event("go")
    return {"input": ctx.get_input(), "event": value}


@app.orchestrator
def started_at(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity(double, 1)
    return ctx.current_utc_datetime


@app.orchestrator
def failer(ctx: df.OrchestrationContext) -> Any:
    yield ctx.call_activity(double, 1)
    raise RuntimeError(f"failing on purpose: {ctx.get_input()}")


# ---------------------------------------------------------------------------------- harness

Body = Callable[[Any], Coroutine[Any, Any, None]]


class AwaitableClient:
    """The blocking ``Client`` behind ``await``-able methods, so one test body drives both.

    Each call still runs the blocking method (on the test's own loop, which has nothing else to
    do: the runtime's worker lives on its own thread in the blocking flavour).
    """

    def __init__(self, client: df.Client) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self.client, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


class Hub:
    """Runs a test body against a fresh SQLite task hub with the chosen client flavour."""

    def __init__(self, flavour: str, url: str) -> None:
        self.flavour = flavour
        self.url = url

    def run(self, body: Body, options: df.WorkerOptions | None = None) -> None:
        if self.flavour == "Client":
            with df.Runtime(app, store=self.url, options=options) as rt:
                assert isinstance(rt.client, df.Client)
                asyncio.run(body(AwaitableClient(rt.client)))
            return

        async def main() -> None:
            async with df.Runtime(app, store=self.url, options=options) as rt:
                assert isinstance(rt.async_client, df.AsyncClient)
                await body(rt.async_client)

        asyncio.run(main())


@pytest.fixture(params=["Client", "AsyncClient"])
def hub(request: pytest.FixtureRequest, store_url: str) -> Hub:
    return Hub(request.param, store_url)


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 10.0) -> Any:
    """Await ``check()`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def status_is(client: Any, instance_id: str, status: df.RuntimeStatus) -> Any:
    async def check() -> Any:
        current = await client.get_status(instance_id)
        return current if current and current.runtime_status is status else None

    return await eventually(check, f"{instance_id} to be {status.value}")


async def finish(client: Any, orchestrator: Any, input: Any = None, **kwargs: Any) -> Any:
    instance_id = await client.start_new(orchestrator, input, **kwargs)
    return await client.wait_for_completion(instance_id, timeout=WAIT)


async def ids_of(client: Any, **filters: Any) -> set[str]:
    page = await client.get_status_by(page_size=1000, **filters)
    assert page.continuation_token is None
    return {status.instance_id for status in page.instances}


# ---------------------------------------------------------------------------------- start_new


def test_start_new_generates_a_32_hex_id_or_takes_one(hub: Hub) -> None:
    async def body(client: Any) -> None:
        generated = await client.start_new("doubler", 1)
        explicit = await client.start_new("doubler", 2, instance_id="order-42")
        by_object = await client.start_new(doubler, 3)

        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        assert explicit == "order-42"
        assert re.fullmatch(r"[0-9a-f]{32}", by_object)
        assert len({generated, explicit, by_object}) == 3
        outputs = [
            (await client.wait_for_completion(i, timeout=WAIT)).output
            for i in (generated, explicit, by_object)
        ]
        assert outputs == [2, 4, 6]
        assert (await client.get_status(by_object)).name == "doubler"

    hub.run(body)


def test_start_at_keeps_the_instance_pending_until_then(hub: Hub) -> None:
    async def body(client: Any) -> None:
        start_at = datetime.now(UTC) + timedelta(seconds=1)
        instance_id = await client.start_new("started_at", start_at=start_at)

        pending = await client.get_status(instance_id)
        assert pending.runtime_status is df.RuntimeStatus.PENDING
        assert pending.scheduled_start_time == start_at

        done = await client.wait_for_completion(instance_id, timeout=WAIT)
        assert done.runtime_status is df.RuntimeStatus.COMPLETED
        assert done.output >= start_at  # its first step ran no earlier than asked

    hub.run(body)


def test_a_finished_instance_id_can_be_started_again(hub: Hub) -> None:
    async def body(client: Any) -> None:
        first = await finish(client, "doubler", 5, instance_id="again")
        assert first.output == 10

        assert await client.start_new("waiter", "second run", instance_id="again") == "again"
        await client.raise_event("again", "go", "x")
        second = await client.wait_for_completion("again", timeout=WAIT)

        assert second.name == "waiter"
        assert second.output == {"input": "second run", "event": "x"}
        assert second.created_time >= first.created_time
        history = (
            await client.get_status("again", show_history=True, show_history_output=True)
        ).history
        started = [e for e in history if e.kind == "ExecutionStarted"]
        assert [e.name for e in started] == ["waiter"]  # the old history is gone
        assert await ids_of(client) == {"again"}

    hub.run(body)


# ---------------------------------------------------------------------------------- get_status


def test_get_status_fields(hub: Hub) -> None:
    async def body(client: Any) -> None:
        before = datetime.now(UTC)
        done = await finish(client, "doubler", 21, instance_id="fields")
        failed = await finish(client, "failer", "x", instance_id="broken")

        assert await client.get_status("no-such-instance") is None
        status = await client.get_status("fields")
        assert status == done
        assert status.instance_id == "fields"
        assert status.name == "doubler"
        assert status.runtime_status is df.RuntimeStatus.COMPLETED
        assert status.runtime_status == "Completed"
        assert isinstance(status.runtime_status, str)
        assert status.input == 21
        assert status.output == 42
        assert status.custom_status == {"doubled": 21}
        assert status.failure_details is None
        assert status.parent_instance_id is None
        assert status.history is None
        assert before <= status.created_time <= status.last_updated_time <= datetime.now(UTC)
        assert status.created_time.tzinfo is not None

        hidden = await client.get_status("fields", show_input=False)
        assert hidden.input is None
        assert hidden.output == 42

        assert failed.runtime_status is df.RuntimeStatus.FAILED
        assert failed.output is None
        assert failed.failure_details.error_type == "RuntimeError"
        assert failed.failure_details.message == "failing on purpose: x"
        assert "in failer" in failed.failure_details.stack_trace

    hub.run(body)


def test_runtime_status_is_a_str_enum_of_the_durable_functions_values() -> None:
    assert {status.value for status in df.RuntimeStatus} == {
        "Pending",
        "Running",
        "Completed",
        "ContinuedAsNew",
        "Failed",
        "Canceled",
        "Terminated",
        "Suspended",
    }
    assert all(isinstance(status, str) and status == status.value for status in df.RuntimeStatus)
    assert df.RuntimeStatus("Completed") is df.RuntimeStatus.COMPLETED


def test_get_status_history_with_and_without_payloads(hub: Hub) -> None:
    async def body(client: Any) -> None:
        await finish(client, "doubler", 4, instance_id="hist")

        full = (
            await client.get_status("hist", show_history=True, show_history_output=True)
        ).history
        kinds = [event.kind for event in full]
        assert kinds[:2] == ["OrchestratorStarted", "ExecutionStarted"]
        assert kinds[-2:] == ["ExecutionCompleted", "OrchestratorCompleted"]
        assert {"TaskScheduled", "TaskCompleted", "OrchestratorCompleted"} <= set(kinds)
        by_kind = {event.kind: event for event in full}
        assert by_kind["ExecutionStarted"].input == "4"
        assert by_kind["TaskScheduled"].name == "double"
        assert by_kind["TaskScheduled"].input == "4"
        assert by_kind["TaskCompleted"].result == "8"
        assert by_kind["ExecutionCompleted"].result == "8"

        stripped = (await client.get_status("hist", show_history=True)).history
        assert [event.kind for event in stripped] == kinds
        by_kind = {event.kind: event for event in stripped}
        assert by_kind["ExecutionStarted"].input is None
        assert by_kind["ExecutionStarted"].name == "doubler"
        assert by_kind["TaskScheduled"].input is None
        assert by_kind["TaskScheduled"].name == "double"
        assert by_kind["TaskCompleted"].result is None
        assert by_kind["ExecutionCompleted"].result is None

        assert (await client.get_status("hist")).history is None

    hub.run(body)


# ---------------------------------------------------------------------------------- get_status_by


def test_get_status_by_each_filter(hub: Hub) -> None:
    async def body(client: Any) -> None:
        await finish(client, "doubler", 1, instance_id="alpha-done")
        await finish(client, "failer", 1, instance_id="alpha-failed")
        await asyncio.sleep(0.01)
        await client.start_new("waiter", instance_id="beta-waiting")
        await client.start_new("waiter", instance_id="beta-terminated")
        await client.terminate("beta-terminated", "stop")
        await status_is(client, "beta-waiting", df.RuntimeStatus.RUNNING)
        await status_is(client, "beta-terminated", df.RuntimeStatus.TERMINATED)
        everyone = {"alpha-done", "alpha-failed", "beta-waiting", "beta-terminated"}

        assert await ids_of(client) == everyone
        assert await ids_of(client, runtime_status=[df.RuntimeStatus.COMPLETED]) == {"alpha-done"}
        assert await ids_of(client, runtime_status=["Running"]) == {"beta-waiting"}
        assert await ids_of(client, runtime_status=[df.RuntimeStatus.FAILED, "Terminated"]) == {
            "alpha-failed",
            "beta-terminated",
        }
        assert await ids_of(client, runtime_status=["Suspended"]) == set()
        assert await ids_of(client, name="waiter") == {"beta-waiting", "beta-terminated"}
        assert await ids_of(client, name="nobody") == set()
        assert await ids_of(client, instance_id_prefix="alpha-") == {"alpha-done", "alpha-failed"}
        assert await ids_of(client, instance_id_prefix="beta-t") == {"beta-terminated"}

        created = {i: (await client.get_status(i)).created_time for i in everyone}
        last_alpha = max(created["alpha-done"], created["alpha-failed"])
        first_beta = min(created["beta-waiting"], created["beta-terminated"])
        assert last_alpha < first_beta
        assert await ids_of(client, created_time_to=last_alpha) == {"alpha-done", "alpha-failed"}
        assert await ids_of(client, created_time_from=first_beta) == {
            "beta-waiting",
            "beta-terminated",
        }
        assert await ids_of(
            client,
            created_time_from=created["alpha-failed"],
            created_time_to=created["alpha-failed"],
        ) == {"alpha-failed"}
        assert await ids_of(
            client,
            runtime_status=["Running", "Completed"],
            name="doubler",
            instance_id_prefix="alpha",
        ) == {"alpha-done"}

        page = await client.get_status_by(instance_id_prefix="alpha-done", show_input=True)
        assert page.instances[0].input == 1
        page = await client.get_status_by(instance_id_prefix="alpha-done")
        assert page.instances[0].input is None

    hub.run(body)


def test_get_status_by_pages_through_every_instance_once_newest_first(hub: Hub) -> None:
    async def body(client: Any) -> None:
        far_future = datetime.now(UTC) + timedelta(days=1)  # nothing runs: only the rows count
        created = [
            await client.start_new("doubler", n, instance_id=f"page-{n:02d}", start_at=far_future)
            for n in range(25)
        ]

        pages: list[Any] = []
        token = None
        while True:
            page = await client.get_status_by(page_size=10, continuation_token=token)
            pages.append(page)
            token = page.continuation_token
            if token is None:
                break

        assert [len(page.instances) for page in pages] == [10, 10, 5]
        seen = [status.instance_id for page in pages for status in page.instances]
        assert sorted(seen) == sorted(created)
        assert len(set(seen)) == 25
        times = [status.created_time for page in pages for status in page.instances]
        assert times == sorted(times, reverse=True)
        assert seen[0] == "page-24" and seen[-1] == "page-00"

    hub.run(body)


# ---------------------------------------------------------------------------------- waiting


def test_wait_for_completion(hub: Hub) -> None:
    async def body(client: Any) -> None:
        done = await finish(client, "doubler", 8)
        assert done.runtime_status is df.RuntimeStatus.COMPLETED
        assert done.output == 16

        waiting = await client.start_new("waiter")
        with pytest.raises(TimeoutError, match=waiting):
            await client.wait_for_completion(waiting, timeout=0.3)
        with pytest.raises(TimeoutError):
            await client.wait_for_completion(waiting, timeout=timedelta(milliseconds=200))
        with pytest.raises(df.InstanceNotFound, match="nobody-home"):
            await client.wait_for_completion("nobody-home", timeout=WAIT)

        # Already finished: returns at once, again and again.
        assert (await client.wait_for_completion(done.instance_id, timeout=WAIT)) == done

    hub.run(body)


# ---------------------------------------------------------------------------------- steering


def test_raise_event(hub: Hub) -> None:
    async def body(client: Any) -> None:
        instance_id = await client.start_new("waiter", "in")
        await status_is(client, instance_id, df.RuntimeStatus.RUNNING)

        assert await client.raise_event(instance_id, "go", {"n": [1, 2]}) is None

        status = await client.wait_for_completion(instance_id, timeout=WAIT)
        assert status.output == {"input": "in", "event": {"n": [1, 2]}}

    hub.run(body)


def test_terminate(hub: Hub) -> None:
    async def body(client: Any) -> None:
        instance_id = await client.start_new("waiter")
        await status_is(client, instance_id, df.RuntimeStatus.RUNNING)

        await client.terminate(instance_id, "no longer needed")

        status = await client.wait_for_completion(instance_id, timeout=WAIT)
        assert status.runtime_status is df.RuntimeStatus.TERMINATED
        assert status.output == "no longer needed"
        history = (await client.get_status(instance_id, show_history=True)).history
        assert "ExecutionTerminated" in [event.kind for event in history]

    hub.run(body)


def test_terminate_a_scheduled_or_suspended_instance(hub: Hub) -> None:
    async def body(client: Any) -> None:
        later = datetime.now(UTC) + timedelta(hours=1)
        scheduled = await client.start_new("waiter", start_at=later)
        await client.terminate(scheduled, "start cancelled")
        status = await client.wait_for_completion(scheduled, timeout=WAIT)
        assert status.runtime_status is df.RuntimeStatus.TERMINATED
        assert status.output == "start cancelled"

        suspended = await client.start_new("waiter")
        await status_is(client, suspended, df.RuntimeStatus.RUNNING)
        await client.suspend(suspended)
        await status_is(client, suspended, df.RuntimeStatus.SUSPENDED)
        await client.terminate(suspended, "stopped while suspended")
        status = await client.wait_for_completion(suspended, timeout=WAIT)
        assert status.runtime_status is df.RuntimeStatus.TERMINATED
        assert status.output == "stopped while suspended"

    hub.run(body)


@pytest.mark.parametrize("cache_size", [1000, 0], ids=["sticky-cache", "replay-every-episode"])
def test_suspend_and_resume_hold_events_until_resumed(hub: Hub, cache_size: int) -> None:
    async def body(client: Any) -> None:
        instance_id = await client.start_new("waiter", "held")
        await status_is(client, instance_id, df.RuntimeStatus.RUNNING)

        await client.suspend(instance_id, "maintenance")
        await status_is(client, instance_id, df.RuntimeStatus.SUSPENDED)
        await client.raise_event(instance_id, "go", "while suspended")

        async def event_in_history() -> Any:
            status = await client.get_status(instance_id, show_history=True)
            return status if "EventRaised" in [e.kind for e in status.history] else None

        # The worker has taken the event in, yet the orchestrator has not moved.
        suspended = await eventually(event_in_history, "the event in the history")
        assert suspended.runtime_status is df.RuntimeStatus.SUSPENDED
        assert suspended.output is None
        assert suspended.custom_status == "waiting"

        await client.resume(instance_id, "maintenance over")
        status = await client.wait_for_completion(instance_id, timeout=WAIT)

        assert status.runtime_status is df.RuntimeStatus.COMPLETED
        assert status.output == {"input": "held", "event": "while suspended"}
        kinds = [e.kind for e in (await client.get_status(instance_id, show_history=True)).history]
        assert kinds.index("ExecutionSuspended") < kinds.index("ExecutionResumed")
        assert kinds.index("ExecutionResumed") < kinds.index("ExecutionCompleted")

    hub.run(body, df.WorkerOptions(cache_size=cache_size))


# ---------------------------------------------------------------------------------- purging


def test_purge_instance_history(hub: Hub) -> None:
    async def body(client: Any) -> None:
        await finish(client, "doubler", 1, instance_id="purge-me")
        running = await client.start_new("waiter", instance_id="still-running")

        assert await client.purge_instance_history("purge-me") == 1
        assert await client.get_status("purge-me") is None
        assert await client.purge_instance_history("purge-me") == 0
        assert await client.purge_instance_history("never-existed") == 0

        with pytest.raises(df.InstanceStillRunning, match="still-running"):
            await client.purge_instance_history(running)
        assert (await client.get_status(running)).runtime_status in (
            df.RuntimeStatus.PENDING,
            df.RuntimeStatus.RUNNING,
        )
        await client.raise_event(running, "go", 1)
        assert (await client.wait_for_completion(running, timeout=WAIT)).output["event"] == 1

    hub.run(body)


def test_purge_instance_history_by_purges_only_finished_matches(hub: Hub) -> None:
    async def body(client: Any) -> None:
        await finish(client, "doubler", 1, instance_id="old-done")
        await finish(client, "failer", 1, instance_id="old-failed")
        await asyncio.sleep(0.01)
        await finish(client, "doubler", 2, instance_id="new-done")
        await client.start_new("waiter", instance_id="new-waiting")
        cutoff = (await client.get_status("old-failed")).created_time

        purged = await client.purge_instance_history_by(
            created_time_to=cutoff, runtime_status=[df.RuntimeStatus.COMPLETED]
        )
        assert purged == 1
        assert await ids_of(client) == {"old-failed", "new-done", "new-waiting"}

        # Running instances are never purged, even when the filter names their status.
        purged = await client.purge_instance_history_by(
            runtime_status=["Running", "Pending", "Failed"]
        )
        assert purged == 1
        assert await ids_of(client) == {"new-done", "new-waiting"}

        purged = await client.purge_instance_history_by(
            created_time_from=datetime.now(UTC) + timedelta(hours=1)
        )
        assert purged == 0

        assert await client.purge_instance_history_by() == 1
        assert await ids_of(client) == {"new-waiting"}

    hub.run(body)


# ---------------------------------------------------------------------------------- default store


def test_default_store_is_durafn_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DURAFN_STORE", raising=False)

    with df.Client() as client:
        client.start_new("doubler", 1, instance_id="in-default-store")
    assert (tmp_path / "durafn.db").is_file()

    with df.Runtime(app) as rt:
        status = rt.client.wait_for_completion("in-default-store", timeout=WAIT)
    assert status.output == 2

    async def read_async() -> Any:
        async with df.AsyncClient() as client:
            return await client.get_status("in-default-store")

    assert asyncio.run(read_async()).output == 2


def test_durafn_store_environment_variable_overrides_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "elsewhere" / "other.db"
    monkeypatch.setenv("DURAFN_STORE", f"sqlite:///{other}")

    with df.Runtime(app) as rt:
        status = rt.client.wait_for_completion(rt.client.start_new("doubler", 3), timeout=WAIT)
    assert status.output == 6
    assert other.is_file()
    assert not (tmp_path / "durafn.db").exists()

    with df.Client() as client:
        assert client.get_status(status.instance_id) == status
    with df.Client(f"sqlite:///{tmp_path}/durafn.db") as client:
        assert client.get_status(status.instance_id) is None
