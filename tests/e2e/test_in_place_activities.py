"""Activities run in place: a worker holds an instance while it runs the instance's activities.

These run a real worker on a real SQLite file. They check what users see (outputs, histories,
terminations while held, a worker stopped mid-activity) and what the design promises: about one
commit per sequential step, and the same history as the queued path.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import durafn as df
from durafn.client.async_client import AsyncClient
from durafn.core.errors import StoreError
from durafn.core.status import RuntimeStatus
from durafn.store import open_store
from durafn.store.base import ActivityTask, InstanceQuery, OrchestrationWorkItem, Store
from durafn.store.sqlite import SqliteStore
from durafn.worker import held as held_module
from durafn.worker.held import HeldActivities
from durafn.worker.worker import Worker, WorkerOptions

app = df.App()
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
runs: Counter[str] = Counter()
gate = threading.Event()
entered = threading.Event()
exited = threading.Event()


@app.activity
def add_one(value: int) -> int:
    return value + 1


@app.activity
def blocked(value: str) -> str:
    runs["blocked"] += 1
    entered.set()
    gate.wait(10)
    exited.set()
    return value


@app.activity
async def cancels_itself(value: str) -> str:
    raise asyncio.CancelledError(value)


@app.activity
async def nap(value: str) -> str:
    await asyncio.sleep(0.2)
    return value


def _doubled_later(value: int) -> Any:
    async def later() -> int:
        await asyncio.sleep(0)
        return value * 2

    return later()


# A sync function that returns an awaitable: the worker awaits it on its event loop.
app.activity(name="doubled_later")(_doubled_later)


noted = threading.Event()


@app.activity
def noted_add_one(value: int) -> int:
    noted.set()
    return value + 1


# The inputs ``logged_add_one`` ran with, in order (from the activity threads).
ran: list[int] = []


@app.activity
def logged_add_one(value: int) -> int:
    ran.append(value)
    return value + 1


@app.orchestrator
def logged_chain(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    value = 0
    for _ in range(ctx.get_input()):
        value = yield ctx.call_activity("logged_add_one", value)
    return value


@app.activity
def refuses(value: int) -> int:
    raise ValueError(f"no {value}")


@app.orchestrator
def mixed(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    doubled = yield ctx.call_activity("doubled_later", 21)
    napped = yield ctx.call_activity("nap", "z")
    try:
        yield ctx.call_activity("refuses", 7)
    except df.TaskFailedError as error:
        refused = str(error)
    return [doubled, napped, refused]


@app.orchestrator
def chain(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    value = 0
    for _ in range(ctx.get_input()):
        value = yield ctx.call_activity("add_one", value)
    return value


twenty = threading.Event()


@app.activity
def add_one_noting_twenty(value: int) -> int:
    if value == 20:
        twenty.set()
    return value + 1


@app.activity
def slow_add_one_noting_twenty(value: int) -> int:
    """Longer than a commit: the commit that started it ends first."""
    time.sleep(0.01)
    return add_one_noting_twenty(value)


@app.orchestrator
def chain_of(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """A chain of ``steps`` calls of the activity ``name`` (its input: ``[name, steps]``)."""
    name, steps = ctx.get_input()
    value = 0
    for _ in range(steps):
        value = yield ctx.call_activity(name, value)
    return value


@app.orchestrator
def only_blocked(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity("blocked", "x"))


@app.orchestrator
def reports_progress(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    first = ctx.call_activity("add_one", 1)
    slow = ctx.call_activity("blocked", "x")
    yield first
    ctx.set_custom_status("1 of 2 done")
    return (yield slow)


@app.orchestrator
def takes_two_of_three(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    first = ctx.call_activity("add_one", 1)
    second = ctx.call_activity("nap", "z")
    ctx.call_activity("blocked", "x")  # never awaited: it still runs as the code ends
    return [(yield first), (yield second)]


@app.orchestrator
def survives_a_cancelled_activity(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    try:
        yield ctx.call_activity("cancels_itself", "from within")
    except df.TaskFailedError as error:
        return str(error)
    return "not failed"


@app.orchestrator
def blocked_then_chain(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    value = yield ctx.call_activity("blocked", "x")
    total = 0
    for _ in range(3):
        total = yield ctx.call_activity("add_one", total)
    return [value, total]


@app.orchestrator
def fan_out(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    width = ctx.get_input()
    values = yield ctx.task_all([ctx.call_activity("add_one", i) for i in range(width)])
    return sum(values)


@app.orchestrator
def first_done(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    winner = yield ctx.task_any([ctx.call_activity("nap", "slow"), ctx.call_activity("add_one", 1)])
    return winner.result


@app.orchestrator
def waits_on_blocked(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    value = yield ctx.call_activity("blocked", "x")
    more = yield ctx.call_activity("add_one", 1)
    return [value, more]


@app.orchestrator
def races_a_timer_while_one_runs(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    ctx.call_activity("blocked", "x")  # runs in place until the test lets it go
    first = yield ctx.call_activity("add_one", 1)
    # The code now waits on a timer too: the next activity is not run in place, while the
    # worker still holds the instance for ``blocked``.
    timer = ctx.create_timer(ctx.current_utc_datetime + timedelta(minutes=10))
    winner = yield ctx.task_any([ctx.call_activity("noted_add_one", first), timer])
    return winner.result


@asynccontextmanager
async def running(store: Store, **options: Any) -> AsyncIterator[tuple[Worker, AsyncClient]]:
    worker = Worker(app, store, options=WorkerOptions(**options))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    client = AsyncClient(store, app=app)
    try:
        yield worker, client
    finally:
        stop.set()
        await task


async def _run(store: SqliteStore, name: str, value: Any = None, **options: Any) -> Any:
    """Run one instance of ``name`` to completion; its output and how many activities ran in
    place."""
    async with running(store, **options) as (worker, client):
        instance_id = await client.start_new(name, value)
        status = await client.wait_for_completion(instance_id, timeout=60)
        assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure_details
    return status.output, worker.activities_in_place


def test_a_chain_commits_about_once_per_step(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        before = store.commits
        assert await _run(store, "chain", 50) == (50, 50)
        in_place = store.commits - before

        queued_store = SqliteStore(tmp_path / "queued.db")
        before = queued_store.commits
        assert await _run(queued_store, "chain", 50, in_place_activities=0) == (50, 0)
        queued = queued_store.commits - before
        print(f"commits for 50 steps: {in_place} in place, {queued} queued")
        # One checkpoint per step, plus the start and the client's own writes.
        assert in_place <= 50 + 8
        assert queued > in_place

        # Same history either way, event for event (times aside).
        [one] = (await store.query_instances(InstanceQuery())).instances
        [two] = (await queued_store.query_instances(InstanceQuery())).instances
        kinds = [e.kind for e in await store.get_history(one.instance_id)]
        assert kinds == [e.kind for e in await queued_store.get_history(two.instance_id)]
        await store.close()
        await queued_store.close()

    asyncio.run(scenario())


def test_awaitables_async_activities_and_failures_run_in_place_too(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        output, in_place = await _run(store, "mixed")
        assert output[:2] == [42, "z"]
        assert "no 7" in output[2]
        assert in_place == 3
        await store.close()

    asyncio.run(scenario())


def test_a_commit_hook_that_comes_after_the_episode_was_given_up_starts_nothing(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        runs.clear()
        store = SqliteStore(tmp_path / "hub.db")
        worker = Worker(app, store)
        item = OrchestrationWorkItem(
            instance_id="i",
            execution_id="e",
            name="waits_on_blocked",
            status=RuntimeStatus.RUNNING,
            lock_token="t",
            locked_until=FAR_FUTURE,
            messages=[],
            history_length=0,
        )
        held = HeldActivities(worker, item)
        hook = held.starter([ActivityTask(1, "blocked", '"x"')])
        assert hook is not None
        held.cancel()  # the episode was given up before its checkpoint's hook ran
        hook()
        held.start([ActivityTask(1, "blocked", '"x"')])
        await asyncio.sleep(0.1)
        assert runs["blocked"] == 0
        held.cancel()
        worker.close()
        await store.close()

    asyncio.run(scenario())


def test_a_worker_run_again_on_a_new_event_loop_still_hears_its_activities(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "hub.db")
    worker = Worker(app, store)

    async def one_run() -> int:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        client = AsyncClient(store, app=app)
        instance_id = await client.start_new("chain", 5)
        status = await client.wait_for_completion(instance_id, timeout=30)
        stop.set()
        await task
        assert status.runtime_status is RuntimeStatus.COMPLETED
        return int(status.output)

    assert asyncio.run(one_run()) == 5
    assert asyncio.run(one_run()) == 5
    assert worker.activities_in_place == 10

    async def close() -> None:
        await store.close()

    asyncio.run(close())


def test_a_fan_out_commits_its_results_together(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        before = store.commits
        assert await _run(store, "fan_out", 200) == (sum(range(1, 201)), 200)
        print(f"commits for a fan-out of 200: {store.commits - before}")
        assert store.commits - before <= 6
        await store.close()

    asyncio.run(scenario())


def test_a_fan_out_larger_than_the_limit_goes_through_the_queue(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        assert await _run(store, "fan_out", 30, in_place_activities=10) == (sum(range(1, 31)), 0)
        await store.close()

    asyncio.run(scenario())


async def _message_while_blocked(
    store: SqliteStore,
    name: str,
    send: Callable[[AsyncClient, str], Awaitable[None]],
) -> tuple[str, df.OrchestrationStatus]:
    """Start ``name``, whose first activity is ``blocked``; ``send`` it a message while that
    runs, then let it go on. Its id and final status."""
    gate.clear()
    entered.clear()
    async with running(store) as (_, client):
        instance_id = await client.start_new(name)
        assert await asyncio.to_thread(entered.wait, 10)
        await send(client, instance_id)
        gate.set()
        return instance_id, await client.wait_for_completion(instance_id, timeout=30)


def test_the_first_result_wins_without_waiting_for_the_others(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        assert await _run(store, "first_done") == (2, 1)
        await store.close()

    asyncio.run(scenario())


def test_a_held_instance_hears_a_termination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The inbox is read after every step here: the termination, sent while the first activity
    # runs, is read as soon as it ends. (Normally an inbox seen empty may wait a few
    # milliseconds before it is read again, and the instance could take one more step.)
    monkeypatch.setattr(held_module, "_INBOX_RECHECK", 0.0)

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        _, status = await _message_while_blocked(
            store, "waits_on_blocked", lambda client, i: client.terminate(i, "enough")
        )
        assert status.runtime_status is RuntimeStatus.TERMINATED
        assert await store.lock_next_activities("w", timedelta(seconds=30), FAR_FUTURE, 10) == []
        await store.close()

    asyncio.run(scenario())


def test_a_termination_takes_effect_while_a_long_activity_still_runs_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The held instance reads its inbox every ``_INBOX_POLL`` seconds while it waits: the
    termination ends it while ``blocked`` still runs, and that activity's result, when it
    comes, is dropped."""
    monkeypatch.setattr(held_module, "_INBOX_POLL", 0.1)

    async def scenario() -> None:
        gate.clear()
        entered.clear()
        exited.clear()
        store = SqliteStore(tmp_path / "hub.db")
        try:
            async with running(store) as (worker, client):
                instance_id = await client.start_new("waits_on_blocked")
                assert await asyncio.to_thread(entered.wait, 10)
                await client.terminate(instance_id, "enough")
                # Well before ``blocked`` could end by itself (10 s).
                status = await client.wait_for_completion(instance_id, timeout=3)
                assert status.runtime_status is RuntimeStatus.TERMINATED
                assert not exited.is_set()
                gate.set()
                assert await asyncio.to_thread(exited.wait, 10)
                await asyncio.sleep(0.2)  # its result reaches the worker, which drops it
                assert worker.activities_in_place == 0
                assert not worker.held_waiting
            status = await client.get_status(instance_id)
            assert status is not None
            assert status.runtime_status is RuntimeStatus.TERMINATED
            kinds = [e.kind for e in await store.get_history(instance_id)]
            assert "TaskCompleted" not in kinds
            assert await store.lock_next_activities("w", timedelta(seconds=30), FAR_FUTURE, 9) == []
        finally:
            gate.set()
            await store.close()

    asyncio.run(scenario())


def test_an_event_reaches_the_history_while_a_long_activity_still_runs_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(held_module, "_INBOX_POLL", 0.1)

    async def scenario() -> None:
        gate.clear()
        entered.clear()
        store = SqliteStore(tmp_path / "hub.db")
        try:
            async with running(store) as (_, client):
                instance_id = await client.start_new("blocked_then_chain")
                assert await asyncio.to_thread(entered.wait, 10)
                await client.raise_event(instance_id, "note", 1)
                for _ in range(100):
                    kinds = [e.kind for e in await store.get_history(instance_id)]
                    if "EventRaised" in kinds:
                        break
                    await asyncio.sleep(0.05)
                assert "EventRaised" in kinds
                assert not gate.is_set()
                gate.set()
                status = await client.wait_for_completion(instance_id, timeout=30)
            assert status.output == ["x", 3]
            assert await store.dropped_events(instance_id) == 0
        finally:
            gate.set()
            await store.close()

    asyncio.run(scenario())


class _FlakyInbox(SqliteStore):
    """Its first inbox read fails, as a store's passing fault would make it."""

    failed = False

    async def read_inbox(
        self, item: OrchestrationWorkItem, now: datetime, max_messages: int = 10_000
    ) -> Any:
        if not self.failed:
            self.failed = True
            raise StoreError("the server went away")
        return await super().read_inbox(item, now, max_messages)


def test_an_inbox_read_that_fails_while_an_activity_runs_in_place_keeps_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker keeps the instance and tries the read again later: letting it go would have
    the running activity run a second time elsewhere."""
    monkeypatch.setattr(held_module, "_INBOX_POLL", 0.05)

    async def scenario() -> None:
        gate.clear()
        entered.clear()
        runs.clear()
        store = _FlakyInbox(tmp_path / "hub.db")
        try:
            async with running(store) as (_, client):
                instance_id = await client.start_new("waits_on_blocked")
                assert await asyncio.to_thread(entered.wait, 10)
                for _ in range(100):
                    if store.failed:
                        break
                    await asyncio.sleep(0.02)
                assert store.failed
                await asyncio.sleep(0.3)  # more polls, which read
                gate.set()
                status = await client.wait_for_completion(instance_id, timeout=30)
            assert status.runtime_status is RuntimeStatus.COMPLETED
            assert status.output == ["x", 2]
            assert runs["blocked"] == 1
        finally:
            gate.set()
            await store.close()

    asyncio.run(scenario())


def test_results_taken_while_others_ran_stay_in_the_history_when_the_code_ends(
    tmp_path: Path,
) -> None:
    """The first result lets the code go on to await the second while a third activity runs:
    it is kept back to be committed with the next step, which here ends the instance."""

    async def scenario() -> None:
        gate.clear()
        store = SqliteStore(tmp_path / "hub.db")
        try:
            async with running(store) as (_, client):
                instance_id = await client.start_new("takes_two_of_three")
                status = await client.wait_for_completion(instance_id, timeout=30)
                gate.set()
            assert status.output == [2, "z"]
            history = await store.get_history(instance_id)
            completed = [e for e in history if e.kind == "TaskCompleted"]
            assert len(completed) == 2
            scheduled = [e for e in history if e.kind == "TaskScheduled"]
            assert len(scheduled) == 3
        finally:
            gate.set()
            await store.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("in_place", [1000, 0])
def test_an_async_activity_that_cancels_itself_fails(tmp_path: Path, in_place: int) -> None:
    """A ``CancelledError`` of the activity's own making is its failure, in place or queued;
    only the worker's own cancellation (it stops) leaves an activity to run again."""

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        output, _ = await _run(store, "survives_a_cancelled_activity", in_place_activities=in_place)
        assert "CancelledError" in output
        assert "from within" in output
        await store.close()

    asyncio.run(scenario())


def test_a_termination_read_with_the_last_result_wins_over_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent while the activity ran, the termination is read with its result: it applies
    first, as through the queue, where it arrived first; the result is dropped."""
    monkeypatch.setattr(held_module, "_INBOX_POLL", 3600.0)
    monkeypatch.setattr(held_module, "_INBOX_RECHECK", 0.0)

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        _, status = await _message_while_blocked(
            store, "only_blocked", lambda client, i: client.terminate(i, "enough")
        )
        assert status.runtime_status is RuntimeStatus.TERMINATED
        await store.close()

    asyncio.run(scenario())


def test_a_custom_status_set_while_an_activity_runs_in_place_is_seen_at_once(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        gate.clear()
        store = SqliteStore(tmp_path / "hub.db")
        try:
            async with running(store) as (_, client):
                instance_id = await client.start_new("reports_progress")
                for _ in range(100):
                    status = await client.get_status(instance_id)
                    if status is not None and status.custom_status == "1 of 2 done":
                        break
                    await asyncio.sleep(0.05)
                assert status is not None and status.custom_status == "1 of 2 done"
                assert not gate.is_set()
                gate.set()
                status = await client.wait_for_completion(instance_id, timeout=30)
            assert status.output == "x"
        finally:
            gate.set()
            await store.close()

    asyncio.run(scenario())


def test_a_stopping_worker_queues_new_activities_instead_of_running_them_in_place(
    tmp_path: Path,
) -> None:
    """While it finishes its work before stopping, a worker still takes a held instance's
    next steps, but hands their activities to the queue and lets the instance go."""

    async def scenario() -> None:
        gate.clear()
        entered.clear()
        runs.clear()
        store = SqliteStore(tmp_path / "hub.db")
        try:
            worker = Worker(app, store, options=WorkerOptions(shutdown_grace=30))
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop))
            client = AsyncClient(store, app=app)
            instance_id = await client.start_new("waits_on_blocked")
            assert await asyncio.to_thread(entered.wait, 10)
            stop.set()  # the worker waits for ``blocked``, then stops
            gate.set()
            await asyncio.wait_for(task, 30)
            assert worker.activities_in_place == 1  # ``blocked``; ``add_one`` was queued
            # Another worker takes it from there at once (no lease to wait out).
            async with running(store) as (other, client):
                status = await client.wait_for_completion(instance_id, timeout=10)
            assert status.output == ["x", 2]
            assert other.activities_run == 1 and other.activities_in_place == 0
        finally:
            gate.set()
            await store.close()

    asyncio.run(scenario())


def test_a_stopped_worker_lets_its_activities_run_elsewhere(tmp_path: Path) -> None:
    async def scenario() -> None:
        gate.clear()
        entered.clear()
        runs.clear()
        store = SqliteStore(tmp_path / "hub.db")
        async with running(store, shutdown_grace=0.2) as (_, client):
            instance_id = await client.start_new("waits_on_blocked")
            assert await asyncio.to_thread(entered.wait, 10)
        # The first worker gave the instance and its activity back when it stopped: a second
        # one runs the activity again at once, not when a lease expires.
        gate.set()
        async with running(store, lease=timedelta(minutes=10)) as (_, client):
            status = await client.wait_for_completion(instance_id, timeout=30)
        assert status.runtime_status is RuntimeStatus.COMPLETED
        assert status.output == ["x", 2]
        assert runs["blocked"] == 2
        await store.close()

    asyncio.run(scenario())


class _CountingStore(SqliteStore):
    """Counts the inbox reads of held instances."""

    reads = 0

    async def read_inbox(
        self, item: OrchestrationWorkItem, now: datetime, max_messages: int = 10_000
    ) -> Any:
        self.reads += 1
        return await super().read_inbox(item, now, max_messages)


def test_a_chain_whose_inbox_stays_empty_never_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a recheck by time, only what the checkpoints say about the inbox makes a read.
    monkeypatch.setattr(held_module, "_INBOX_RECHECK", 3600.0)

    async def scenario() -> None:
        store = _CountingStore(tmp_path / "hub.db")
        assert await _run(store, "chain", 30) == (30, 30)
        assert store.reads == 0
        await store.close()

    asyncio.run(scenario())


def test_a_message_that_arrives_while_held_is_read_after_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The event arrives while the instance is held, its inbox already seen empty: the next
    # checkpoint sees it waiting, and the step after reads it into the history.
    monkeypatch.setattr(held_module, "_INBOX_RECHECK", 3600.0)

    async def scenario() -> None:
        store = _CountingStore(tmp_path / "hub.db")
        instance_id, status = await _message_while_blocked(
            store, "blocked_then_chain", lambda client, i: client.raise_event(i, "note", 1)
        )
        assert status.runtime_status is RuntimeStatus.COMPLETED
        assert status.output == ["x", 3]
        history = await store.get_history(instance_id)
        assert [e.kind for e in history].count("EventRaised") == 1
        assert store.reads >= 1
        assert await store.dropped_events(instance_id) == 0
        await store.close()

    asyncio.run(scenario())


def test_an_activity_not_run_in_place_runs_at_once_while_the_instance_is_held(
    tmp_path: Path,
) -> None:
    """An episode while an activity runs in place schedules one the worker does not run in
    place (the code also waits on a timer): its task is free for any worker at once, not
    leased with the instance until the hold ends and that lease runs out."""

    async def scenario() -> None:
        gate.clear()
        noted.clear()
        store = SqliteStore(tmp_path / "hub.db")
        try:
            async with running(store, lease=timedelta(minutes=20)) as (_, client):
                instance_id = await client.start_new("races_a_timer_while_one_runs")
                # It runs while ``blocked`` still does (its result is heard once that ends).
                assert await asyncio.to_thread(noted.wait, 10)
                assert not gate.is_set()
                gate.set()
                status = await client.wait_for_completion(instance_id, timeout=30)
            assert status.runtime_status is RuntimeStatus.COMPLETED, status
            assert status.output == 3
        finally:
            gate.set()
            await store.close()

    asyncio.run(scenario())


async def _logged_chain(
    store: Store, steps: int, on_threads: bool, **options: Any
) -> tuple[Worker, str]:
    """Run ``logged_chain`` of ``steps`` to completion (``ran`` cleared first), its steps going
    on on activity threads or not; the worker and the instance's id."""
    ran.clear()
    async with running(store, **options) as (worker, client):
        worker.blocking_checkpoints = on_threads
        instance_id = await client.start_new("logged_chain", steps)
        status = await client.wait_for_completion(instance_id, timeout=30)
    assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure_details
    assert status.output == steps
    return worker, instance_id


class _FailingCheckpoint(SqliteStore):
    """The ``fail``-th checkpoint (1-based) fails, as a full disk would make it, whether the
    event loop commits it or an activity's thread going on with its instance."""

    def __init__(self, path: Path, fail: int) -> None:
        super().__init__(path)
        self.fail = fail
        self.checkpoints = 0

    async def checkpoint(self, item: OrchestrationWorkItem, checkpoint: Any, now: datetime) -> Any:
        self._count()
        return await super().checkpoint(item, checkpoint, now)

    def checkpoint_blocking(
        self, item: OrchestrationWorkItem, checkpoint: Any, now: datetime, **hooks: Any
    ) -> bool:
        self._count()
        return super().checkpoint_blocking(item, checkpoint, now, **hooks)

    def _count(self) -> None:
        self.checkpoints += 1
        if self.checkpoints == self.fail:
            raise StoreError("the disk is full")


@pytest.mark.parametrize("on_threads", [True, False])
def test_a_held_step_whose_commit_fails_is_taken_again_from_the_last_commit(
    tmp_path: Path, on_threads: bool
) -> None:
    """The third checkpoint, which records the second activity's result and schedules the
    third, fails: the instance goes on from its second checkpoint, after a back-off. With
    ``on_threads``, the activity's thread commits it (see ``held``), else the event loop."""

    async def scenario() -> None:
        store = _FailingCheckpoint(tmp_path / "hub.db", fail=3)
        worker, instance_id = await _logged_chain(store, 4, on_threads)
        # At least once: the result the failed step recorded is lost, and its activity runs
        # again; the one it scheduled runs only once a step that schedules it has committed.
        assert ran == [0, 1, 1, 2, 3]
        # Nothing of the failed step, or of anything after it, was committed twice.
        kinds = [e.kind for e in await store.get_history(instance_id)]
        assert kinds.count("TaskScheduled") == 4
        assert kinds.count("TaskCompleted") == 4
        assert kinds.count("ExecutionCompleted") == 1
        assert (worker.steps_on_threads > 0) is on_threads
        await store.close()

    asyncio.run(scenario())


class _FailingCommit(SqliteStore):
    """The ``fail``-th checkpoint committed by a thread (1-based) fails at its very end: its
    statements run, its ``before_commit`` hook starts the next activity, and the COMMIT
    fails, as a disk that fails the write of the WAL would make it."""

    def __init__(self, path: Path, fail: int) -> None:
        super().__init__(path)
        self.fail = fail
        self.checkpoints = 0
        self.armed = False
        self.hooked_and_failed = False

    def checkpoint_blocking(
        self, item: OrchestrationWorkItem, checkpoint: Any, now: datetime, **hooks: Any
    ) -> bool:
        self.checkpoints += 1
        hook = hooks.get("before_commit")
        if self.checkpoints != self.fail or hook is None:
            return super().checkpoint_blocking(item, checkpoint, now, **hooks)
        with self._db._conn_lock:  # not while another thread commits on it
            real = self._db._connect()
            store = self

            class FailingCommit:
                """The connection, but the COMMIT right after the hook fails."""

                def __getattr__(self, name: str) -> object:
                    return getattr(real, name)

                def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
                    if sql == "COMMIT" and store.armed:
                        store.armed = False
                        store.hooked_and_failed = True
                        raise sqlite3.OperationalError("disk I/O error")
                    return real.execute(sql, *args)

            self._db._conn = FailingCommit()  # type: ignore[assignment]

        def before_commit(waiting: bool) -> None:
            hook(waiting)
            self.armed = True  # on the committing thread, just before this COMMIT

        hooks["before_commit"] = before_commit
        return super().checkpoint_blocking(item, checkpoint, now, **hooks)


def test_a_commit_that_fails_after_its_next_activity_started_drops_that_activitys_result(
    tmp_path: Path,
) -> None:
    """A chain's next activity starts as soon as only the commit scheduling it is left; if
    that commit then fails, the activity's result is dropped (it may have run: at least
    once), and the instance goes on from its last commit, each step recorded once."""

    async def scenario() -> None:
        store = _FailingCommit(tmp_path / "hub.db", fail=3)
        _, instance_id = await _logged_chain(store, 5, True)
        assert store.hooked_and_failed
        # The activities ran in order up to the failed step's, and the one it started ahead
        # perhaps; then again from the failed step's, whose result was lost.
        [back] = [i for i in range(1, len(ran)) if ran[i] <= ran[i - 1]]
        first, again = ran[:back], ran[back:]
        assert first == list(range(len(first)))
        assert again == list(range(again[0], 5))
        assert len(first) - again[0] in (1, 2)
        kinds = [e.kind for e in await store.get_history(instance_id)]
        assert kinds.count("TaskScheduled") == 5
        assert kinds.count("TaskCompleted") == 5
        assert kinds.count("ExecutionCompleted") == 1
        assert await store.lock_next_activities("w", timedelta(seconds=30), FAR_FUTURE, 9) == []
        await store.close()

    asyncio.run(scenario())


class _HookedCommits(SqliteStore):
    """Counts the checkpoints committed by threads, and those with a ``before_commit``."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.blocking = 0
        self.hooked = 0

    def checkpoint_blocking(
        self, item: OrchestrationWorkItem, checkpoint: Any, now: datetime, **hooks: Any
    ) -> bool:
        self.blocking += 1
        self.hooked += hooks.get("before_commit") is not None
        return super().checkpoint_blocking(item, checkpoint, now, **hooks)


@pytest.mark.parametrize("start_ahead", [True, False])
def test_a_chains_next_activity_starts_ahead_of_its_commit_unless_told_not_to(
    tmp_path: Path, start_ahead: bool
) -> None:
    """``WorkerOptions.start_ahead`` False: a chain going on on threads starts no activity
    before the commit that schedules it has ended (no commit of it has a hook to start one)."""

    async def scenario() -> None:
        store = _HookedCommits(tmp_path / "hub.db")
        worker, _ = await _logged_chain(store, 20, True, start_ahead=start_ahead)
        assert ran == list(range(20))
        assert worker.steps_on_threads >= 10
        assert store.blocking >= 10
        # Every step that schedules a next activity (all but the last) hooks its commit.
        assert store.hooked == (store.blocking - 1 if start_ahead else 0)
        await store.close()

    asyncio.run(scenario())


# ------------------------------------------------------- a chain going on on its activity's thread


def test_a_chain_goes_on_from_step_to_step_on_its_activitys_thread(tmp_path: Path) -> None:
    """After its first episode, each step of a chain of sync activities runs on the thread of
    the activity before it: the history, the activities run, and the commits are the same as
    when the event loop runs every step."""

    async def scenario() -> None:
        stores = [SqliteStore(tmp_path / f"{on_threads}.db") for on_threads in (True, False)]
        commits = [store.commits for store in stores]
        await _same_chain_on_threads_and_on_the_loop(*stores)
        # One commit per step, as on the loop.
        for store, before in zip(stores, commits, strict=True):
            assert store.commits - before <= 30 + 8

    asyncio.run(scenario())


def test_a_chain_goes_on_on_its_activitys_thread_on_postgresql(postgres_url: str) -> None:
    async def scenario() -> None:
        store = open_store(postgres_url)
        await _same_chain_on_threads_and_on_the_loop(store, store)

    asyncio.run(scenario())


async def _same_chain_on_threads_and_on_the_loop(on_threads: Store, on_the_loop: Store) -> None:
    """Run a chain of 30 steps on each store (they may be one), going on on threads the first
    time only: each activity runs once, in order, and the histories are the same. Closes the
    stores."""
    histories = []
    for threads, store in ((True, on_threads), (False, on_the_loop)):
        worker, instance_id = await _logged_chain(store, 30, threads)
        assert ran == list(range(30)), "each activity ran once, in order"
        assert worker.activities_in_place == worker.activities_run == 30
        if threads:
            # A step handed back to the loop now and then (a slow machine) is allowed.
            assert worker.steps_on_threads >= 20
        else:
            assert worker.steps_on_threads == 0
        histories.append([e.kind for e in await store.get_history(instance_id)])
        assert await store.lock_next_activities("w", timedelta(seconds=30), FAR_FUTURE, 9) == []
    for store in {id(s): s for s in (on_threads, on_the_loop)}.values():
        await store.close()
    assert histories[0] == histories[1]


def test_a_termination_reaches_a_chain_going_on_on_threads(tmp_path: Path) -> None:
    """The thread commits each step and hears of a message in the inbox as it does: it hands
    the instance back to the event loop, which applies the termination."""
    asyncio.run(_terminate_a_chain_on_threads(SqliteStore(tmp_path / "hub.db")))


@pytest.mark.parametrize("activity", ["add_one_noting_twenty", "slow_add_one_noting_twenty"])
def test_a_termination_reaches_a_chain_going_on_on_threads_on_postgresql(
    postgres_url: str, activity: str
) -> None:
    """As on SQLite, with activities quicker and slower than a commit."""
    asyncio.run(_terminate_a_chain_on_threads(open_store(postgres_url), activity))


async def _terminate_a_chain_on_threads(
    store: Store, activity: str = "add_one_noting_twenty"
) -> None:
    async with running(store) as (worker, client):
        twenty.clear()
        instance_id = await client.start_new("chain_of", [activity, 1_000_000])
        assert await asyncio.to_thread(twenty.wait, 10)
        assert worker.steps_on_threads >= 10
        await client.terminate(instance_id, "enough")
        status = await client.wait_for_completion(instance_id, timeout=10)
        assert status.runtime_status is RuntimeStatus.TERMINATED
        assert not worker.held_waiting
    kinds = [e.kind for e in await store.get_history(instance_id)]
    assert kinds.count("ExecutionTerminated") == 1
    assert 20 <= kinds.count("TaskCompleted") < 1_000_000
    assert await store.lock_next_activities("w", timedelta(seconds=30), FAR_FUTURE, 9) == []
    await store.close()


def test_a_chain_started_while_others_wait_stays_on_the_event_loop(tmp_path: Path) -> None:
    """Threads go on with an instance only while no other instance of the worker waits for
    its activities: many instances at once share their commits on the event loop."""

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        gate.clear()
        entered.clear()
        async with running(store) as (worker, client):
            blocked_id = await client.start_new("only_blocked")
            assert await asyncio.to_thread(entered.wait, 10)
            instance_id = await client.start_new("chain", 20)
            status = await client.wait_for_completion(instance_id, timeout=30)
            assert status.output == 20
            assert worker.steps_on_threads == 0
            gate.set()
            status = await client.wait_for_completion(blocked_id, timeout=30)
            assert status.runtime_status is RuntimeStatus.COMPLETED
        await store.close()

    asyncio.run(scenario())


def test_a_fault_of_a_step_on_its_thread_lets_the_instance_go_to_be_taken_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault of the runtime on the thread going on with an instance (not the code's, not the
    commit's) hands it back failed: the worker lets it go, and it goes on from its last commit
    instead of waiting for that thread forever."""
    calls = Counter[str]()
    next_step = HeldActivities._next_step

    def faulty(self: HeldActivities, outcome: Any, ahead: Any) -> Any:
        calls["steps"] += 1
        if calls["steps"] == 3:
            raise RuntimeError("a bug")
        return next_step(self, outcome, ahead)

    monkeypatch.setattr(HeldActivities, "_next_step", faulty)

    async def scenario() -> None:
        ran.clear()
        store = SqliteStore(tmp_path / "hub.db")
        async with running(store) as (_, client):
            instance_id = await client.start_new("logged_chain", 6)
            status = await client.wait_for_completion(instance_id, timeout=30)
        assert status.runtime_status is RuntimeStatus.COMPLETED, status.failure_details
        assert status.output == 6
        assert calls["steps"] >= 4
        assert sorted(set(ran)) == list(range(6))
        kinds = [e.kind for e in await store.get_history(instance_id)]
        assert kinds.count("TaskCompleted") == 6
        await store.close()

    asyncio.run(scenario())


@app.orchestrator
def activity_or_timer(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Waits on a timer too: its activity goes through the queue to any worker."""
    timer = ctx.create_timer(ctx.current_utc_datetime + timedelta(minutes=10))
    winner = yield ctx.task_any([ctx.call_activity("noted_add_one", 1), timer])
    return winner.result


def test_a_chain_going_on_on_a_thread_lets_queued_activities_have_it(tmp_path: Path) -> None:
    """With one activity thread, a long chain going on on it hands its instance back to the
    event loop as soon as another activity waits for the thread: that activity runs long
    before the chain would end, and the chain goes on afterwards."""

    async def scenario() -> None:
        store = SqliteStore(tmp_path / "hub.db")
        twenty.clear()
        noted.clear()
        async with running(store, max_concurrent_activities=1) as (worker, client):
            chain_id = await client.start_new("chain_of", ["add_one_noting_twenty", 1_000_000])
            assert await asyncio.to_thread(twenty.wait, 10)
            assert worker.steps_on_threads >= 10
            other_id = await client.start_new("activity_or_timer")
            # Without the hand-back this waits for the whole chain (minutes).
            assert await asyncio.to_thread(noted.wait, 10)
            status = await client.wait_for_completion(other_id, timeout=10)
            assert status.output == 2
            chain = await client.get_status(chain_id)
            assert chain is not None and chain.runtime_status is RuntimeStatus.RUNNING
            await client.terminate(chain_id, "enough")
            status = await client.wait_for_completion(chain_id, timeout=10)
            assert status.runtime_status is RuntimeStatus.TERMINATED
        await store.close()

    asyncio.run(scenario())
