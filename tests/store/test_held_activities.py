"""Held checkpoints: a worker keeps an instance and runs its activities in place.

A checkpoint with ``hold_until`` keeps the instance leased and stores its activities leased
under the instance's token; the next checkpoint commits their results (``completed_activities``)
and is fenced by those task rows. The leases of held tasks go with the instance's.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime

import pytest

from durafn.app import App
from durafn.core.errors import LeaseLost
from durafn.core.history import TaskCompleted
from durafn.core.status import RuntimeStatus
from durafn.store.base import (
    BlockingCheckpoints,
    Checkpoint,
    InboxMessage,
    OrchestrationWorkItem,
    Store,
)
from durafn.worker.worker import Worker, WorkerOptions

from .factories import (
    LEASE,
    T0,
    activity,
    at,
    episode,
    lock_instance,
    new_instance,
    raised,
    start_held,
    task_completed,
    task_scheduled,
    timer_fired,
    to_self,
)


async def _complete_held(
    store: Store, item: OrchestrationWorkItem, *event_ids: int, now_s: float = 1
) -> None:
    """Commit the results of held ``event_ids`` (and the inbox's messages) and release."""
    inbox = await store.read_inbox(item, at(now_s))
    results = [task_completed(i, f'"r{i}"', at(now_s)) for i in event_ids]
    events = episode(*results, *(m.event for m in inbox), now=at(now_s))
    cp = Checkpoint(
        new_events=events,
        consumed=[m.seq for m in inbox],
        status=RuntimeStatus.RUNNING,
        completed_activities=list(event_ids),
    )
    await store.checkpoint(item, cp, at(now_s))
    item.history_length += len(events)


def test_a_held_checkpoint_keeps_the_instance_and_its_activities(store: Store) -> None:
    async def body() -> None:
        item = await start_held(store, 0, 1)
        record = await store.get_instance("a")
        assert record is not None and record.status is RuntimeStatus.RUNNING
        assert len(await store.get_history("a")) == item.history_length
        await store.send_message("a", raised("go"), at(1))
        # Nobody else may take the instance or its activities while the hold lasts.
        assert await store.lock_next_orchestration("w2", LEASE, at(29)) is None
        assert await store.lock_next_activities("w2", LEASE, at(29), 10) == []
        assert [m.event.kind for m in await store.read_inbox(item, at(1))] == ["EventRaised"]
        backlog = await store.backlog(at(1))
        assert backlog.activities == 2

    asyncio.run(body())


def test_results_of_held_activities_commit_with_the_next_episode(store: Store) -> None:
    async def body() -> None:
        item = await start_held(store, 0, 1)
        await store.send_message("a", raised("go"), at(1))
        await _complete_held(store, item, 0, 1)
        history = await store.get_history("a")
        assert len(history) == item.history_length
        assert [e.kind for e in history[-4:]] == [
            "TaskCompleted",
            "TaskCompleted",
            "EventRaised",
            "OrchestratorCompleted",
        ]
        # The task rows are gone and the instance is free, its inbox consumed.
        assert await store.lock_next_activities("w2", LEASE, at(100), 10) == []
        assert await store.lock_next_orchestration("w2", LEASE, at(2)) is None
        assert await store.read_inbox(item, at(2)) == []
        assert (await store.backlog(at(2))).activities == 0

    asyncio.run(body())


def test_a_held_instance_can_hold_again(store: Store) -> None:
    async def body() -> None:
        item = await start_held(store, 0)
        events = episode(task_completed(0, '"r"', at(1)), task_scheduled(1), now=at(1))
        cp = Checkpoint(
            new_events=events,
            consumed=[],
            status=RuntimeStatus.RUNNING,
            activities=[activity(1)],
            completed_activities=[0],
            hold_until=at(31),
        )
        await store.checkpoint(item, cp, at(1))
        item.history_length += len(events)
        assert await store.lock_next_activities("w2", LEASE, at(30), 10) == []
        await _complete_held(store, item, 1, now_s=2)
        assert len(await store.get_history("a")) == item.history_length

    asyncio.run(body())


async def _hold_with_a_timer(store: Store, fire_s: float) -> OrchestrationWorkItem:
    """Like ``start_held(store, 0)``, the episode also setting a timer that fires at ``fire_s``."""
    await store.create_instance(new_instance("a"), T0)
    item = await lock_instance(store, "a")
    events = episode(item.messages[0].event, task_scheduled(0))
    cp = Checkpoint(
        new_events=events,
        consumed=[m.seq for m in item.messages],
        status=RuntimeStatus.RUNNING,
        activities=[activity(0)],
        messages=[to_self(item, timer_fired(1, at(fire_s)), at(fire_s))],
        hold_until=T0 + LEASE,
    )
    await store.checkpoint(item, cp, T0)  # with a message: a store may not look at the inbox
    item.history_length += len(events)
    item.locked_until = T0 + LEASE
    return item


def test_read_inbox_leaves_out_messages_not_yet_visible(store: Store) -> None:
    async def body() -> None:
        item = await _hold_with_a_timer(store, 10)
        assert await store.read_inbox(item, at(9)) == []
        assert [m.event.kind for m in await store.read_inbox(item, at(10))] == ["TimerFired"]

    asyncio.run(body())


def test_a_task_taken_by_another_worker_fences_the_results_commit(store: Store) -> None:
    async def body() -> None:
        item = await start_held(store, 0)
        length = item.history_length
        # The hold lapses unrenewed; another worker runs the activity and delivers its result.
        [task] = await store.lock_next_activities("w2", LEASE, at(31), 10)
        assert task.event_id == 0 and task.attempts == 2
        with pytest.raises(LeaseLost):
            await _complete_held(store, item, 0, now_s=32)
        assert len(await store.get_history("a")) == length
        assert await store.complete_activity(task, task_completed(0, '"other"'), at(33))
        await store.abandon_orchestration(item)
        got = await lock_instance(store, "a", at(34), "w2")
        assert [m.event for m in got.messages] == [task_completed(0, '"other"')]

    asyncio.run(body())


def test_results_of_activities_not_held_are_refused(store: Store) -> None:
    async def body() -> None:
        item = await start_held(store, 0)
        before = await store.get_instance("a")
        with pytest.raises(LeaseLost):
            await _complete_held(store, item, 0, 7)
        assert len(await store.get_history("a")) == item.history_length
        # Nothing of the refused checkpoint stays: not even the instance row's update.
        assert await store.get_instance("a") == before
        await _complete_held(store, item, 0)

    asyncio.run(body())


def test_a_held_step_that_keeps_its_status_and_lease_changes_only_its_history(
    store: Store,
) -> None:
    async def body() -> None:
        item = await start_held(store, 0)
        item.status = RuntimeStatus.RUNNING  # as committed: the store may leave it alone
        events = episode(task_completed(0, '"r0"', at(1)), task_scheduled(1), now=at(1))
        cp = Checkpoint(
            new_events=events,
            consumed=[],
            status=RuntimeStatus.RUNNING,
            activities=[activity(1, "act1")],
            hold_until=item.locked_until,
            completed_activities=[0],
        )
        await store.checkpoint(item, cp, at(1))
        item.history_length += len(events)
        record = await store.get_instance("a")
        assert record is not None and record.status is RuntimeStatus.RUNNING
        assert len(await store.get_history("a")) == item.history_length
        # Still held under the same lease: no one else may claim it or its activity.
        assert await store.lock_next_orchestration("w2", LEASE, at(2)) is None
        assert await store.lock_next_activities("w2", LEASE, at(2), 10) == []
        assert await store.lock_next_activities("w2", LEASE, at(31), 10) != []

    asyncio.run(body())


def test_renewing_the_instance_lease_renews_its_held_tasks(store: Store) -> None:
    async def body() -> None:
        item = await start_held(store, 0)
        await store.renew_orchestration_lease(item, LEASE, at(20))
        assert await store.lock_next_activities("w2", LEASE, at(31), 10) == []
        assert await store.lock_next_orchestration("w2", LEASE, at(31)) is None
        [task] = await store.lock_next_activities("w2", LEASE, at(50), 10)
        assert task.event_id == 0

    asyncio.run(body())


def test_abandoning_the_instance_releases_its_held_tasks(store: Store) -> None:
    async def body() -> None:
        item = await start_held(store, 0, 1)
        await store.abandon_orchestration(item)
        tasks = await store.lock_next_activities("w2", LEASE, at(1), 10)
        assert sorted(t.event_id for t in tasks) == [0, 1]
        for task in tasks:
            assert await store.complete_activity(task, task_completed(task.event_id), at(2))
        got = await lock_instance(store, "a", at(3), "w2")
        assert sorted(m.event.task_scheduled_id for m in got.messages) == [0, 1]  # type: ignore[attr-defined]

    asyncio.run(body())


def test_a_finishing_checkpoint_may_commit_held_results(store: Store) -> None:
    async def body() -> None:
        item = await start_held(store, 0, 1)
        cp = Checkpoint(
            new_events=episode(task_completed(0, '"r"', at(1)), now=at(1)),
            consumed=[],
            status=RuntimeStatus.COMPLETED,
            output='"done"',
            completed_activities=[0],
        )
        await store.checkpoint(item, cp, at(1))
        record = await store.get_instance("a")
        assert record is not None and record.status is RuntimeStatus.COMPLETED
        assert await store.lock_next_activities("w2", LEASE, at(100), 10) == []

    asyncio.run(body())


@pytest.mark.parametrize("status", [RuntimeStatus.COMPLETED, RuntimeStatus.FAILED])
def test_a_checkpoint_that_ends_cannot_hold(store: Store, status: RuntimeStatus) -> None:
    async def body() -> None:
        await store.create_instance(new_instance("a"), T0)
        item = await lock_instance(store, "a")
        cp = Checkpoint(
            new_events=episode(item.messages[0].event),
            consumed=[m.seq for m in item.messages],
            status=status,
            hold_until=T0 + LEASE,
        )
        with pytest.raises(ValueError, match="cannot hold"):
            await store.checkpoint(item, cp, T0)
        assert await store.get_history("a") == []

    asyncio.run(body())


async def _held_step(
    store: Store,
    item: OrchestrationWorkItem,
    now_s: float,
    done: int,
    consumed: list[InboxMessage] | None = None,
    hold: bool = True,
    blocking: bool = False,
    prepared: bool = False,
) -> bool:
    """Commit the result of held activity ``done`` (and ``consumed``), scheduling the next one
    held unless ``hold`` is False; what the store says of the inbox. ``blocking`` commits it
    from a thread that waits for it (``BlockingCheckpoints``), ``prepared`` with what the
    store built for it ahead, on another thread."""
    consumed = consumed or []
    now = at(now_s)
    scheduled = [task_scheduled(done + 1)] if hold else []
    events = episode(
        task_completed(done, '"r"', now), *(m.event for m in consumed), *scheduled, now=now
    )
    cp = Checkpoint(
        new_events=events,
        consumed=[m.seq for m in consumed],
        status=RuntimeStatus.RUNNING,
        activities=[activity(done + 1)] if hold else [],
        completed_activities=[done],
        hold_until=T0 + LEASE if hold else None,
    )
    if blocking:
        assert isinstance(store, BlockingCheckpoints)
        told: list[bool] = []

        def before_commit(waiting: bool) -> None:
            # The store has read the item and the checkpoint: changing them now changes
            # nothing of what it commits (the worker's next episode may run meanwhile).
            item.history_length += 1000
            cp.new_events = []
            told.append(waiting)

        length = item.history_length
        ahead = (
            await asyncio.to_thread(store.prepare_checkpoint, item, cp, now) if prepared else None
        )
        try:
            waiting = await asyncio.to_thread(
                functools.partial(
                    store.checkpoint_blocking, before_commit=before_commit, prepared=ahead
                ),
                item,
                cp,
                now,
            )
        finally:
            item.history_length = length
        # If told at all (a store may not know before its commit), told once, before the
        # commit ended, what the commit then said.
        assert told in ([], [waiting])
    else:
        waiting = await store.checkpoint(item, cp, now)
    item.history_length += len(events)
    return waiting


@pytest.mark.parametrize(
    ("blocking", "prepared"),
    [(False, False), (True, False), (True, True)],
    ids=["awaited", "blocking", "prepared"],
)
def test_a_held_checkpoint_says_whether_messages_wait_in_the_inbox(
    store: Store, blocking: bool, prepared: bool
) -> None:
    """Also committed from a thread that waits for it, by the stores that can, and with what
    the store built for it ahead on another thread (``prepare_checkpoint``)."""
    if blocking and not isinstance(store, BlockingCheckpoints):
        pytest.skip("this store commits for event loops only")
    step = functools.partial(_held_step, blocking=blocking, prepared=prepared)

    async def body() -> None:
        item = await _hold_with_a_timer(store, 10)
        # The timer is not visible yet: nothing waits.
        assert await step(store, item, 1, done=0) is False
        await store.send_message("a", raised("go"), at(1))
        assert await step(store, item, 2, done=1) is True
        inbox = await store.read_inbox(item, at(2))
        assert [m.event.kind for m in inbox] == ["EventRaised"]
        # What the checkpoint consumes does not count.
        assert await step(store, item, 3, done=2, consumed=inbox) is False
        # The timer has come due.
        assert await step(store, item, 11, done=3) is True
        # A checkpoint that lets the instance go says nothing of its inbox.
        timer = await store.read_inbox(item, at(12))
        assert [m.event.kind for m in timer] == ["TimerFired"]
        last = step(store, item, 12, done=4, consumed=timer, hold=False)
        assert await last is True
        kinds = [e.kind for e in await store.get_history("a")]
        assert kinds.count("TaskCompleted") == 5
        assert kinds.count("TimerFired") == 1

    asyncio.run(body())


def test_a_blocking_checkpoint_is_fenced_as_an_awaited_one(store: Store) -> None:
    """A lease lost (the hold lapsed, another worker took the activity) fails the commit of a
    thread as it fails the event loop's; nothing of it is committed. A checkpoint with a
    commit hook is refused: its thread runs what follows the commit itself."""
    if not isinstance(store, BlockingCheckpoints):
        pytest.skip("this store commits for event loops only")

    async def body() -> None:
        assert isinstance(store, BlockingCheckpoints)
        item = await start_held(store, 0)
        length = item.history_length
        hooked = Checkpoint(
            new_events=[], consumed=[], status=RuntimeStatus.RUNNING, on_commit=lambda: None
        )
        with pytest.raises(ValueError, match="commit"):
            store.checkpoint_blocking(item, hooked, at(1))
        [task] = await store.lock_next_activities("w2", LEASE, at(31), 10)
        assert task.event_id == 0
        with pytest.raises(LeaseLost):
            await _held_step(store, item, 32, done=0, blocking=True)
        assert len(await store.get_history("a")) == length

    asyncio.run(body())


async def _schedule_held(
    store: Store,
    item: OrchestrationWorkItem,
    event_id: int,
    now_s: float,
    hold_until: datetime,
    hold_activities: bool = True,
) -> Checkpoint:
    """Commit a held episode that schedules activity ``event_id`` (``act<id>``); the
    checkpoint it committed."""
    events = episode(task_scheduled(event_id), now=at(now_s))
    cp = Checkpoint(
        new_events=events,
        consumed=[],
        status=RuntimeStatus.RUNNING,
        activities=[activity(event_id, f"act{event_id}")],
        hold_until=hold_until,
        hold_activities=hold_activities,
    )
    await store.checkpoint(item, cp, at(now_s))
    item.history_length += len(events)
    return cp


def test_activities_not_held_are_free_while_the_instance_stays_held(store: Store) -> None:
    """A held episode may schedule activities that its worker does not run in place
    (``hold_activities=False``): any worker takes them at once, while the instance and the
    activities it does run in place stay leased."""

    async def body() -> None:
        item = await start_held(store, 0)
        cp = await _schedule_held(store, item, 1, 1, item.locked_until, hold_activities=False)
        assert cp.wakes
        taken = await store.lock_next_activities("w2", LEASE, at(1), 10)
        assert [t.event_id for t in taken] == [1]
        assert await store.lock_next_orchestration("w2", LEASE, at(2)) is None
        assert await store.complete_activity(taken[0], task_completed(1), at(2))
        # The activity run in place is still the holder's: its result commits with the next
        # episode, which also takes the other's result from the inbox.
        await _complete_held(store, item, 0, now_s=3)
        history = await store.get_history("a")
        done = [e.task_scheduled_id for e in history if isinstance(e, TaskCompleted)]
        assert sorted(done) == [0, 1]

    asyncio.run(body())


def test_a_held_step_late_in_its_lease_renews_it_with_its_activities(store: Store) -> None:
    """The lease keeper missed a renewal: the worker's next held step renews the lease first,
    and the activities held under it with it, so that none of them expires while it runs in
    place (and runs a second time elsewhere)."""

    async def body() -> None:
        item = await start_held(store, 0)  # leased until 30 s
        worker = Worker(App(), store, options=WorkerOptions(lease=LEASE))
        until = await worker._hold_until(item, at(25))
        assert until == at(25) + LEASE == item.locked_until
        await _schedule_held(store, item, 1, 25, until)
        # Past the first lease: the instance and both activities are still this worker's.
        assert await store.lock_next_orchestration("w2", LEASE, at(40)) is None
        assert await store.lock_next_activities("w2", LEASE, at(40), 10) == []
        assert len(await store.lock_next_activities("w2", LEASE, at(56), 10)) == 2

    asyncio.run(body())
