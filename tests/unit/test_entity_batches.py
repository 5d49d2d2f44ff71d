"""The worker's entity batches: at most a capped number of inbox messages per batch, in order."""

from __future__ import annotations

from datetime import timedelta

from durafn.core import codec
from durafn.core.history import HistoryEvent
from durafn.core.status import RuntimeStatus
from durafn.executor.entity import SchedulerState
from durafn.store.base import InboxMessage, OrchestrationWorkItem
from durafn.worker.entities import MAX_BATCH_MESSAGES, run_entity_batch

from .factories import T0
from .test_entity_executor import COUNTER, counter_app, lock_request, signal, unlock


def inbox(events: list[HistoryEvent]) -> list[InboxMessage]:
    return [InboxMessage(seq, event) for seq, event in enumerate(events, start=1)]


def leased(messages: list[InboxMessage], state: str | None = None) -> OrchestrationWorkItem:
    return OrchestrationWorkItem(
        instance_id=COUNTER,
        execution_id="entity",
        name="counter",
        status=RuntimeStatus.RUNNING,
        lock_token="t",
        locked_until=T0 + timedelta(seconds=30),
        messages=messages,
        history_length=0,
        entity_state=state,
    )


def value_of(state: str | None) -> object:
    return codec.decode(SchedulerState.load(state).state)


def test_a_batch_takes_at_most_its_cap_of_messages_and_leaves_the_rest_queued() -> None:
    app = counter_app()
    queued = inbox([signal("add", n) for n in (1, 10, 100, 1000, 10000)])
    first = run_entity_batch(app, leased(queued), T0, limit=2)
    assert first.consumed == [1, 2]
    assert value_of(first.entity_state) == 11
    # The next batch gets what is still queued, in order.
    second = run_entity_batch(app, leased(queued[2:], first.entity_state), T0, limit=2)
    assert second.consumed == [3, 4]
    assert value_of(second.entity_state) == 1111
    assert len(queued) < MAX_BATCH_MESSAGES
    assert run_entity_batch(app, leased(queued), T0).consumed == [1, 2, 3, 4, 5]


def test_messages_a_lock_defers_wait_in_the_state_across_capped_batches() -> None:
    app = counter_app()
    queued = inbox(
        [
            lock_request("orch", [COUNTER]),
            signal("add", 1),  # deferred: the lock is orch's
            unlock("orch"),
            signal("add", 10),
        ]
    )
    whole = run_entity_batch(app, leased(queued), T0)
    first = run_entity_batch(app, leased(queued), T0, limit=2)
    assert first.consumed == [1, 2]
    deferred = SchedulerState.load(first.entity_state)
    assert deferred.lock_owner == "orch" and len(deferred.queue) == 1
    second = run_entity_batch(app, leased(queued[2:], first.entity_state), T0, limit=2)
    assert second.consumed == [3, 4]
    assert second.entity_state == whole.entity_state
    assert value_of(second.entity_state) == 11
