"""Checkpoints: one episode committed atomically, fenced by the lease."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from durafn.core.errors import LeaseLost
from durafn.core.history import (
    EventRaised,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TaskScheduled,
)
from durafn.core.status import RuntimeStatus
from durafn.store.base import Checkpoint, NewInstance, OutgoingMessage, Store

from .factories import (
    LEASE,
    T0,
    activity,
    at,
    commit,
    completed,
    create_finished,
    episode,
    failure,
    lock_instance,
    new_instance,
    raised,
    start_running,
    started,
    task_completed,
    task_scheduled,
    timer_fired,
    to_self,
)


def test_checkpoint_appends_history_and_updates_the_instance(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        first = episode(item.messages[0].event, task_scheduled(0), now=at(1))
        await commit(store, item, at(1), events=first, custom_status='"step 1"')
        record = await store.get_instance("a")
        assert record is not None
        assert record.status is RuntimeStatus.RUNNING
        assert record.custom_status == '"step 1"'
        assert record.updated_at == at(1) and record.created_at == T0
        assert record.completed_at is None
        await store.send_message("a", raised(), at(2))
        item = await lock_instance(store, "a", at(2))
        second = episode(item.messages[0].event, now=at(2))
        await commit(store, item, at(2), events=second)
        assert await store.get_history("a") == first + second
        record = await store.get_instance("a")
        assert record is not None and record.custom_status is None

    asyncio.run(body())


def test_consumed_messages_are_deleted_and_the_others_kept(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        await store.send_message("a", raised("used"), T0)
        await store.send_message("a", raised("left"), T0)
        item = await lock_instance(store, "a")
        assert len(item.messages) == 3
        cp = Checkpoint(episode(), [m.seq for m in item.messages[:2]], RuntimeStatus.RUNNING)
        await store.checkpoint(item, cp, at(1))
        again = await lock_instance(store, "a", at(1))
        assert [m.event for m in again.messages] == [raised("left")]
        assert again.messages[0].seq == item.messages[2].seq

    asyncio.run(body())


def test_finishing_records_output_failure_and_completion_time(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "ok")
        await start_running(store, "bad")
        for instance_id in ("ok", "bad"):
            await store.send_message(instance_id, raised(), at(1))
        item = await lock_instance(store, "ok", at(2))
        await commit(store, item, at(2), RuntimeStatus.COMPLETED, output='"done"')
        item = await lock_instance(store, "bad", at(3))
        await commit(store, item, at(3), RuntimeStatus.FAILED, failure=failure("kaput"))
        ok = await store.get_instance("ok")
        bad = await store.get_instance("bad")
        assert ok is not None and bad is not None
        assert (ok.status, ok.output, ok.failure) == (RuntimeStatus.COMPLETED, '"done"', None)
        assert ok.completed_at == at(2)
        assert (bad.status, bad.output, bad.completed_at) == (RuntimeStatus.FAILED, None, at(3))
        assert bad.failure == failure("kaput")

    asyncio.run(body())


def test_scheduled_activities_are_queued(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a", execution_id="e1"), T0)
        item = await lock_instance(store, "a")
        await commit(store, item, at(1), activities=[activity(0, "charge", '"card"')])
        tasks = await store.lock_next_activities("w1", LEASE, at(1), 10)
        assert len(tasks) == 1
        task = tasks[0]
        assert (task.instance_id, task.execution_id, task.event_id) == ("a", "e1", 0)
        assert (task.name, task.input, task.attempts) == ("charge", '"card"', 1)

    asyncio.run(body())


def test_a_timer_is_invisible_until_it_is_due(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        fired = timer_fired(0, at(60))
        await commit(store, item, T0, messages=[to_self(item, fired, at(60))])
        assert await store.lock_next_orchestration("w1", LEASE, at(59)) is None
        assert await store.next_visible_at(T0) == at(60)
        due = await store.lock_next_orchestration("w1", LEASE, at(60))
        assert due is not None
        assert [m.event for m in due.messages] == [fired]

    asyncio.run(body())


def _child(instance_id: str, parent_task_id: int = 0, execution_id: str = "c1") -> NewInstance:
    return NewInstance(
        instance_id,
        started(
            "child",
            execution_id,
            input='"in"',
            parent_instance_id="parent",
            parent_execution_id="p1",
            parent_task_id=parent_task_id,
        ),
    )


def test_a_checkpoint_starts_sub_orchestrations(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("parent", execution_id="p1"), T0)
        item = await lock_instance(store, "parent")
        await commit(store, item, at(1), sub_orchestrations=[_child("kid")])
        record = await store.get_instance("kid")
        assert record is not None
        assert (record.name, record.execution_id, record.input) == ("child", "c1", '"in"')
        assert record.status is RuntimeStatus.PENDING
        assert (record.parent_instance_id, record.created_at) == ("parent", at(1))
        kid = await lock_instance(store, "kid", at(1))
        assert [m.event for m in kid.messages] == [_child("kid").started]

    asyncio.run(body())


def test_a_sub_orchestration_whose_id_is_busy_fails_back_to_the_parent(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "kid", execution_id="old")
        await store.create_instance(new_instance("parent", execution_id="p1"), T0)
        item = await lock_instance(store, "parent")
        await commit(store, item, at(1), sub_orchestrations=[_child("kid", parent_task_id=7)])
        kid = await store.get_instance("kid")
        assert kid is not None
        assert (kid.execution_id, kid.status) == ("old", RuntimeStatus.RUNNING)
        back = await lock_instance(store, "parent", at(1))
        assert len(back.messages) == 1
        event = back.messages[0].event
        assert isinstance(event, SubOrchestrationInstanceFailed)
        assert event.task_scheduled_id == 7
        assert event.failure.error_type == "InstanceAlreadyExists"
        assert "kid" in event.failure.message

    asyncio.run(body())


def test_a_sub_orchestration_replaces_a_finished_instance(store: Store) -> None:
    async def body() -> None:
        await create_finished(store, "kid")
        await store.create_instance(new_instance("parent", execution_id="p1"), T0)
        item = await lock_instance(store, "parent")
        await commit(store, item, at(1), sub_orchestrations=[_child("kid", execution_id="c2")])
        kid = await store.get_instance("kid")
        assert kid is not None
        assert (kid.execution_id, kid.status, kid.name) == ("c2", RuntimeStatus.PENDING, "child")
        assert await store.get_history("kid") == []

    asyncio.run(body())


def test_messages_to_other_instances_are_delivered_or_dropped(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "sender")
        await start_running(store, "target", execution_id="t1")
        await create_finished(store, "done")
        await store.send_message("sender", raised(), at(1))
        item = await lock_instance(store, "sender", at(1))
        hello = raised("hello", '"hi"', at(1))
        messages = [
            OutgoingMessage("target", hello),
            OutgoingMessage("target", task_completed(3), "t0"),  # an older execution
            OutgoingMessage("done", raised("late")),
            OutgoingMessage("ghost", raised("lost")),
        ]
        await commit(store, item, at(1), messages=messages)
        target = await lock_instance(store, "target", at(1))
        assert [m.event for m in target.messages] == [hello]
        assert await store.dropped_events("done") == 1
        assert await store.get_instance("ghost") is None
        assert await store.lock_next_orchestration("w2", LEASE, at(1)) is None

    asyncio.run(body())


@pytest.mark.parametrize("sends", [True, False], ids=["with-a-message", "alone"])
def test_finishing_deletes_queued_work_and_counts_dropped_events(store: Store, sends: bool) -> None:
    """Alone, the finish is the form a store may commit in one statement (PostgreSQL does)."""

    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        timer = to_self(item, timer_fired(1, at(60)), at(60))
        await commit(store, item, T0, activities=[activity(0)], messages=[timer])
        await store.send_message("a", raised("x"), at(1))
        await store.send_message("a", raised("y"), at(1))
        item = await lock_instance(store, "a", at(1))
        cp = Checkpoint(
            episode(completed(now=at(2)), now=at(2)),
            consumed=[],
            status=RuntimeStatus.COMPLETED,
            messages=[OutgoingMessage("a", raised("to myself"))] if sends else [],
        )
        await store.checkpoint(item, cp, at(2))
        assert await store.dropped_events("a") == (3 if sends else 2)
        record = await store.get_instance("a")
        assert record is not None and record.completed_at == at(2)
        assert await store.lock_next_orchestration("w1", LEASE, at(100)) is None
        assert await store.lock_next_activities("w1", LEASE, at(100), 10) == []
        assert await store.next_visible_at(T0) is None
        assert len(await store.get_history("a")) == 5

    asyncio.run(body())


def test_finishing_notifies_the_parent(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("parent", execution_id="p1"), T0)
        item = await lock_instance(store, "parent")
        await commit(store, item, T0, sub_orchestrations=[_child("kid", parent_task_id=4)])
        kid = await lock_instance(store, "kid")
        result = SubOrchestrationInstanceCompleted(timestamp=at(1), task_scheduled_id=4, result="1")
        note = OutgoingMessage("parent", result, "p1")
        await commit(store, kid, at(1), RuntimeStatus.COMPLETED, parent_message=note)
        back = await lock_instance(store, "parent", at(1))
        assert [m.event for m in back.messages] == [result]

    asyncio.run(body())


def test_the_parent_message_waits_for_the_finish(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "parent", execution_id="p1")
        await store.create_instance(new_instance("kid"), T0)
        kid = await lock_instance(store, "kid")
        result = SubOrchestrationInstanceCompleted(timestamp=at(1), task_scheduled_id=4)
        note = OutgoingMessage("parent", result, "p1")
        await commit(store, kid, at(1), RuntimeStatus.RUNNING, parent_message=note)
        assert await store.lock_next_orchestration("w1", LEASE, at(1)) is None

    asyncio.run(body())


def test_continue_as_new_resets_the_history(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a", execution_id="e1", input='"v1"'), T0)
        item = await lock_instance(store, "a")
        timer = to_self(item, timer_fired(1, at(60)), at(60))
        await commit(store, item, T0, activities=[activity(0)], messages=[timer])
        tasks = await store.lock_next_activities("w1", LEASE, at(1), 10)
        await store.send_message("a", raised("carried"), at(1))
        item = await lock_instance(store, "a", at(1))
        restart = started("wf", "e2", input='"v2"', now=at(2))
        await commit(
            store,
            item,
            at(2),
            RuntimeStatus.CONTINUED_AS_NEW,
            restart=restart,
            carryover=[raised("carried")],
        )
        await store.send_message("a", raised("after"), at(3))
        record = await store.get_instance("a")
        assert record is not None
        assert (record.execution_id, record.input) == ("e2", '"v2"')
        assert record.status is RuntimeStatus.CONTINUED_AS_NEW
        assert await store.get_history("a") == []
        assert not await store.complete_activity(tasks[0], task_completed(0), at(3))
        assert await store.lock_next_activities("w1", LEASE, at(100), 10) == []
        fresh = await lock_instance(store, "a", at(100))
        assert fresh.execution_id == "e2"
        assert fresh.history_length == 0
        assert [m.event for m in fresh.messages] == [restart, raised("carried"), raised("after")]

    asyncio.run(body())


def test_continue_as_new_keeps_unconsumed_events(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "a")
        await store.send_message("a", raised("now"), at(1))
        item = await lock_instance(store, "a", at(1))
        await store.send_message("a", raised("meanwhile"), at(2))
        restart = started("wf", "e2", now=at(2))
        await commit(store, item, at(2), RuntimeStatus.CONTINUED_AS_NEW, restart=restart)
        fresh = await lock_instance(store, "a", at(3))
        assert sorted(m.seq for m in fresh.messages) == [m.seq for m in fresh.messages]
        events = [m.event for m in fresh.messages]
        assert len(events) == 2 and restart in events and raised("meanwhile") in events

    asyncio.run(body())


def test_carried_over_events_stay_ahead_of_events_that_arrived_meanwhile(
    store: Store,
) -> None:

    async def body() -> None:
        await start_running(store, "a")
        await store.send_message("a", raised("first"), at(1))
        await store.send_message("a", raised("second"), at(1))
        item = await lock_instance(store, "a", at(1))
        await store.send_message("a", raised("third"), at(2))
        restart = started("wf", "e2", now=at(2))
        await commit(
            store,
            item,
            at(2),
            RuntimeStatus.CONTINUED_AS_NEW,
            restart=restart,
            carryover=[raised("second")],
        )
        fresh = await lock_instance(store, "a", at(3))
        expected = [restart, raised("second"), raised("third")]
        assert [m.event for m in fresh.messages] == expected

    asyncio.run(body())


def test_continue_as_new_without_input_clears_the_input(
    store: Store,
) -> None:

    async def body() -> None:
        await store.create_instance(new_instance("a", input='"v1"'), T0)
        item = await lock_instance(store, "a")
        restart = started("wf", "e2", input=None, now=at(1))
        await commit(store, item, at(1), RuntimeStatus.CONTINUED_AS_NEW, restart=restart)
        record = await store.get_instance("a")
        assert record is not None and record.execution_id == "e2"
        assert record.input is None

    asyncio.run(body())


async def _snapshot(store: Store, instance_ids: list[str]) -> object:
    return [
        (await store.get_instance(i), await store.get_history(i), await store.dropped_events(i))
        for i in instance_ids
    ]


def test_a_checkpoint_after_the_lease_was_taken_over_raises_and_changes_nothing(
    store: Store,
) -> None:
    async def body() -> None:
        await start_running(store, "a")
        await start_running(store, "other")
        await store.send_message("a", raised(), at(1))
        stale = await lock_instance(store, "a", at(1))
        taken = await lock_instance(store, "a", at(31), owner="w2")
        before = await _snapshot(store, ["a", "other", "kid"])
        cp = Checkpoint(
            episode(completed(now=at(32)), now=at(32)),
            consumed=[m.seq for m in stale.messages],
            status=RuntimeStatus.COMPLETED,
            output='"stale"',
            activities=[activity(9)],
            messages=[OutgoingMessage("other", raised("from stale"))],
            sub_orchestrations=[_child("kid")],
        )
        with pytest.raises(LeaseLost):
            await store.checkpoint(stale, cp, at(32))
        assert await _snapshot(store, ["a", "other", "kid"]) == before
        assert await store.lock_next_activities("w1", LEASE, at(32), 10) == []
        await store.renew_orchestration_lease(taken, LEASE, at(33))
        await commit(store, taken, at(33))
        assert await store.lock_next_orchestration("w3", LEASE, at(40)) is None

    asyncio.run(body())


def test_a_second_checkpoint_of_one_lease_raises_lease_lost(store: Store) -> None:
    async def body() -> None:
        item = await start_running(store, "a")
        with pytest.raises(LeaseLost):
            await commit(store, item, at(1), RuntimeStatus.COMPLETED)
        record = await store.get_instance("a")
        assert record is not None and record.status is RuntimeStatus.RUNNING
        assert len(await store.get_history("a")) == 3

    asyncio.run(body())


def test_a_checkpoint_after_abandon_raises_lease_lost(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        await store.abandon_orchestration(item)
        with pytest.raises(LeaseLost):
            await commit(store, item, at(1))
        assert await store.get_history("a") == []

    asyncio.run(body())


def test_an_expired_lease_nobody_took_still_commits(store: Store) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        await commit(store, item, at(300))
        record = await store.get_instance("a")
        assert record is not None and record.status is RuntimeStatus.RUNNING
        assert len(await store.get_history("a")) == 2

    asyncio.run(body())


@pytest.mark.parametrize("general", [True, False], ids=["general", "step"])
def test_a_worker_behind_the_history_raises_and_changes_nothing(
    store: Store, general: bool
) -> None:
    """A worker whose history length is behind the instance's (another appended meanwhile)
    commits nothing. A history row holds a whole checkpoint's events, so its sequence number
    may key no row: the instance row's history length fences it, on the stores' common path
    for a step and on the general one (a checkpoint that also sends a message)."""

    async def body() -> None:
        await start_running(store, "a")  # one checkpoint of three events
        await start_running(store, "other")
        await store.send_message("a", raised(), at(1))
        item = await lock_instance(store, "a", at(1))
        before = await _snapshot(store, ["a"])
        behind = replace(item, history_length=1)
        cp = Checkpoint(
            episode(task_scheduled(0), now=at(2)),
            consumed=[m.seq for m in item.messages],
            status=RuntimeStatus.RUNNING,
            custom_status='"moved"',
            activities=[activity(0)],
            messages=[OutgoingMessage("other", raised("x"))] if general else [],
        )
        with pytest.raises(LeaseLost):
            await store.checkpoint(behind, cp, at(2))
        assert await _snapshot(store, ["a"]) == before
        assert await store.lock_next_activities("w1", LEASE, at(2), 10) == []
        # The lease is still held: the same episode commits at the right position.
        await store.checkpoint(item, cp, at(2))
        assert len(await store.get_history("a")) == 6
        record = await store.get_instance("a")
        assert record is not None and record.custom_status == '"moved"'

    asyncio.run(body())


def test_a_checkpoint_of_many_large_events_reads_back_whole_and_in_order(store: Store) -> None:
    """Many events of large payloads are stored in several history rows (none near a
    database's limit on one value), read back as they were appended."""

    async def body() -> None:
        await start_running(store, "a")
        await store.send_message("a", raised(), at(1))
        item = await lock_instance(store, "a", at(1))
        payload = '"' + "x" * 300_000 + '"'
        scheduled = [
            TaskScheduled(timestamp=at(2), event_id=n, name="act", input=payload) for n in range(20)
        ]
        events = episode(item.messages[0].event, *scheduled, now=at(2))
        await commit(store, item, at(2), events=events)
        history = await store.get_history("a")
        assert history[-len(events) :] == events
        assert len(history) == 3 + len(events)

    asyncio.run(body())


def test_raised_events_received_while_finishing_are_counted_not_kept(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "a")
        await store.send_message("a", raised(), at(1))
        item = await lock_instance(store, "a", at(1))
        await store.send_message("a", raised("late"), at(2))
        await commit(store, item, at(3), RuntimeStatus.TERMINATED)
        assert await store.dropped_events("a") == 1
        assert [type(e) for e in await store.get_history("a")].count(EventRaised) == 0

    asyncio.run(body())


def test_a_commit_hook_runs_once_after_the_commit_and_never_for_a_refused_one(
    store: Store,
) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        calls: list[str] = []
        cp = Checkpoint(
            new_events=episode(item.messages[0].event),
            consumed=[m.seq for m in item.messages],
            status=RuntimeStatus.RUNNING,
            on_commit=lambda: calls.append("committed"),
        )
        await store.checkpoint(item, cp, T0)
        assert calls == ["committed"]
        # The lease went with that checkpoint: the same item is fenced now.
        refused = Checkpoint(
            new_events=episode(now=at(1)),
            consumed=[],
            status=RuntimeStatus.RUNNING,
            on_commit=lambda: calls.append("refused"),
        )
        with pytest.raises(LeaseLost):
            await store.checkpoint(item, refused, at(1))
        assert calls == ["committed"]

    asyncio.run(body())


def test_a_message_for_an_earlier_execution_is_not_queued(store: Store) -> None:
    """A result or timer addressed to an execution that has since continued as new never
    reaches the new one; a message naming no execution, or the current one, does."""

    async def body() -> None:
        await start_running(store, "a")
        await store.send_message("a", raised("again"), at(1))
        item = await lock_instance(store, "a", at(1))
        restart = started("wf", "e2", now=at(1))
        await commit(store, item, at(1), RuntimeStatus.CONTINUED_AS_NEW, restart=restart)
        await start_running(store, "b", execution_id="b1", now=at(2))
        await store.send_message("b", raised("go"), at(2))
        sender = await lock_instance(store, "b", at(2))
        messages = [
            OutgoingMessage("a", task_completed(0, '"old"', at(2)), "e1"),
            OutgoingMessage("a", task_completed(1, '"current"', at(2)), "e2"),
            OutgoingMessage("a", raised("anyone", now=at(2))),
        ]
        await commit(store, sender, at(2), messages=messages)
        fresh = await lock_instance(store, "a", at(3))
        assert [m.event for m in fresh.messages] == [
            restart,
            task_completed(1, '"current"', at(2)),
            raised("anyone", now=at(2)),
        ]

    asyncio.run(body())
