"""The in-memory store: a task hub in this process's memory, for tests and notebooks.

Every :class:`MemoryStore` opened with the same ``name`` shares one database (as SQLite
connections share a file), so a client and a worker of one process may open it separately,
from different threads and event loops. One lock guards the database; every operation runs
under it without awaiting, so each is atomic. Data lives until the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from durafn.core.errors import (
    InstanceAlreadyExists,
    InstanceNotFound,
    InstanceNotRunning,
    InstanceStillRunning,
    LeaseLost,
    StoreError,
)
from durafn.core.history import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceFailed,
)
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.store.base import (
    ActivityWorkItem,
    Backlog,
    Checkpoint,
    InboxMessage,
    InstancePage,
    InstanceQuery,
    InstanceRecord,
    NewInstance,
    OrchestrationWorkItem,
    OutgoingMessage,
    check_checkpoint,
    check_starts_now,
    decode_page_token,
    encode_page_token,
    entity_record_values,
    from_micros,
    matches_query,
    purge_scope,
    to_micros,
    verb_for,
)
from durafn.store.signals import ChangeSignal


@dataclass
class _Message:
    seq: int
    execution_id: str | None
    visible_at: int
    event: HistoryEvent


@dataclass
class _Task:
    seq: int
    instance_id: str
    execution_id: str
    event_id: int
    name: str
    input: str | None
    visible_at: int
    locked_by: str | None = None
    lock_expires_at: int | None = None
    attempts: int = 0


@dataclass
class _Instance:
    record: InstanceRecord
    locked_by: str | None = None
    lock_expires_at: int | None = None
    dropped_events: int = 0
    # execution id -> sequence -> event: a second append at a taken sequence is detected, as
    # the SQL stores detect it by the history length on the instance row and the history's key.
    history: dict[str, dict[int, HistoryEvent]] = field(default_factory=dict)
    # seq -> message, in arrival order (seqs only grow).
    inbox: dict[int, _Message] = field(default_factory=dict)


@dataclass
class _Hub:
    instances: dict[str, _Instance] = field(default_factory=dict)
    tasks: dict[int, _Task] = field(default_factory=dict)

    def drop_tasks(self, instance_id: str) -> None:
        for seq in [s for s, t in self.tasks.items() if t.instance_id == instance_id]:
            del self.tasks[seq]


class _Database:
    """The state behind one ``memory://name``: task hubs, sequence counter, change signal."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hubs: dict[str, _Hub] = {}
        self.signal = ChangeSignal()
        self._last_seq = 0

    def next_seq(self) -> int:
        self._last_seq += 1
        return self._last_seq

    def changed(self) -> None:
        """Record a write and wake every waiter, whatever its thread and loop."""
        self.signal.changed()


_DATABASES: dict[str, _Database] = {}
_DATABASES_LOCK = threading.Lock()


def _database(name: str) -> _Database:
    with _DATABASES_LOCK:
        return _DATABASES.setdefault(name, _Database())


def _moment(value: datetime) -> datetime:
    """``value`` as the SQL stores give it back: UTC, whole microseconds."""
    return from_micros(to_micros(value))


class MemoryStore:
    """A task hub in process memory, shared by every ``MemoryStore`` with the same ``name``."""

    def __init__(self, name: str, task_hub: str = "default") -> None:
        self.name = name
        self.task_hub = task_hub
        self._db = _database(name)
        self._closed = False

    def _hub(self) -> _Hub:
        """The task hub's state; call with the lock held."""
        if self._closed:
            raise StoreError("the store is closed")
        return self._db.hubs.setdefault(self.task_hub, _Hub())

    async def close(self) -> None:
        self._closed = True

    # ------------------------------------------------------------------ change notification

    async def change_token(self) -> object:
        with self._db.lock:
            self._hub()
        return self._db.signal.version

    async def wait_for_change(self, token: object, timeout: float) -> None:
        with self._db.lock:
            self._hub()
        with self._db.signal.subscription() as changed:
            if self._db.signal.version != token:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, timeout)):
                    await changed.wait()

    # ------------------------------------------------------------------ instances

    async def create_instance(self, new: NewInstance, now: datetime) -> None:
        with self._db.lock:
            self._insert_instance(self._hub(), new, now)
            self._db.changed()

    async def create_instance_leased(
        self, new: NewInstance, now: datetime, owner: str, lease: timedelta
    ) -> OrchestrationWorkItem:
        check_starts_now(new, now)
        with self._db.lock:
            hub = self._hub()
            self._insert_instance(hub, new, now)
            # Leased to its creator: nothing for anyone else, no one to wake.
            return self._lease(hub.instances[new.instance_id], owner, lease, now, 10_000)

    def _insert_instance(self, hub: _Hub, new: NewInstance, now: datetime) -> None:
        existing = hub.instances.get(new.instance_id)
        if existing is not None:
            if not existing.record.status.is_terminal:
                raise InstanceAlreadyExists(new.instance_id, existing.record.status.value)
            del hub.instances[new.instance_id]
            hub.drop_tasks(new.instance_id)
        started = new.started
        record = InstanceRecord(
            instance_id=new.instance_id,
            name=started.name,
            execution_id=started.execution_id,
            status=RuntimeStatus.PENDING,
            created_at=_moment(now),
            updated_at=_moment(now),
            input=started.input,
            parent_instance_id=started.parent_instance_id,
            scheduled_start_at=_moment(new.start_at) if new.start_at else None,
        )
        instance = hub.instances[new.instance_id] = _Instance(record)
        visible = new.start_at if new.start_at and new.start_at > now else now
        self._enqueue(instance, started, None, visible)

    def _enqueue(
        self,
        instance: _Instance,
        event: HistoryEvent,
        execution_id: str | None,
        visible_at: datetime,
    ) -> None:
        seq = self._db.next_seq()
        instance.inbox[seq] = _Message(seq, execution_id, to_micros(visible_at), event)

    async def send_message(self, instance_id: str, event: HistoryEvent, now: datetime) -> None:
        with self._db.lock:
            instance = self._hub().instances.get(instance_id)
            if instance is None:
                raise InstanceNotFound(instance_id)
            record = instance.record
            if record.status.is_terminal:
                if isinstance(event, EventRaised):
                    instance.dropped_events += 1
                    self._db.changed()
                raise InstanceNotRunning(instance_id, record.status.value, verb_for(event))
            visible = now
            # An instance scheduled to start later takes its messages from then on, except a
            # terminate, which may cancel the start.
            scheduled = record.scheduled_start_at
            if scheduled is not None and not isinstance(event, ExecutionTerminated):
                visible = from_micros(max(to_micros(now), to_micros(scheduled)))
            self._enqueue(instance, event, None, visible)
            self._db.changed()

    async def send_entity_message(
        self,
        instance_id: str,
        event: HistoryEvent,
        now: datetime,
        visible_at: datetime | None = None,
    ) -> None:
        with self._db.lock:
            hub = self._hub()
            target = self._entity(hub, instance_id, now)
            self._enqueue(target, event, None, visible_at or now)
            self._db.changed()

    def _entity(self, hub: _Hub, instance_id: str, now: datetime) -> _Instance:
        """The entity's instance, created if it does not exist yet (lock held)."""
        instance = hub.instances.get(instance_id)
        if instance is None:
            name, execution_id, status = entity_record_values(instance_id)
            record = InstanceRecord(
                instance_id=instance_id,
                name=name,
                execution_id=execution_id,
                status=status,
                created_at=_moment(now),
                updated_at=_moment(now),
            )
            instance = hub.instances[instance_id] = _Instance(record)
        return instance

    async def remove_entity(self, instance_id: str, entity_state: str | None) -> bool:
        with self._db.lock:
            hub = self._hub()
            instance = hub.instances.get(instance_id)
            if (
                instance is None
                or not instance_id.startswith("@")
                or instance.record.entity_state != entity_state
                or instance.inbox
                or instance.locked_by is not None
            ):
                return False
            self._delete_instance(hub, instance_id)
            return True

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        with self._db.lock:
            instance = self._hub().instances.get(instance_id)
            return replace(instance.record) if instance else None

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        with self._db.lock:
            instance = self._hub().instances.get(instance_id)
            if instance is None:
                return []
            steps = instance.history.get(instance.record.execution_id, {})
            return [steps[sequence] for sequence in sorted(steps)]

    async def dropped_events(self, instance_id: str) -> int:
        """How many events were dropped because they reached a finished instance."""
        with self._db.lock:
            instance = self._hub().instances.get(instance_id)
            return instance.dropped_events if instance else 0

    # ------------------------------------------------------------------ orchestration work

    async def lock_next_orchestration(
        self, owner: str, lease: timedelta, now: datetime, max_messages: int = 10_000
    ) -> OrchestrationWorkItem | None:
        with self._db.lock:
            return self._claim(owner, lease, now, max_messages)

    async def lock_next_orchestrations(
        self,
        owner: str,
        lease: timedelta,
        now: datetime,
        limit: int,
        max_messages: int = 10_000,
    ) -> list[OrchestrationWorkItem]:
        items: list[OrchestrationWorkItem] = []
        with self._db.lock:
            while len(items) < limit:
                item = self._claim(owner, lease, now, max_messages)
                if item is None:
                    break
                items.append(item)
        return items

    def _claim(
        self, owner: str, lease: timedelta, now: datetime, max_messages: int
    ) -> OrchestrationWorkItem | None:
        """Lease the instance whose first visible message came first (under the lock)."""
        n = to_micros(now)
        best: tuple[int, int, _Instance] | None = None
        for candidate in self._hub().instances.values():
            if candidate.lock_expires_at is not None and candidate.lock_expires_at > n:
                continue
            for m in candidate.inbox.values():
                if m.visible_at <= n and (best is None or (m.visible_at, m.seq) < best[:2]):
                    best = (m.visible_at, m.seq, candidate)
        if best is None:
            return None
        return self._lease(best[2], owner, lease, now, max_messages)

    def _lease(
        self, instance: _Instance, owner: str, lease: timedelta, now: datetime, max_messages: int
    ) -> OrchestrationWorkItem:
        n = to_micros(now)
        record = instance.record
        token = f"{owner}/{uuid.uuid4().hex[:12]}"
        until = now + lease
        instance.locked_by, instance.lock_expires_at = token, to_micros(until)
        # Results and timers of an earlier execution can never apply: drop them.
        instance.inbox = {
            seq: m
            for seq, m in instance.inbox.items()
            if m.execution_id is None or m.execution_id == record.execution_id
        }
        visible = [
            InboxMessage(m.seq, m.event) for m in instance.inbox.values() if m.visible_at <= n
        ]
        self._db.changed()
        return OrchestrationWorkItem(
            instance_id=record.instance_id,
            execution_id=record.execution_id,
            name=record.name,
            status=record.status,
            lock_token=token,
            locked_until=until,
            messages=visible[:max_messages],
            history_length=len(instance.history.get(record.execution_id, {})),
            entity_state=record.entity_state,
        )

    def _leased(self, hub: _Hub, item: OrchestrationWorkItem) -> _Instance | None:
        instance = hub.instances.get(item.instance_id)
        return instance if instance is not None and instance.locked_by == item.lock_token else None

    async def renew_orchestration_lease(
        self, item: OrchestrationWorkItem, lease: timedelta, now: datetime
    ) -> None:
        with self._db.lock:
            instance = self._leased(self._hub(), item)
            if instance is None:
                raise LeaseLost(f"lease on instance {item.instance_id!r} was lost")
            until = now + lease
            instance.lock_expires_at = to_micros(until)
            for task in self._held_tasks(self._hub(), item):
                task.lock_expires_at = to_micros(until)
            item.locked_until = until
            self._db.changed()

    def _held_tasks(self, hub: _Hub, item: OrchestrationWorkItem) -> list[_Task]:
        """The activity tasks leased under the instance's own token (a held checkpoint's)."""
        return [
            t
            for t in hub.tasks.values()
            if t.instance_id == item.instance_id and t.locked_by == item.lock_token
        ]

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, retry_at: datetime | None = None
    ) -> None:
        with self._db.lock:
            instance = self._leased(self._hub(), item)
            if instance is not None:
                # A lease that expires at ``retry_at`` keeps other workers off until then.
                instance.locked_by = None
                instance.lock_expires_at = to_micros(retry_at) if retry_at else None
                for task in self._held_tasks(self._hub(), item):
                    task.locked_by = task.lock_expires_at = None
                self._db.changed()

    async def read_inbox(
        self, item: OrchestrationWorkItem, now: datetime, max_messages: int = 10_000
    ) -> list[InboxMessage]:
        n = to_micros(now)
        with self._db.lock:
            instance = self._hub().instances.get(item.instance_id)
            if instance is None:
                return []
            visible = [
                InboxMessage(m.seq, m.event)
                for m in instance.inbox.values()
                if m.visible_at <= n and m.execution_id in (None, item.execution_id)
            ]
            return visible[:max_messages]

    async def checkpoint(
        self, item: OrchestrationWorkItem, checkpoint: Checkpoint, now: datetime
    ) -> bool:
        with self._db.lock:
            hub = self._hub()
            instance = self._leased(hub, item)
            if instance is None:
                raise LeaseLost(
                    f"lease on instance {item.instance_id!r} was lost before its checkpoint"
                )
            self._check_checkpoint(hub, instance, item, checkpoint)
            # Everything that can fail was checked above: from here on, nothing raises.
            self._apply_checkpoint(hub, instance, item, checkpoint, now)
            if checkpoint.wakes:
                self._db.changed()
            n = to_micros(now)
            waiting = checkpoint.hold_until is None or any(
                m.visible_at <= n and m.execution_id in (None, item.execution_id)
                for m in instance.inbox.values()
            )
        if checkpoint.on_commit is not None:
            checkpoint.on_commit()
        return waiting

    def _check_checkpoint(
        self, hub: _Hub, instance: _Instance, item: OrchestrationWorkItem, cp: Checkpoint
    ) -> None:
        check_checkpoint(cp)
        held = {t.event_id for t in self._held_tasks(hub, item)}
        for event_id in cp.completed_activities:
            if event_id not in held:
                raise LeaseLost(
                    f"activity #{event_id} of {item.instance_id!r} is no longer leased to the "
                    "worker that ran it"
                )
        if cp.restart is not None:
            return  # a restart appends no history and schedules nothing
        taken = instance.history.get(item.execution_id, {})
        end = item.history_length + len(cp.new_events)
        if any(sequence in taken for sequence in range(item.history_length, end)):
            raise LeaseLost(f"history of {item.instance_id!r} was extended by another worker")
        steps = {
            (t.execution_id, t.event_id)
            for t in hub.tasks.values()
            if t.instance_id == item.instance_id
        }
        for activity in cp.activities:
            if (item.execution_id, activity.event_id) in steps:
                raise StoreError(
                    f"activity #{activity.event_id} of {item.instance_id!r} is already scheduled"
                )
            steps.add((item.execution_id, activity.event_id))

    def _apply_checkpoint(
        self,
        hub: _Hub,
        instance: _Instance,
        item: OrchestrationWorkItem,
        cp: Checkpoint,
        now: datetime,
    ) -> None:
        n = to_micros(now)
        finished = cp.status.is_terminal
        restart = cp.restart
        record = instance.record
        record.status = cp.status
        record.output = cp.output
        record.custom_status = cp.custom_status
        record.failure = cp.failure
        record.updated_at = _moment(now)
        record.completed_at = _moment(now) if finished else None
        if cp.entity_state is not None:
            record.entity_state = cp.entity_state
        instance.dropped_events += cp.dropped_events
        for task in self._held_tasks(hub, item):
            if task.event_id in cp.completed_activities:
                del hub.tasks[task.seq]
        if cp.hold_until is None:
            instance.locked_by = instance.lock_expires_at = None
        else:
            instance.lock_expires_at = to_micros(cp.hold_until)
        for seq in cp.consumed:
            instance.inbox.pop(seq, None)
        if restart is not None:
            record.execution_id = restart.execution_id
            record.input = restart.input
            self._restart(hub, instance, restart, cp.carryover, now)
            for message in cp.messages:  # an ending execution's signals and lock releases
                self._deliver(hub, message, now)
            return
        steps = instance.history.setdefault(item.execution_id, {})
        for offset, event in enumerate(cp.new_events):
            steps[item.history_length + offset] = event
        iid, eid = item.instance_id, item.execution_id
        held = cp.activities_held_until
        held_by = item.lock_token if held is not None else None
        held_until = to_micros(held) if held is not None else None
        for a in cp.activities:
            seq = self._db.next_seq()
            hub.tasks[seq] = _Task(
                seq,
                iid,
                eid,
                a.event_id,
                a.name,
                a.input,
                visible_at=n,
                locked_by=held_by,
                lock_expires_at=held_until,
                attempts=1 if held_by else 0,
            )
        for sub in cp.sub_orchestrations:
            self._start_child(hub, instance, item, sub, now)
        for new in cp.new_instances:
            with contextlib.suppress(InstanceAlreadyExists):
                self._insert_instance(hub, new, now)
        for message in cp.messages:
            self._deliver(hub, message, now)
        if finished:
            instance.dropped_events += sum(
                isinstance(m.event, EventRaised) for m in instance.inbox.values()
            )
            instance.inbox.clear()
            hub.drop_tasks(item.instance_id)
            if cp.parent_message is not None:
                self._deliver(hub, cp.parent_message, now)

    def _restart(
        self,
        hub: _Hub,
        instance: _Instance,
        started: ExecutionStarted,
        carryover: list[EventRaised],
        now: datetime,
    ) -> None:
        instance.history.clear()
        hub.drop_tasks(instance.record.instance_id)
        # The new execution starts, and receives its carried-over events, before the events that
        # arrived while the last episode ran: those are queued again behind them, in order.
        waiting = [m for m in instance.inbox.values() if m.execution_id is None]
        instance.inbox = {}
        self._enqueue(instance, started, None, now)
        for event in carryover:
            self._enqueue(instance, event, None, now)
        for message in waiting:
            self._enqueue(instance, message.event, None, from_micros(message.visible_at))

    def _start_child(
        self,
        hub: _Hub,
        parent: _Instance,
        item: OrchestrationWorkItem,
        sub: NewInstance,
        now: datetime,
    ) -> None:
        try:
            self._insert_instance(hub, sub, now)
        except InstanceAlreadyExists as exc:
            parent_task = sub.started.parent_task_id
            assert parent_task is not None  # checked before the checkpoint began
            event = SubOrchestrationInstanceFailed(
                timestamp=now,
                task_scheduled_id=parent_task,
                failure=FailureDetails.from_exception(exc),
            )
            self._enqueue(parent, event, item.execution_id, now)

    def _deliver(self, hub: _Hub, message: OutgoingMessage, now: datetime) -> None:
        target = hub.instances.get(message.instance_id)
        if target is None and message.instance_id.startswith("@"):
            target = self._entity(hub, message.instance_id, now)
        if target is None:
            return
        if target.record.status.is_terminal:
            if isinstance(message.event, EventRaised):
                target.dropped_events += 1
            return
        if message.execution_id is not None and message.execution_id != target.record.execution_id:
            return
        self._enqueue(target, message.event, message.execution_id, message.visible_at or now)

    # ------------------------------------------------------------------ activity work

    async def lock_next_activities(
        self, owner: str, lease: timedelta, now: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        n = to_micros(now)
        until = now + lease
        with self._db.lock:
            ready = sorted(
                (
                    t
                    for t in self._hub().tasks.values()
                    if t.visible_at <= n and (t.lock_expires_at is None or t.lock_expires_at <= n)
                ),
                key=lambda t: (t.visible_at, t.seq),
            )[:limit]
            items = []
            for task in ready:
                task.locked_by = f"{owner}/{uuid.uuid4().hex[:12]}"
                task.lock_expires_at = to_micros(until)
                task.attempts += 1
                items.append(
                    ActivityWorkItem(
                        task_id=task.seq,
                        instance_id=task.instance_id,
                        execution_id=task.execution_id,
                        event_id=task.event_id,
                        name=task.name,
                        input=task.input,
                        lock_token=task.locked_by,
                        locked_until=until,
                        attempts=task.attempts,
                    )
                )
            if items:
                self._db.changed()
            return items

    def _leased_task(self, hub: _Hub, item: ActivityWorkItem) -> _Task | None:
        task = hub.tasks.get(item.task_id)
        return task if task is not None and task.locked_by == item.lock_token else None

    async def renew_activity_lease(
        self, item: ActivityWorkItem, lease: timedelta, now: datetime
    ) -> None:
        with self._db.lock:
            task = self._leased_task(self._hub(), item)
            if task is None:
                raise LeaseLost(f"lease on activity {item.name!r} #{item.event_id} was lost")
            until = now + lease
            task.lock_expires_at = to_micros(until)
            item.locked_until = until
            self._db.changed()

    async def complete_activity(
        self, item: ActivityWorkItem, result: HistoryEvent, now: datetime
    ) -> bool:
        with self._db.lock:
            hub = self._hub()
            task = hub.tasks.get(item.task_id)
            if task is None or task.locked_by not in (None, item.lock_token):
                return False
            del hub.tasks[item.task_id]
            self._deliver(hub, OutgoingMessage(item.instance_id, result, item.execution_id), now)
            self._db.changed()
            return True

    async def abandon_activity(
        self, item: ActivityWorkItem, retry_at: datetime | None = None
    ) -> None:
        with self._db.lock:
            task = self._leased_task(self._hub(), item)
            if task is not None:
                task.locked_by = task.lock_expires_at = None
                if retry_at is not None:
                    task.visible_at = to_micros(retry_at)
                self._db.changed()

    # ------------------------------------------------------------------ queries and purge

    async def query_instances(self, query: InstanceQuery) -> InstancePage:
        after = decode_page_token(query.continuation_token) if query.continuation_token else None
        with self._db.lock:
            keyed = [
                ((to_micros(i.record.created_at), i.record.instance_id), i.record)
                for i in self._hub().instances.values()
                if matches_query(i.record, query)
            ]
            if after is not None:
                keyed = [(key, record) for key, record in keyed if key < after]
            keyed.sort(key=lambda pair: pair[0], reverse=True)
            page = [replace(record) for _, record in keyed[: query.page_size]]
        token = None
        if len(keyed) > query.page_size and page:
            token = encode_page_token(page[-1].created_at, page[-1].instance_id)
        return InstancePage(page, token)

    async def count_instances(self, query: InstanceQuery) -> dict[RuntimeStatus, int]:
        counts: dict[RuntimeStatus, int] = {}
        with self._db.lock:
            for instance in self._hub().instances.values():
                if matches_query(instance.record, query):
                    status = instance.record.status
                    counts[status] = counts.get(status, 0) + 1
        return counts

    async def purge_instance(self, instance_id: str) -> int:
        with self._db.lock:
            hub = self._hub()
            instance = hub.instances.get(instance_id)
            if instance is None:
                return 0
            if not instance.record.status.is_terminal:
                raise InstanceStillRunning(instance_id, instance.record.status.value)
            self._delete_instance(hub, instance_id)
            return 1

    def _delete_instance(self, hub: _Hub, instance_id: str) -> None:
        del hub.instances[instance_id]
        hub.drop_tasks(instance_id)
        self._db.changed()

    async def purge_instances(self, query: InstanceQuery) -> int:
        narrowed = purge_scope(query)
        with self._db.lock:
            hub = self._hub()
            doomed = [iid for iid, i in hub.instances.items() if matches_query(i.record, narrowed)]
            for instance_id in doomed:
                self._delete_instance(hub, instance_id)
            return len(doomed)

    async def backlog(self, now: datetime) -> Backlog:
        n = to_micros(now)
        with self._db.lock:
            hub = self._hub()
            activities = sum(1 for t in hub.tasks.values() if t.visible_at <= n)
            orchestrations = scheduled = 0
            for instance in hub.instances.values():
                visible = sum(1 for m in instance.inbox.values() if m.visible_at <= n)
                orchestrations += visible > 0
                scheduled += len(instance.inbox) - visible
        return Backlog(orchestrations, activities, scheduled)

    async def next_visible_at(self, now: datetime) -> datetime | None:
        n = to_micros(now)
        with self._db.lock:
            hub = self._hub()
            times = [t.visible_at for t in hub.tasks.values()]
            times += [
                t.lock_expires_at for t in hub.tasks.values() if t.lock_expires_at is not None
            ]
            for instance in hub.instances.values():
                times += [m.visible_at for m in instance.inbox.values()]
                if instance.lock_expires_at is not None:
                    times.append(instance.lock_expires_at)
        later = [t for t in times if t > n]
        return from_micros(min(later)) if later else None
