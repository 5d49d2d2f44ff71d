"""PostgreSQL: the steps of several instances queued together commit in one statement.

Each step keeps its own fence (a lost lease fails that step alone) and says of its own inbox
whether messages wait; a group statement that fails as a whole (a history row that another
worker wrote meanwhile) leaves each step to run alone, and only the step at fault fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from durafn.core.errors import LeaseLost, StoreError
from durafn.core.history import OrchestratorStarted, SubOrchestrationInstanceCompleted, dump_event
from durafn.core.status import RuntimeStatus
from durafn.store.base import Checkpoint, InboxMessage, OrchestrationWorkItem, OutgoingMessage
from durafn.store.postgres import PostgresStore
from durafn.store.postgres_connections import Session

from .conftest import Backend, drop_postgres_schema, postgres_url
from .factories import (
    LEASE,
    T0,
    activity,
    at,
    completed,
    episode,
    raised,
    start_held,
    start_running,
    task_completed,
    task_scheduled,
)
from .test_postgres import _sql

IDS = ["a", "b", "c", "d", "e"]


@dataclass
class OneConnection:
    """A store of one connection on a fresh schema: what is submitted while it is busy queues."""

    store: PostgresStore
    url: str

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        return _sql(self.url, statement, params)


@pytest.fixture
def pg1(tmp_path: Path) -> Iterator[OneConnection]:
    backend = Backend("postgres", postgres_url(tmp_path) + "&pool_max=1")
    store = backend.open()
    assert isinstance(store, PostgresStore)
    try:
        yield OneConnection(store, backend.url)
    finally:
        asyncio.run(store.close())
        drop_postgres_schema(backend.url)


def _step(done: int, consumed: list[InboxMessage] | None = None) -> Checkpoint:
    """The result of held activity ``done`` (and the messages ``consumed``), and the next
    activity scheduled, held."""
    now = at(1)
    consumed = consumed or []
    events = [task_completed(done, '"r"', now), *(m.event for m in consumed)]
    return Checkpoint(
        new_events=episode(*events, task_scheduled(done + 1), now=now),
        consumed=[m.seq for m in consumed],
        status=RuntimeStatus.RUNNING,
        activities=[activity(done + 1)],
        completed_activities=[done],
        hold_until=T0 + LEASE,
    )


async def _steps_queued_together(
    store: PostgresStore,
    items: list[OrchestrationWorkItem],
    consumed: dict[str, list[InboxMessage]] | None = None,
) -> list[Any]:
    """One step of each of ``items`` (consuming what ``consumed`` says), submitted while the
    store's one connection is busy, so that they queue together; what each checkpoint
    returned or raised."""
    consumed = consumed or {}

    def busy(s: Session) -> None:
        s.execute("SELECT pg_sleep(0.3)")

    blocker = asyncio.ensure_future(store._db.read(busy))
    await asyncio.sleep(0.1)  # the connection's thread has taken it
    steps = [
        store.checkpoint(item, _step(0, consumed.get(item.instance_id)), at(1)) for item in items
    ]
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    await blocker
    return outcomes


def _stepped(pg1: OneConnection, instance_id: str, consumed: int = 0) -> bool:
    """Whether the step of ``instance_id`` (which consumed ``consumed`` messages) committed:
    its history has the step's events and its next activity is scheduled, held; else it is as
    ``_held`` left it."""
    length = pg1.sql(
        "SELECT history_length FROM {s}.instances WHERE instance_id = %s", (instance_id,)
    )[0][0]
    tasks = pg1.sql(
        "SELECT event_id, locked_by IS NOT NULL FROM {s}.activity_tasks "
        "WHERE instance_id = %s ORDER BY event_id",
        (instance_id,),
    )
    if length == 8 + consumed:
        assert tasks == [(1, True)]
        return True
    assert (length, tasks) == (4, [(0, True)])
    return False


def test_steps_queued_together_commit_in_one_statement(pg1: OneConnection) -> None:
    async def body() -> None:
        items = [await start_held(pg1.store, 0, instance_id=i) for i in IDS]
        await pg1.store.send_message("c", raised("go"), T0)
        await pg1.store.send_message("e", raised("go"), T0)
        inbox = await pg1.store.read_inbox(items[2], at(1))
        outcomes = await _steps_queued_together(pg1.store, items, {"c": inbox})
        # Whether messages may wait, instance by instance: "c" consumed its message.
        assert outcomes == [False, False, False, False, True]
        db = pg1.store._db
        assert (db.group_statements, db.grouped_writes, db.group_fallbacks) == (1, 5, 0)
        assert all(_stepped(pg1, i, consumed=int(i == "c")) for i in IDS)
        assert await pg1.store.read_inbox(items[2], at(1)) == []
        # The steps read back as written, and the next step goes on.
        for item in items:
            item.history_length += 4 + int(item.instance_id == "c")
            history = await pg1.store.get_history(item.instance_id)
            assert [e.kind for e in history][4:6] == ["OrchestratorStarted", "TaskCompleted"]
            assert history[-2].kind == "TaskScheduled"
        assert await pg1.store.checkpoint(items[0], _step(1), at(2)) is False

    asyncio.run(body())


def test_a_step_whose_lease_was_lost_fails_alone(pg1: OneConnection) -> None:
    async def body() -> None:
        items = [await start_held(pg1.store, 0, instance_id=i) for i in IDS]
        pg1.sql("UPDATE {s}.instances SET locked_by = 'another' WHERE instance_id = 'b'")
        outcomes = await _steps_queued_together(pg1.store, items)
        assert isinstance(outcomes[1], LeaseLost)
        assert [o for k, o in enumerate(outcomes) if k != 1] == [False] * 4
        assert pg1.store._db.group_statements == 1
        assert [_stepped(pg1, i) for i in IDS] == [True, False, True, True, True]

    asyncio.run(body())


def test_a_step_whose_activity_was_taken_fails_alone(pg1: OneConnection) -> None:
    async def body() -> None:
        items = [await start_held(pg1.store, 0, instance_id=i) for i in IDS]
        pg1.sql("UPDATE {s}.activity_tasks SET locked_by = 'another' WHERE instance_id = 'd'")
        outcomes = await _steps_queued_together(pg1.store, items)
        assert isinstance(outcomes[3], LeaseLost)
        assert [o for k, o in enumerate(outcomes) if k != 3] == [False] * 4
        assert [_stepped(pg1, i) for i in IDS[:3]] == [True] * 3
        assert _stepped(pg1, "e")

    asyncio.run(body())


def test_a_group_that_fails_as_a_whole_runs_its_steps_one_by_one(pg1: OneConnection) -> None:
    async def body() -> None:
        items = [await start_held(pg1.store, 0, instance_id=i) for i in IDS]
        # Another worker extended the history of "c" (its primary key refuses the step's rows).
        row = dump_event(OrchestratorStarted(timestamp=T0))
        pg1.sql(
            "INSERT INTO {s}.history (task_hub, instance_id, execution_id, sequence, event) "
            "SELECT task_hub, instance_id, execution_id, history_length, %s "
            "FROM {s}.instances WHERE instance_id = 'c'",
            (row,),
        )
        outcomes = await _steps_queued_together(pg1.store, items)
        assert isinstance(outcomes[2], LeaseLost)
        assert "extended by another worker" in str(outcomes[2])
        assert [o for k, o in enumerate(outcomes) if k != 2] == [False] * 4
        assert (pg1.store._db.group_statements, pg1.store._db.group_fallbacks) == (0, 1)
        assert [_stepped(pg1, i) for i in ("a", "b", "d", "e")] == [True] * 4

    asyncio.run(body())


def test_a_group_whose_connection_breaks_fails_its_steps_and_is_not_run_again(
    pg1: OneConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a statement in autocommit committed before its connection broke is unknown:
    like a lone write, the group is not run again; its steps fail, and the next operation
    gets a new connection."""
    together = PostgresStore._steps_together

    def broken(store: PostgresStore, s: Session, steps: list[Any]) -> list[bool]:
        s.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return together(store, s, steps)

    async def body() -> None:
        items = [await start_held(pg1.store, 0, instance_id=i) for i in IDS]
        monkeypatch.setattr(PostgresStore, "_steps_together", broken)
        outcomes = await _steps_queued_together(pg1.store, items)
        assert [type(o) for o in outcomes] == [StoreError] * 5
        assert not any(_stepped(pg1, i) for i in IDS)
        db = pg1.store._db
        assert (db.group_statements, db.group_fallbacks) == (0, 0)
        monkeypatch.setattr(PostgresStore, "_steps_together", together)
        assert await pg1.store.checkpoint(items[1], _step(0), at(2)) is False
        assert _stepped(pg1, "b")

    asyncio.run(body())


def _end(done: int, parent_message: OutgoingMessage | None = None) -> Checkpoint:
    """The result of held activity ``done``, and the instance completes (telling its parent)."""
    now = at(1)
    return Checkpoint(
        new_events=episode(task_completed(done, '"r"', now), completed(now=now), now=now),
        consumed=[],
        status=RuntimeStatus.COMPLETED,
        output='"done"',
        completed_activities=[done],
        parent_message=parent_message,
    )


def test_ends_queued_together_commit_in_one_statement(pg1: OneConnection) -> None:
    async def body() -> None:
        store = pg1.store
        await start_running(store, "p")
        items = [await start_held(store, 0, instance_id=i) for i in IDS]
        await store.send_message("b", raised("late"), T0)
        pg1.sql("UPDATE {s}.instances SET locked_by = 'another' WHERE instance_id = 'c'")
        told = OutgoingMessage(
            "p", SubOrchestrationInstanceCompleted(timestamp=at(1), task_scheduled_id=7), "e1"
        )

        def busy(s: Session) -> None:
            s.execute("SELECT pg_sleep(0.3)")

        blocker = asyncio.ensure_future(store._db.read(busy))
        await asyncio.sleep(0.1)
        ends = [
            store.checkpoint(item, _end(0, told if item.instance_id == "a" else None), at(1))
            for item in items
        ]
        outcomes = await asyncio.gather(*ends, return_exceptions=True)
        await blocker
        assert isinstance(outcomes[2], LeaseLost)
        assert [o for k, o in enumerate(outcomes) if k != 2] == [True] * 4
        db = store._db
        assert (db.group_statements, db.grouped_writes, db.group_fallbacks) == (1, 5, 0)
        rows = pg1.sql(
            "SELECT instance_id, status, output, locked_by, completed_at IS NOT NULL, "
            "dropped_events, history_length FROM {s}.instances WHERE instance_id <> 'p' "
            "ORDER BY instance_id"
        )
        done = ("Completed", '"done"', None, True)
        assert rows == [
            ("a", *done, 0, 8),
            ("b", *done, 1, 8),  # the event that reached it too late is counted as dropped
            ("c", "Running", None, "another", False, 0, 4),
            ("d", *done, 0, 8),
            ("e", *done, 0, 8),
        ]
        left = pg1.sql(
            "SELECT instance_id, count(*) FROM {s}.activity_tasks GROUP BY instance_id "
            "UNION ALL SELECT instance_id, count(*) FROM {s}.inbox GROUP BY instance_id"
        )
        assert sorted(left) == [("c", 1), ("p", 1)]
        parent = await store.lock_next_orchestrations("w2", LEASE, at(2), 1)
        assert [(p.instance_id, [m.event for m in p.messages]) for p in parent] == [
            ("p", [told.event])
        ]

    asyncio.run(body())


def test_a_step_behind_its_history_in_a_group_fails_alone(pg1: OneConnection) -> None:
    """The group statement fences each step by its instance row's history length: a step whose
    worker is behind (its sequence number keys no history row) fails alone, and the others
    commit in the one statement."""

    async def body() -> None:
        items = [await start_held(pg1.store, 0, instance_id=i) for i in IDS]
        items[2] = replace(items[2], history_length=items[2].history_length - 1)
        outcomes = await _steps_queued_together(pg1.store, items)
        assert isinstance(outcomes[2], LeaseLost)
        assert [o for k, o in enumerate(outcomes) if k != 2] == [False] * 4
        assert pg1.store._db.group_statements == 1
        assert [_stepped(pg1, i) for i in IDS] == [True, True, False, True, True]

    asyncio.run(body())
