"""The PostgreSQL store: many workers on many machines, one database.

The semantics are the SQLite store's, statement for statement where it matters; what differs
is concurrency. Workers claim instances and activities with ``FOR UPDATE SKIP LOCKED``, so
they never wait on each other's claims. A checkpoint is one transaction fenced by the lease
owner on the instance row (and by the history primary key); the common steps of several
instances queued together share one statement, each step fenced on its own
(``Database.write_grouped``). Every transaction that makes work
visible, or changes what a client may be waiting for, sends a NOTIFY on the task hub's channel
as it commits, which wakes idle workers and waiting clients at once
(:mod:`durafn.store.postgres_changes`). The SQL is in :mod:`durafn.store.postgres_sql`, the
pool and the transactions in :mod:`durafn.store.postgres_connections`.

Messages to other instances are delivered without locking the target (two instances messaging
each other would otherwise deadlock), so a message may race with its target finishing and land
in a finished instance's inbox. The next claim sweeps such leftovers away, counting the raised
events as dropped, as the finishing checkpoint would have. Likewise a claim never hands out an
instance left with nothing to apply (its only visible messages were stale results, or were
consumed by another worker since the claim's scan began): it drops the stale ones and moves on.
Entities are the exception: a message to an entity creates its row, and the sender holds that
row (``FOR KEY SHARE``, which blocks only deletions) until it commits, so that
:meth:`PostgresStore.remove_entity` can never delete an entity a message is on its way to.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from durafn.core.errors import (
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceNotRunning,
    LeaseLost,
    StoreError,
)
from durafn.core.history import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceFailed,
    dump_event,
    history_rows,
    load_event,
)
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.store import DEFAULT_POOL_MAX
from durafn.store import postgres_sql as q
from durafn.store.base import (
    ENTITY_EXECUTION_ID,
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
    dump_failure,
    entity_record_values,
    to_micros,
    verb_for,
)
from durafn.store.postgres_changes import channel_name
from durafn.store.postgres_connections import Database, Session
from durafn.store.postgres_queries import RAISED_PREFIX, TERMINAL
from durafn.store.postgres_schema import DEFAULT_SCHEMA, quote_schema
from durafn.store.postgres_steps import PostgresSteps, is_step

# How many visible messages, in order, a batch claim reads to find its instances (the
# messages of leased instances among them are passed over).
_CLAIM_SCAN = 5_000

# (execution_id, visible_at, event text): a message as ``q.ENQUEUE`` queues it.
_Queued = tuple[str | None, int, str]


class PostgresStore(PostgresSteps):
    """A task hub in a PostgreSQL database.

    ``conninfo`` is a libpq connection string or ``postgresql://`` URL; the tables live in the
    PostgreSQL schema ``schema``, created (and migrated) on first use. Nothing connects before
    the first operation. ``max_size`` bounds its connections (opened on demand); one more
    connection LISTENs once :meth:`change_token` or :meth:`wait_for_change` is used.
    Raises ``StoreError`` for a connection string libpq cannot parse.
    """

    def __init__(
        self,
        conninfo: str,
        task_hub: str = "default",
        *,
        schema: str = DEFAULT_SCHEMA,
        max_size: int = DEFAULT_POOL_MAX,
    ) -> None:
        self.task_hub = task_hub
        self.schema = schema
        self._quoted = quote_schema(schema)
        self._db = Database(
            conninfo,
            schema,
            channel_name(schema, task_hub),
            max_size=max_size,
        )
        self._statements: dict[str, str] = {}

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (diagnostics; waiters poll while it is not)."""
        return self._db.changes.listening

    async def close(self) -> None:
        await self._db.close()

    # ------------------------------------------------------------------ change notification

    async def change_token(self) -> object:
        return await self._db.change_token()

    async def wait_for_change(self, token: object, timeout: float) -> None:
        await self._db.wait_for_change(token, timeout)

    # ------------------------------------------------------------------ instances

    async def create_instance(self, new: NewInstance, now: datetime) -> None:
        def tx(s: Session) -> None:
            self._insert_instance(s, new, now)

        await self._db.write(tx)

    async def create_instance_leased(
        self, new: NewInstance, now: datetime, owner: str, lease: timedelta
    ) -> OrchestrationWorkItem:
        check_starts_now(new, now)
        token = f"{owner}/{uuid.uuid4().hex[:12]}"
        until = now + lease
        started = new.started

        def tx(s: Session) -> OrchestrationWorkItem:
            self._insert_instance(s, new, now)
            s.notify = False  # leased to its creator: nothing for other workers to claim
            rows = s.fetchall(
                self._sql(q.LEASE_INSTANCE),
                self._key(
                    new.instance_id,
                    token=token,
                    until=to_micros(until),
                    eid=started.execution_id,
                    now=to_micros(now),
                    max=10_000,
                ),
            )
            assert rows, "a new instance's start message is visible to its own transaction"
            return OrchestrationWorkItem(
                instance_id=new.instance_id,
                execution_id=started.execution_id,
                name=started.name,
                status=RuntimeStatus.PENDING,
                lock_token=token,
                locked_until=until,
                messages=[InboxMessage(seq, load_event(text)) for seq, text in rows],
                history_length=0,
            )

        return await self._db.write(tx)

    def _insert_instance(self, s: Session, new: NewInstance, now: datetime) -> None:
        """Create ``new``, replacing a finished instance of that id; ``InstanceAlreadyExists``."""
        started = new.started
        visible = new.start_at if new.start_at and new.start_at > now else now
        values = self._key(
            new.instance_id,
            eid=started.execution_id,
            name=started.name,
            status=RuntimeStatus.PENDING.value,
            input=started.input,
            now=to_micros(now),
            scheduled=to_micros(new.start_at) if new.start_at else None,
            parent=started.parent_instance_id,
            visible=to_micros(visible),
            event=dump_event(started),
        )
        while True:
            row = s.fetchone(self._sql(q.LOCK_INSTANCE_STATUS), values)
            if row is not None:
                status = RuntimeStatus(row[0])
                if not status.is_terminal:
                    raise InstanceAlreadyExists(new.instance_id, status.value)
                self._delete_instance(s, new.instance_id)
            if s.fetchone(self._sql(q.INSERT_INSTANCE), values) is not None:
                s.notify = True
                return
            # Another transaction created the id since we looked: look again, under its lock.

    def _enqueue(self, s: Session, instance_id: str, messages: Sequence[_Queued]) -> None:
        """Queue messages for one instance, in this order."""
        if not messages:
            return
        executions, times, events = zip(*messages, strict=True)
        s.execute(
            self._sql(q.ENQUEUE),
            self._key(instance_id, eids=list(executions), times=list(times), events=list(events)),
        )
        s.notify = True

    async def send_message(self, instance_id: str, event: HistoryEvent, now: datetime) -> None:
        # A refused message is returned, not raised, so the drop count still commits.
        def tx(s: Session) -> InstanceNotRunning | None:
            row = s.fetchone(self._sql(q.LOCK_INSTANCE_FOR_MESSAGE), self._key(instance_id))
            if row is None:
                raise InstanceNotFound(instance_id)
            status = RuntimeStatus(row[0])
            if status.is_terminal:
                if isinstance(event, EventRaised):
                    s.execute(self._sql(q.COUNT_DROPPED), self._key(instance_id, count=1))
                    s.changed = True
                return InstanceNotRunning(instance_id, status.value, verb_for(event))
            visible = to_micros(now)
            # An instance scheduled to start later takes its messages from then on, except a
            # terminate, which may cancel the start.
            if row[1] is not None and not isinstance(event, ExecutionTerminated):
                visible = max(visible, row[1])
            self._enqueue(s, instance_id, [(None, visible, dump_event(event))])
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
        entity_record_values(instance_id)  # ValueError for an id that is not an entity's

        def tx(s: Session) -> None:
            self._create_entities(s, [instance_id], now)
            at = to_micros(visible_at or now)
            self._enqueue(s, instance_id, [(None, at, dump_event(event))])

        await self._db.write(tx)

    def _create_entities(self, s: Session, instance_ids: list[str], now: datetime) -> None:
        """Create the rows of the entities among ``instance_ids`` that have none, and hold every
        one of them against ``remove_entity`` until the transaction ends."""
        targets = sorted({i for i in instance_ids if i.startswith("@")})
        if not targets:
            return
        values = {
            "hub": self.task_hub,
            "iids": targets,
            "names": [entity_record_values(i)[0] for i in targets],
            "eid": ENTITY_EXECUTION_ID,
            "status": RuntimeStatus.RUNNING.value,
            "now": to_micros(now),
        }
        while True:
            if s.execute(self._sql(q.CREATE_ENTITIES), values):
                s.changed = True
            locked = s.fetchall(self._sql(q.LOCK_ENTITIES), values)
            if len(locked) == len(targets):
                return
            # A removal committed between the two statements: create those rows again.

    async def remove_entity(self, instance_id: str, entity_state: str | None) -> bool:
        values = self._key(instance_id, state=entity_state)

        def tx(s: Session) -> bool:
            if s.fetchone(self._sql(q.LOCK_ENTITY_FOR_REMOVAL), values) is None:
                return False
            removed = s.execute(self._sql(q.REMOVE_ENTITY), values) > 0
            s.changed = removed
            return removed

        return await self._db.write(tx)

    # ------------------------------------------------------------------ orchestration work

    async def lock_next_orchestration(
        self, owner: str, lease: timedelta, now: datetime, max_messages: int = 10_000
    ) -> OrchestrationWorkItem | None:
        def tx(s: Session) -> OrchestrationWorkItem | None:
            claimed = self._claim(s, owner, lease, now, 1, max_messages)
            return claimed[0] if claimed else None

        return await self._db.write(tx, durable=False)

    async def lock_next_orchestrations(
        self,
        owner: str,
        lease: timedelta,
        now: datetime,
        limit: int,
        max_messages: int = 10_000,
    ) -> list[OrchestrationWorkItem]:
        if limit <= 0 or not await self._any(q.ANY_CLAIMABLE_INSTANCE, now):
            return []

        def tx(s: Session) -> list[OrchestrationWorkItem]:
            return self._claim(s, owner, lease, now, limit, max_messages)

        return await self._db.write(tx, durable=False)

    async def _any(self, template: str, now: datetime) -> bool:
        """Whether the ``EXISTS`` query ``template`` finds work visible at ``now``."""
        values = {"hub": self.task_hub, "now": to_micros(now)}

        def read(s: Session) -> bool:
            row = s.fetchone(self._sql(template), values)
            return bool(row and row[0])

        return await self._db.read(read)

    def _candidates(self, s: Session, now: datetime, limit: int) -> list[tuple[Any, ...]]:
        """Up to ``limit`` claimable instances, locked, in the order of their first visible
        message: one read of the visible inbox for all of them (``CLAIM_INSTANCES``), or, when
        the messages it reads all belong to leased instances, the search of one further on."""
        values = {"hub": self.task_hub, "now": to_micros(now), "limit": limit}
        rows = s.fetchall(self._sql(q.CLAIM_INSTANCES), {**values, "scan": _CLAIM_SCAN})
        if not rows:
            row = s.fetchone(self._sql(q.CLAIM_INSTANCE), values)
            rows = [row] if row is not None else []
        return rows

    def _claim(
        self,
        s: Session,
        owner: str,
        lease: timedelta,
        now: datetime,
        limit: int,
        max_messages: int,
    ) -> list[OrchestrationWorkItem]:
        """Lease up to ``limit`` instances, those whose first visible message came first, in
        ``s``'s transaction."""
        items: list[OrchestrationWorkItem] = []
        while len(items) < limit:
            candidates = self._candidates(s, now, limit - len(items))
            if not candidates:
                break
            for row in candidates:
                item = self._lease(s, row, owner, lease, now, max_messages)
                if item is not None:
                    items.append(item)
        return items

    def _lease(
        self,
        s: Session,
        row: ClaimedRow,
        owner: str,
        lease: timedelta,
        now: datetime,
        max_messages: int,
    ) -> OrchestrationWorkItem | None:
        """Lease the instance of a candidate ``row``, locked by this transaction; None when it
        has nothing left to apply (its leftovers are swept: look for another)."""
        instance_id, execution_id, _, status, _, _ = row
        # A claim makes no work visible and changes nothing a client waits for: it wakes no
        # one (as on SQLite).
        if RuntimeStatus(status).is_terminal:
            self._drop_inbox(s, instance_id)  # leftovers of a race
            return None
        until = now + lease
        token = f"{owner}/{uuid.uuid4().hex[:12]}"
        rows = s.fetchall(
            self._sql(q.LEASE_INSTANCE),
            self._key(
                instance_id,
                token=token,
                until=to_micros(until),
                eid=execution_id,
                now=to_micros(now),
                max=max(1, max_messages),  # an episode applies one message at least
            ),
        )
        if not rows:
            return None
        messages = [InboxMessage(seq, load_event(text)) for seq, text in rows]
        return OrchestrationWorkItem.from_claimed_row(row, token, until, messages)

    def _drop_inbox(self, s: Session, instance_id: str) -> None:
        s.execute(self._sql(q.DROP_INBOX), self._key(instance_id, raised=RAISED_PREFIX))
        s.changed = True

    async def renew_orchestration_lease(
        self, item: OrchestrationWorkItem, lease: timedelta, now: datetime
    ) -> None:
        until = now + lease
        values = self._key(item.instance_id, until=to_micros(until), token=item.lock_token)

        def tx(s: Session) -> int:
            return s.execute(self._sql(q.RENEW_INSTANCE_LEASE), values)

        if await self._db.write(tx, durable=False) != 1:
            raise LeaseLost(f"lease on instance {item.instance_id!r} was lost")
        item.locked_until = until

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, retry_at: datetime | None = None
    ) -> None:
        # A lease that expires at ``retry_at`` keeps other workers off until then.
        until = to_micros(retry_at) if retry_at else None
        values = self._key(item.instance_id, until=until, token=item.lock_token)

        def tx(s: Session) -> None:
            s.notify = s.execute(self._sql(q.RELEASE_INSTANCE), values) > 0

        await self._db.write(tx, durable=False)

    async def read_inbox(
        self, item: OrchestrationWorkItem, now: datetime, max_messages: int = 10_000
    ) -> list[InboxMessage]:
        values = self._key(
            item.instance_id, now=to_micros(now), eid=item.execution_id, max=max_messages
        )

        def read(s: Session) -> list[InboxMessage]:
            rows = s.fetchall(self._sql(q.READ_INBOX), values)
            return [InboxMessage(seq, load_event(text)) for seq, text in rows]

        return await self._db.read(read)

    async def checkpoint(
        self, item: OrchestrationWorkItem, checkpoint: Checkpoint, now: datetime
    ) -> bool:
        check_checkpoint(checkpoint)
        if is_step(checkpoint):
            write, together, step, on_commit = self._checkpoint_step(item, checkpoint, now)
            fenced = await self._db.write_grouped(
                write, together, item.instance_id, step, on_commit=on_commit
            )
            return self._stepped(item, step, fenced)

        def tx(s: Session) -> None:
            self._apply_checkpoint(s, item, checkpoint, now)

        await self._db.write(tx, on_commit=checkpoint.on_commit)
        return True  # not looked at: the inbox is read

    def prepare_checkpoint(
        self, item: OrchestrationWorkItem, checkpoint: Checkpoint, now: datetime
    ) -> None:
        """Nothing (see ``BlockingCheckpoints``): no step of this store commits while the
        thread of its next activity runs (``checkpoint_blocking``), so none has time to
        spare for it."""
        return None

    def checkpoint_blocking(
        self,
        item: OrchestrationWorkItem,
        checkpoint: Checkpoint,
        now: datetime,
        *,
        before_commit: Callable[[bool], None] | None = None,
        prepared: object | None = None,
    ) -> bool:
        """:meth:`checkpoint` from a thread that waits for it (see ``BlockingCheckpoints``).
        ``before_commit`` is never called: a step is one statement that commits as it runs,
        and work started while it waits in the queue would take turns at the GIL with the
        connection thread that sends it (measured: no gain)."""
        check_blocking_checkpoint(checkpoint)
        if is_step(checkpoint):
            write, together, step, _ = self._checkpoint_step(item, checkpoint, now)
            fenced = self._db.write_grouped_blocking(write, together, item.instance_id, step)
            return self._stepped(item, step, fenced)

        def tx(s: Session) -> None:
            self._apply_checkpoint(s, item, checkpoint, now)

        self._db.write_blocking(tx)
        return True

    def _apply_checkpoint(
        self, s: Session, item: OrchestrationWorkItem, cp: Checkpoint, now: datetime
    ) -> None:
        iid = item.instance_id
        n = to_micros(now)
        finished = cp.status.is_terminal
        restart = cp.restart
        hold = to_micros(cp.hold_until) if cp.hold_until is not None else None
        updated = s.execute(
            self._sql(q.CHECKPOINT_INSTANCE),
            self._key(
                iid,
                status=cp.status.value,
                output=cp.output,
                custom=cp.custom_status,
                failure=dump_failure(cp.failure),
                now=n,
                completed=n if finished else None,
                eid=restart.execution_id if restart else item.execution_id,
                restart=restart is not None,
                input=restart.input if restart else None,
                length=0 if restart else item.history_length + len(cp.new_events),
                dropped=cp.dropped_events,
                entity_state=cp.entity_state,
                hold=hold,
                token=item.lock_token,
                first=item.history_length,
            ),
        )
        if updated != 1:
            raise LeaseLost(
                f"lease on instance {iid!r} was lost before its checkpoint, "
                "or its history was extended by another worker"
            )
        if cp.completed_activities:
            wanted = set(cp.completed_activities)
            taken = s.execute(
                self._sql(q.TAKE_HELD_ACTIVITIES),
                self._key(
                    iid, eid=item.execution_id, event_ids=sorted(wanted), token=item.lock_token
                ),
            )
            if taken != len(wanted):
                raise LeaseLost(
                    f"an activity of {iid!r} is no longer leased to the worker that ran it"
                )
        # Clients wait for status changes, and other workers for the released instance.
        s.notify = cp.wakes
        if cp.consumed:
            s.execute(self._sql(q.DELETE_MESSAGES), self._key(iid, seqs=cp.consumed))
        if restart is not None:
            self._restart(s, item, restart, cp.carryover, now)
            # An ending execution's signals and lock releases still go out.
            self._deliver(s, cp.messages, now)
            return
        self._append_history(s, item, cp.new_events)
        self._schedule_activities(s, item, cp, n)
        for sub in cp.sub_orchestrations:
            self._start_child(s, item, sub, now)
        for new in cp.new_instances:
            with contextlib.suppress(InstanceAlreadyExists):
                self._insert_instance(s, new, now)
        self._deliver(s, cp.messages, now)
        if finished:
            # Tasks first: a completion racing with this finish then commits before the sweep
            # of the inbox below (deleting its task waits for its row lock).
            s.execute(self._sql(q.DELETE_ACTIVITIES), self._key(iid))
            self._drop_inbox(s, iid)
            if cp.parent_message is not None:
                self._deliver(s, [cp.parent_message], now)

    def _append_history(
        self, s: Session, item: OrchestrationWorkItem, events: list[HistoryEvent]
    ) -> None:
        if not events:
            return
        rows = history_rows(item.history_length, events)
        values = self._key(
            item.instance_id,
            eid=item.execution_id,
            sequences=[sequence for sequence, _ in rows],
            events=[text for _, text in rows],
        )
        try:
            s.execute(self._sql(q.APPEND_HISTORY), values)
        except psycopg.errors.UniqueViolation as exc:
            raise LeaseLost(
                f"history of {item.instance_id!r} was extended by another worker"
            ) from exc

    def _schedule_activities(
        self, s: Session, item: OrchestrationWorkItem, cp: Checkpoint, n: int
    ) -> None:
        if not cp.activities:
            return
        held = cp.activities_held_until
        values = self._key(
            item.instance_id,
            eid=item.execution_id,
            now=n,
            held_by=item.lock_token if held is not None else None,
            hold=to_micros(held) if held is not None else None,
            event_ids=[a.event_id for a in cp.activities],
            names=[a.name for a in cp.activities],
            inputs=[a.input for a in cp.activities],
        )
        try:
            s.execute(self._sql(q.SCHEDULE_ACTIVITIES), values)
        except psycopg.errors.UniqueViolation as exc:
            raise StoreError(
                f"an activity of {item.instance_id!r} is already scheduled: {exc}"
            ) from exc

    def _restart(
        self,
        s: Session,
        item: OrchestrationWorkItem,
        started: ExecutionStarted,
        carryover: Iterable[EventRaised],
        now: datetime,
    ) -> None:
        n = to_micros(now)
        waiting = s.fetchall(self._sql(q.RESET_EXECUTION), self._key(item.instance_id))
        # The new execution starts, and receives its carried-over events, before the events that
        # arrived while the last episode ran: those are queued again behind them, in order.
        queue: list[_Queued] = [(None, n, dump_event(started))]
        queue += [(None, n, dump_event(event)) for event in carryover]
        queue += [(None, at, text) for _, eid, at, text in sorted(waiting) if eid is None]
        self._enqueue(s, item.instance_id, queue)

    def _start_child(
        self, s: Session, item: OrchestrationWorkItem, sub: NewInstance, now: datetime
    ) -> None:
        try:
            self._insert_instance(s, sub, now)
        except InstanceAlreadyExists as exc:
            parent_task = sub.started.parent_task_id
            assert parent_task is not None  # checked before the transaction began
            event = SubOrchestrationInstanceFailed(
                timestamp=now,
                task_scheduled_id=parent_task,
                failure=FailureDetails.from_exception(exc),
            )
            failed = (item.execution_id, to_micros(now), dump_event(event))
            self._enqueue(s, item.instance_id, [failed])

    def _deliver(self, s: Session, messages: list[OutgoingMessage], now: datetime) -> None:
        if not messages:
            return
        self._create_entities(s, [m.instance_id for m in messages], now)
        n = to_micros(now)
        values = {
            "hub": self.task_hub,
            "iids": [m.instance_id for m in messages],
            "eids": [m.execution_id for m in messages],
            "times": [to_micros(m.visible_at) if m.visible_at else n for m in messages],
            "events": [dump_event(m.event) for m in messages],
            "raised": [isinstance(m.event, EventRaised) for m in messages],
            "terminal": TERMINAL,
        }
        s.changed = True
        if s.execute(self._sql(q.DELIVER), values):
            s.notify = True

    # ------------------------------------------------------------------ activity work

    async def lock_next_activities(
        self, owner: str, lease: timedelta, now: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        if limit <= 0 or not await self._any(q.ANY_CLAIMABLE_ACTIVITY, now):
            return []
        until = now + lease
        values = {
            "hub": self.task_hub,
            "now": to_micros(now),
            "limit": limit,
            # One token per task: the claim's own prefix and the task's sequence number.
            "prefix": f"{owner}/{uuid.uuid4().hex[:12]}.",
            "until": to_micros(until),
        }

        def tx(s: Session) -> list[tuple[Any, ...]]:
            return s.fetchall(self._sql(q.CLAIM_ACTIVITIES), values)

        rows = await self._db.write(tx, durable=False)
        rows.sort(key=lambda r: (r[8], r[0]))  # (visible_at, seq), the order of the claim
        return [
            ActivityWorkItem(
                task_id=seq,
                instance_id=iid,
                execution_id=eid,
                event_id=event_id,
                name=name,
                input=input_,
                lock_token=token,
                locked_until=until,
                attempts=attempts,
            )
            for seq, iid, eid, event_id, name, input_, token, attempts, _ in rows
        ]

    def _task_key(self, item: ActivityWorkItem, **more: Any) -> dict[str, Any]:
        return self._key(item.instance_id, seq=item.task_id, token=item.lock_token, **more)

    async def renew_activity_lease(
        self, item: ActivityWorkItem, lease: timedelta, now: datetime
    ) -> None:
        until = now + lease
        values = self._task_key(item, until=to_micros(until))

        def tx(s: Session) -> int:
            return s.execute(self._sql(q.RENEW_ACTIVITY_LEASE), values)

        if await self._db.write(tx, durable=False) != 1:
            raise LeaseLost(f"lease on activity {item.name!r} #{item.event_id} was lost")
        item.locked_until = until

    async def complete_activity(
        self, item: ActivityWorkItem, result: HistoryEvent, now: datetime
    ) -> bool:
        def tx(s: Session) -> bool:
            if s.execute(self._sql(q.TAKE_ACTIVITY), self._task_key(item)) != 1:
                return False
            self._deliver(s, [OutgoingMessage(item.instance_id, result, item.execution_id)], now)
            return True

        return await self._db.write(tx, durable=False)

    async def abandon_activity(
        self, item: ActivityWorkItem, retry_at: datetime | None = None
    ) -> None:
        values = self._task_key(item, retry_at=to_micros(retry_at) if retry_at else None)

        def tx(s: Session) -> None:
            s.notify = s.execute(self._sql(q.RELEASE_ACTIVITY), values) > 0

        await self._db.write(tx, durable=False)
