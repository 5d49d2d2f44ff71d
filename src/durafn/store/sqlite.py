"""The SQLite store: one file, WAL mode, one writer at a time, durable commits by default.

Every write runs in a ``BEGIN IMMEDIATE`` transaction, so several worker processes on one file
serialize their claims and checkpoints; writes queued meanwhile in this process share the next
transaction (group commit, in :mod:`durafn.store.sqlite_connection`, which also owns the
connection's thread and the change signals).
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from durafn.core.errors import (
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceNotRunning,
    LeaseLost,
)
from durafn.core.history import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceFailed,
    dump_event,
    load_event,
)
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.store.base import (
    ActivityWorkItem,
    Checkpoint,
    ClaimedRow,
    InboxMessage,
    NewInstance,
    OrchestrationWorkItem,
    OutgoingMessage,
    check_blocking_checkpoint,
    check_checkpoint,
    check_starts_now,
    entity_record_values,
    from_micros,
    to_micros,
    verb_for,
)
from durafn.store.sqlite_checkpoint import CheckpointStatements, checkpoint_statements
from durafn.store.sqlite_connection import SqliteDatabase
from durafn.store.sqlite_queries import SqliteQueries

T = TypeVar("T")


_INSERT_INSTANCE = (
    "INSERT INTO instances (task_hub, instance_id, execution_id, name, status, input, "
    "created_at, updated_at, scheduled_start_at, parent_instance_id) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_TERMINAL = ",".join(f"'{status.value}'" for status in RuntimeStatus if status.is_terminal)
# Whether a claim could find anything (the claims' own conditions, as a read).
_ANY_CLAIMABLE_INSTANCE = (
    "SELECT 1 FROM inbox m "
    "JOIN instances i ON i.task_hub=m.task_hub AND i.instance_id=m.instance_id "
    "WHERE m.task_hub=:hub AND m.visible_at<=:now "
    "AND (i.lock_expires_at IS NULL OR i.lock_expires_at<=:now) LIMIT 1"
)
# The visible messages in order, each with whether no lease holds its instance (a claim reads
# as far as it needs).
_CLAIM_WALK = (
    "SELECT m.instance_id, i.lock_expires_at IS NULL OR i.lock_expires_at<=? "
    "FROM inbox m INDEXED BY inbox_by_visible "
    "CROSS JOIN instances i ON i.task_hub=m.task_hub AND i.instance_id=m.instance_id "
    "WHERE m.task_hub=? AND m.visible_at<=? ORDER BY m.visible_at, m.seq"
)
# A task by its step key and its id (which sets it apart from an earlier task of that key).
_THE_TASK = "task_hub=? AND instance_id=? AND execution_id=? AND event_id=? AND task_id=?"
# A task's visible_at is when it may next be claimed: when it is due or, while leased, when
# its lease expires.
_ANY_CLAIMABLE_ACTIVITY = (
    "SELECT 1 FROM activity_tasks WHERE task_hub=:hub AND visible_at<=:now LIMIT 1"
)


class SqliteStore(SqliteQueries):
    """A task hub in a SQLite file. ``synchronous="full"`` makes every commit durable."""

    def __init__(
        self,
        path: str | Path,
        task_hub: str = "default",
        *,
        synchronous: str = "full",
        busy_timeout: float = 60.0,
    ) -> None:
        self.task_hub = task_hub
        self.path = str(path)
        self._db = SqliteDatabase(self.path, synchronous=synchronous, busy_timeout=busy_timeout)

    @property
    def commits(self) -> int:
        """Transactions committed by this store object (a group commit counts once)."""
        return self._db.commits

    async def close(self) -> None:
        await self._db.close()

    # ------------------------------------------------------------------ change notification

    async def change_token(self) -> object:
        return self._db.token()

    async def wait_for_change(self, token: object, timeout: float) -> None:
        await self._db.wait_for_change(token, timeout)

    # ------------------------------------------------------------------ instances

    async def create_instance(self, new: NewInstance, now: datetime) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            self._insert_instance(conn, new, now, replace_finished=True)

        await self._db.write(tx)

    async def create_instance_leased(
        self, new: NewInstance, now: datetime, owner: str, lease: timedelta
    ) -> OrchestrationWorkItem:
        check_starts_now(new, now)

        def tx(conn: sqlite3.Connection) -> OrchestrationWorkItem:
            self._insert_instance(conn, new, now, replace_finished=True)
            token = f"{owner}/{uuid.uuid4().hex[:12]}"
            until = now + lease
            row = conn.execute(
                "UPDATE instances SET locked_by=?, lock_expires_at=? "
                "WHERE task_hub=? AND instance_id=? "
                "RETURNING instance_id, execution_id, name, status, history_length, entity_state",
                (token, to_micros(until), self.task_hub, new.instance_id),
            ).fetchone()
            [item] = self._work_items(conn, [(row, token)], now, until, 10_000)
            return item

        # Nothing it makes is for anyone else: no one to wake.
        return await self._db.write(tx, wakes=False)

    def _insert_instance(
        self, conn: sqlite3.Connection, new: NewInstance, now: datetime, replace_finished: bool
    ) -> bool:
        started = new.started
        values = (
            self.task_hub,
            new.instance_id,
            started.execution_id,
            started.name,
            RuntimeStatus.PENDING.value,
            started.input,
            to_micros(now),
            to_micros(now),
            to_micros(new.start_at) if new.start_at else None,
            started.parent_instance_id,
        )
        # Inserted unless the id is taken (one statement for a new id, the usual case).
        inserted = conn.execute(_INSERT_INSTANCE + " ON CONFLICT DO NOTHING", values).rowcount
        if not inserted:
            row = conn.execute(
                "SELECT status FROM instances WHERE task_hub=? AND instance_id=?",
                (self.task_hub, new.instance_id),
            ).fetchone()
            status = RuntimeStatus(row[0])
            if not status.is_terminal or not replace_finished:
                raise InstanceAlreadyExists(new.instance_id, status.value)
            self._delete_instance(conn, new.instance_id)
            conn.execute(_INSERT_INSTANCE, values)
        visible = new.start_at if new.start_at and new.start_at > now else now
        self._enqueue(conn, new.instance_id, started, None, visible)
        return True

    def _enqueue(
        self,
        conn: sqlite3.Connection,
        instance_id: str,
        event: HistoryEvent,
        execution_id: str | None,
        visible_at: datetime,
    ) -> None:
        conn.execute(
            "INSERT INTO inbox (task_hub, instance_id, execution_id, visible_at, event) "
            "VALUES (?,?,?,?,?)",
            (self.task_hub, instance_id, execution_id, to_micros(visible_at), dump_event(event)),
        )

    async def send_message(self, instance_id: str, event: HistoryEvent, now: datetime) -> None:
        # A refused message is returned, not raised, so the drop count still commits.
        def tx(conn: sqlite3.Connection) -> InstanceNotRunning | None:
            row = conn.execute(
                "SELECT status, scheduled_start_at FROM instances "
                "WHERE task_hub=? AND instance_id=?",
                (self.task_hub, instance_id),
            ).fetchone()
            if row is None:
                raise InstanceNotFound(instance_id)
            status = RuntimeStatus(row[0])
            if status.is_terminal:
                if isinstance(event, EventRaised):
                    self._count_dropped(conn, instance_id, 1)
                return InstanceNotRunning(instance_id, status.value, verb_for(event))
            visible = now
            # An instance scheduled to start later takes its messages from then on, except a
            # terminate, which may cancel the start.
            if row[1] is not None and not isinstance(event, ExecutionTerminated):
                visible = max(now, from_micros(row[1]))
            self._enqueue(conn, instance_id, event, None, visible)
            return None

        refused = await self._db.write(tx)
        if refused is not None:
            raise refused

    async def send_entity_message(
        self,
        instance_id: str,
        event: HistoryEvent,
        now: datetime,
        visible_at: datetime | None = None,
    ) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            self._create_entity(conn, instance_id, now)
            self._enqueue(conn, instance_id, event, None, visible_at or now)

        await self._db.write(tx)

    def _create_entity(self, conn: sqlite3.Connection, instance_id: str, now: datetime) -> None:
        name, execution_id, status = entity_record_values(instance_id)
        conn.execute(
            "INSERT INTO instances (task_hub, instance_id, execution_id, name, status, "
            "created_at, updated_at) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT (task_hub, instance_id) DO NOTHING",
            (
                self.task_hub,
                instance_id,
                execution_id,
                name,
                status.value,
                to_micros(now),
                to_micros(now),
            ),
        )

    async def remove_entity(self, instance_id: str, entity_state: str | None) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            if not instance_id.startswith("@"):
                return False
            row = conn.execute(
                "SELECT entity_state, locked_by, "
                "EXISTS (SELECT 1 FROM inbox WHERE task_hub=? AND instance_id=?) "
                "FROM instances WHERE task_hub=? AND instance_id=?",
                (self.task_hub, instance_id, self.task_hub, instance_id),
            ).fetchone()
            if row is None or row[0] != entity_state or row[1] is not None or row[2]:
                return False
            self._delete_instance(conn, instance_id)
            return True

        return await self._db.write(tx)

    def _count_dropped(self, conn: sqlite3.Connection, instance_id: str, count: int) -> None:
        if count:
            conn.execute(
                "UPDATE instances SET dropped_events = dropped_events + ? "
                "WHERE task_hub=? AND instance_id=?",
                (count, self.task_hub, instance_id),
            )

    # ------------------------------------------------------------------ orchestration work

    async def lock_next_orchestration(
        self, owner: str, lease: timedelta, now: datetime, max_messages: int = 10_000
    ) -> OrchestrationWorkItem | None:
        def tx(conn: sqlite3.Connection) -> OrchestrationWorkItem | None:
            items = self._claim(conn, owner, lease, now, 1, max_messages)
            return items[0] if items else None

        return await self._db.write(tx, durable=False)

    async def lock_next_orchestrations(
        self,
        owner: str,
        lease: timedelta,
        now: datetime,
        limit: int,
        max_messages: int = 10_000,
    ) -> list[OrchestrationWorkItem]:
        if limit <= 0 or not await self._any(_ANY_CLAIMABLE_INSTANCE, now):
            return []

        def tx(conn: sqlite3.Connection) -> list[OrchestrationWorkItem]:
            return self._claim(conn, owner, lease, now, limit, max_messages)

        return await self._db.write(tx, durable=False)

    async def _any(self, query: str, now: datetime) -> bool:
        """Whether ``query`` (``SELECT 1 ... LIMIT 1`` over ``:hub`` and ``:now``) finds work
        visible at ``now``: a read on the caller's thread spares an idle worker the claim's hop
        to the writer."""
        params = {"hub": self.task_hub, "now": to_micros(now)}

        def read(conn: sqlite3.Connection) -> bool:
            return conn.execute(query, params).fetchone() is not None

        return await self._db.read(read)

    def _claim(
        self,
        conn: sqlite3.Connection,
        owner: str,
        lease: timedelta,
        now: datetime,
        limit: int,
        max_messages: int,
    ) -> list[OrchestrationWorkItem]:
        """Lease up to ``limit`` instances in the order of their first visible message, in
        ``conn``'s transaction: one walk of the visible messages, in order, stopped once it has
        found them (a search per instance walked again past the messages of the instances
        leased before it); then one statement leases each and one reads their messages."""
        n = to_micros(now)
        until = to_micros(now + lease)
        hub = self.task_hub
        found: dict[str, None] = {}
        for instance_id, free in conn.execute(_CLAIM_WALK, (n, hub, n)):
            if free:
                found[instance_id] = None
                if len(found) >= limit:
                    break
        leased: list[tuple[ClaimedRow, str]] = []
        for instance_id in found:
            token = f"{owner}/{uuid.uuid4().hex[:12]}"
            row = conn.execute(
                "UPDATE instances SET locked_by=?, lock_expires_at=? "
                "WHERE task_hub=? AND instance_id=? "
                "RETURNING instance_id, execution_id, name, status, history_length, entity_state",
                (token, until, hub, instance_id),
            ).fetchone()
            leased.append((row, token))
        return self._work_items(conn, leased, now, now + lease, max_messages)

    def _work_items(
        self,
        conn: sqlite3.Connection,
        leased: list[tuple[ClaimedRow, str]],
        now: datetime,
        until: datetime,
        max_messages: int,
    ) -> list[OrchestrationWorkItem]:
        """The work items of instances just leased (their rows, and their tokens)."""
        if not leased:
            return []
        n = to_micros(now)
        hub = self.task_hub
        messages: dict[str, list[InboxMessage]] = {row[0]: [] for row, _ in leased}
        executions = {row[0]: row[1] for row, _ in leased}
        stale: list[tuple[str, str, int]] = []
        marks = ",".join("?" * len(leased))
        # The first ``max_messages`` of each (a negative cap, as SQLite's LIMIT, caps nothing).
        for iid, seq, execution_id, text in conn.execute(
            "SELECT instance_id, seq, execution_id, event FROM ("
            "SELECT instance_id, seq, execution_id, event, "
            "ROW_NUMBER() OVER (PARTITION BY instance_id ORDER BY seq) AS position "
            "FROM inbox INDEXED BY inbox_by_instance "
            f"WHERE task_hub=? AND instance_id IN ({marks}) AND visible_at<=?) "
            "WHERE ? < 0 OR position <= ?",
            (hub, *messages, n, max_messages, max_messages),
        ):
            if execution_id is None or execution_id == executions[iid]:
                messages[iid].append(InboxMessage(seq, load_event(text)))
            else:
                stale.append((hub, iid, seq))
        # Results and timers of an earlier execution can never apply: dropped as they come due.
        if stale:
            conn.executemany(
                "DELETE FROM inbox WHERE task_hub=? AND instance_id=? AND seq=?", stale
            )
        for queued in messages.values():
            queued.sort(key=lambda m: m.seq)  # arrival order (the rows come in it anyway)
        return [
            OrchestrationWorkItem.from_claimed_row(row, token, until, messages[row[0]])
            for row, token in leased
        ]

    async def renew_orchestration_lease(
        self, item: OrchestrationWorkItem, lease: timedelta, now: datetime
    ) -> None:
        until = now + lease

        def tx(conn: sqlite3.Connection) -> None:
            values = (to_micros(until), self.task_hub, item.instance_id, item.lock_token)
            cursor = conn.execute(
                "UPDATE instances SET lock_expires_at=? "
                "WHERE task_hub=? AND instance_id=? AND locked_by=?",
                values,
            )
            if cursor.rowcount != 1:
                raise LeaseLost(f"lease on instance {item.instance_id!r} was lost")
            conn.execute(
                "UPDATE activity_tasks SET visible_at=? "
                "WHERE task_hub=? AND instance_id=? AND locked_by=?",
                values,
            )

        await self._db.write(tx, durable=False)
        # Only once committed: the item says what the row holds (checkpoints rely on it).
        item.locked_until = until

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, retry_at: datetime | None = None
    ) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            # A lease that expires at ``retry_at`` keeps other workers off until then.
            conn.execute(
                "UPDATE instances SET locked_by=NULL, lock_expires_at=? "
                "WHERE task_hub=? AND instance_id=? AND locked_by=?",
                (
                    to_micros(retry_at) if retry_at else None,
                    self.task_hub,
                    item.instance_id,
                    item.lock_token,
                ),
            )
            # Its held activities may run elsewhere at once (they were due when scheduled).
            conn.execute(
                "UPDATE activity_tasks SET locked_by=NULL, visible_at=0 "
                "WHERE task_hub=? AND instance_id=? AND locked_by=?",
                (self.task_hub, item.instance_id, item.lock_token),
            )

        await self._db.write(tx, durable=False, wakes=True)

    async def read_inbox(
        self, item: OrchestrationWorkItem, now: datetime, max_messages: int = 10_000
    ) -> list[InboxMessage]:
        def read(conn: sqlite3.Connection) -> list[InboxMessage]:
            return [
                InboxMessage(seq, load_event(text))
                for seq, text in conn.execute(
                    "SELECT seq, event FROM inbox INDEXED BY inbox_by_instance "
                    "WHERE task_hub=? AND instance_id=? "
                    "AND visible_at<=? AND (execution_id IS NULL OR execution_id=?) "
                    "ORDER BY seq LIMIT ?",
                    (
                        self.task_hub,
                        item.instance_id,
                        to_micros(now),
                        item.execution_id,
                        max_messages,
                    ),
                )
            ]

        return await self._db.read(read)

    async def checkpoint(
        self, item: OrchestrationWorkItem, checkpoint: Checkpoint, now: datetime
    ) -> bool:
        check_checkpoint(checkpoint)
        # Built on the writer thread, in the transaction: the event loop has enough to do.
        tx = self._checkpoint_tx(item, checkpoint, now, None)
        return await self._db.write(tx, wakes=checkpoint.wakes, on_commit=checkpoint.on_commit)

    def prepare_checkpoint(
        self, item: OrchestrationWorkItem, checkpoint: Checkpoint, now: datetime
    ) -> CheckpointStatements:
        """The parameters of the checkpoint's common statements (see ``BlockingCheckpoints``):
        built on the thread that calls this, ahead of the transaction."""
        return checkpoint_statements(self.task_hub, item, checkpoint, now)

    def checkpoint_blocking(
        self,
        item: OrchestrationWorkItem,
        checkpoint: Checkpoint,
        now: datetime,
        *,
        before_commit: Callable[[bool], None] | None = None,
        prepared: object | None = None,
    ) -> bool:
        """:meth:`checkpoint` from a thread that waits for it (see ``BlockingCheckpoints``):
        ``before_commit`` is called before the ``COMMIT``, once the statements have run,
        among them the one that says whether a message waits in the inbox. ``prepared``:
        what :meth:`prepare_checkpoint` returned for the same arguments."""
        check_blocking_checkpoint(checkpoint)
        ahead = prepared if isinstance(prepared, CheckpointStatements) else None
        tx = self._checkpoint_tx(item, checkpoint, now, ahead)
        return self._db.write_blocking(tx, wakes=checkpoint.wakes, before_commit=before_commit)

    def _checkpoint_tx(
        self,
        item: OrchestrationWorkItem,
        checkpoint: Checkpoint,
        now: datetime,
        prepared: CheckpointStatements | None,
    ) -> Callable[[sqlite3.Connection], bool]:
        """The transaction of a checkpoint, with the parameters ``prepared`` ahead, or (None)
        built as it runs."""

        def tx(conn: sqlite3.Connection) -> bool:
            statements = prepared or checkpoint_statements(self.task_hub, item, checkpoint, now)
            self._apply_checkpoint(conn, item, checkpoint, now, statements)
            if checkpoint.hold_until is None:
                return True
            # Inside the write transaction (a write queued behind it in the same batch, a
            # message say, is heard of at the next commit).
            waiting = conn.execute(
                "SELECT 1 FROM inbox INDEXED BY inbox_by_instance "
                "WHERE task_hub=? AND instance_id=? AND visible_at<=? "
                "AND (execution_id IS NULL OR execution_id=?) LIMIT 1",
                (self.task_hub, item.instance_id, statements.now, item.execution_id),
            ).fetchone()
            return waiting is not None

        return tx

    def _apply_checkpoint(
        self,
        conn: sqlite3.Connection,
        item: OrchestrationWorkItem,
        cp: Checkpoint,
        now: datetime,
        statements: CheckpointStatements,
    ) -> None:
        hub, iid = self.task_hub, item.instance_id
        cursor = conn.execute(
            f"UPDATE instances SET {statements.sets} "
            "WHERE task_hub=? AND instance_id=? AND locked_by=? AND history_length=?",
            statements.values,
        )
        if cursor.rowcount != 1:
            raise LeaseLost(
                f"lease on instance {iid!r} was lost before its checkpoint, "
                "or its history was extended by another worker"
            )
        done = statements.done
        if done:
            cursor = conn.executemany(
                "DELETE FROM activity_tasks WHERE task_hub=? AND instance_id=? "
                "AND execution_id=? AND event_id=? AND locked_by=?",
                done,
            )
            if cursor.rowcount != len(done):
                raise LeaseLost(
                    f"an activity of {iid!r} is no longer leased to the worker that ran it"
                )
        self._count_dropped(conn, iid, cp.dropped_events)
        if cp.consumed:
            conn.executemany(
                "DELETE FROM inbox WHERE task_hub=? AND instance_id=? AND seq=?",
                [(hub, iid, seq) for seq in cp.consumed],
            )
        if cp.restart is not None:
            self._restart(conn, item, cp.restart, cp.carryover, now)
            for message in cp.messages:  # an ending execution's signals and lock releases
                self._deliver(conn, message, now)
            return
        if statements.history:
            try:
                conn.executemany(
                    "INSERT INTO history (task_hub, instance_id, execution_id, sequence, event) "
                    "VALUES (?,?,?,?,?)",
                    statements.history,
                )
            except sqlite3.IntegrityError as exc:
                raise LeaseLost(f"history of {iid!r} was extended by another worker") from exc
        if statements.activities:
            conn.executemany(
                "INSERT INTO activity_tasks (task_hub, instance_id, execution_id, event_id, "
                "name, input, visible_at, locked_by, attempts, task_id) "
                "VALUES (?,?,?,?,?,?,?,?,?,random())",
                statements.activities,
            )
        for sub in cp.sub_orchestrations:
            self._start_child(conn, item, sub, now)
        for new in cp.new_instances:
            with contextlib.suppress(InstanceAlreadyExists):
                self._insert_instance(conn, new, now, replace_finished=True)
        for message in cp.messages:
            self._deliver(conn, message, now)
        if cp.status.is_terminal:
            # What is left in the inbox goes; the raised events among it count as dropped.
            left = conn.execute(
                "DELETE FROM inbox WHERE task_hub=? AND instance_id=? "
                'RETURNING event LIKE \'{"kind":"EventRaised"%\'',
                (hub, iid),
            ).fetchall()
            self._count_dropped(conn, iid, sum(raised for (raised,) in left))
            conn.execute(
                "DELETE FROM activity_tasks WHERE task_hub=? AND instance_id=?", (hub, iid)
            )
            if cp.parent_message is not None:
                self._deliver(conn, cp.parent_message, now)

    def _restart(
        self,
        conn: sqlite3.Connection,
        item: OrchestrationWorkItem,
        started: ExecutionStarted,
        carryover: Iterable[EventRaised],
        now: datetime,
    ) -> None:
        hub, iid = self.task_hub, item.instance_id
        conn.execute("DELETE FROM history WHERE task_hub=? AND instance_id=?", (hub, iid))
        conn.execute("DELETE FROM activity_tasks WHERE task_hub=? AND instance_id=?", (hub, iid))
        # The new execution starts, and receives its carried-over events, before the events that
        # arrived while the last episode ran: those are queued again behind them, in order.
        waiting = conn.execute(
            "DELETE FROM inbox WHERE task_hub=? AND instance_id=? "
            "RETURNING seq, execution_id, visible_at, event",
            (hub, iid),
        ).fetchall()
        self._enqueue(conn, iid, started, None, now)
        for event in carryover:
            self._enqueue(conn, iid, event, None, now)
        for _, execution_id, visible_at, text in sorted(waiting):
            if execution_id is None:
                conn.execute(
                    "INSERT INTO inbox (task_hub, instance_id, execution_id, visible_at, event) "
                    "VALUES (?,?,NULL,?,?)",
                    (hub, iid, visible_at, text),
                )

    def _start_child(
        self, conn: sqlite3.Connection, item: OrchestrationWorkItem, sub: NewInstance, now: datetime
    ) -> None:
        try:
            self._insert_instance(conn, sub, now, replace_finished=True)
        except InstanceAlreadyExists as exc:
            parent_task = sub.started.parent_task_id
            assert parent_task is not None
            failure = FailureDetails.from_exception(exc)
            event = SubOrchestrationInstanceFailed(
                timestamp=now, task_scheduled_id=parent_task, failure=failure
            )
            self._enqueue(conn, item.instance_id, event, item.execution_id, now)

    def _deliver(self, conn: sqlite3.Connection, message: OutgoingMessage, now: datetime) -> None:
        if message.instance_id.startswith("@"):
            self._create_entity(conn, message.instance_id, now)
        # Queued only for a running instance (and its execution, when the message names one).
        queued = conn.execute(
            "INSERT INTO inbox (task_hub, instance_id, execution_id, visible_at, event) "
            "SELECT task_hub, instance_id, ?, ?, ? FROM instances "
            f"WHERE task_hub=? AND instance_id=? AND status NOT IN ({_TERMINAL}) "
            "AND (?1 IS NULL OR execution_id=?1)",
            (
                message.execution_id,
                to_micros(message.visible_at or now),
                dump_event(message.event),
                self.task_hub,
                message.instance_id,
            ),
        ).rowcount
        if not queued and isinstance(message.event, EventRaised):
            # An event that reaches a finished instance counts as dropped.
            row = conn.execute(
                "SELECT status FROM instances WHERE task_hub=? AND instance_id=?",
                (self.task_hub, message.instance_id),
            ).fetchone()
            if row is not None and RuntimeStatus(row[0]).is_terminal:
                self._count_dropped(conn, message.instance_id, 1)

    # ------------------------------------------------------------------ activity work

    async def lock_next_activities(
        self, owner: str, lease: timedelta, now: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        if limit <= 0 or not await self._any(_ANY_CLAIMABLE_ACTIVITY, now):
            return []

        def tx(conn: sqlite3.Connection) -> list[ActivityWorkItem]:
            n = to_micros(now)
            until = now + lease
            rows = conn.execute(
                "SELECT instance_id, execution_id, event_id FROM activity_tasks "
                "WHERE task_hub=? AND visible_at<=? ORDER BY visible_at LIMIT ?",
                (self.task_hub, n, limit),
            ).fetchall()
            items = []
            for iid, eid, event_id in rows:
                token = f"{owner}/{uuid.uuid4().hex[:12]}"
                name, input_, attempts, task_id = conn.execute(
                    "UPDATE activity_tasks SET locked_by=?, visible_at=?, attempts=attempts+1 "
                    "WHERE task_hub=? AND instance_id=? AND execution_id=? AND event_id=? "
                    "RETURNING name, input, attempts, task_id",
                    (token, to_micros(until), self.task_hub, iid, eid, event_id),
                ).fetchone()
                items.append(
                    ActivityWorkItem(
                        task_id=task_id,
                        instance_id=iid,
                        execution_id=eid,
                        event_id=event_id,
                        name=name,
                        input=input_,
                        lock_token=token,
                        locked_until=until,
                        attempts=attempts,
                    )
                )
            return items

        return await self._db.write(tx, durable=False)

    async def renew_activity_lease(
        self, item: ActivityWorkItem, lease: timedelta, now: datetime
    ) -> None:
        until = now + lease

        def tx(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(
                f"UPDATE activity_tasks SET visible_at=? WHERE {_THE_TASK} AND locked_by=?",
                (to_micros(until), *self._task_key(item), item.lock_token),
            )
            if cursor.rowcount != 1:
                raise LeaseLost(f"lease on activity {item.name!r} #{item.event_id} was lost")

        await self._db.write(tx, durable=False)
        item.locked_until = until

    def _task_key(self, item: ActivityWorkItem) -> tuple[str, str, str, int, int]:
        return (self.task_hub, item.instance_id, item.execution_id, item.event_id, item.task_id)

    async def complete_activity(
        self, item: ActivityWorkItem, result: HistoryEvent, now: datetime
    ) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"DELETE FROM activity_tasks WHERE {_THE_TASK} "
                "AND (locked_by=? OR locked_by IS NULL)",
                (*self._task_key(item), item.lock_token),
            )
            if cursor.rowcount != 1:
                return False
            self._deliver(conn, OutgoingMessage(item.instance_id, result, item.execution_id), now)
            return True

        return await self._db.write(tx, durable=False, wakes=True)

    async def abandon_activity(
        self, item: ActivityWorkItem, retry_at: datetime | None = None
    ) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"UPDATE activity_tasks SET locked_by=NULL, visible_at=? WHERE {_THE_TASK} "
                "AND locked_by=?",
                (to_micros(retry_at) if retry_at else 0, *self._task_key(item), item.lock_token),
            )

        await self._db.write(tx, durable=False, wakes=True)
