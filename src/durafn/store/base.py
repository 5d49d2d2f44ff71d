"""The store contract: what every backend (memory, SQLite, PostgreSQL) provides.

The store knows nothing of orchestrator code. It keeps, per task hub, the instances, the history
of each instance's current execution, the inbox of messages not yet applied, and the queue of
scheduled activities; and it offers the few atomic operations the worker and the client need.
Every time the store compares against "now" it is given ``now`` by the caller, so a virtual
clock works on every backend.

Semantics every implementation must honour (the conformance suite in ``tests/store`` checks them):

* :meth:`Store.checkpoint` is atomic, and fails with :class:`~durafn.core.errors.LeaseLost` when
  the caller's lease on the instance is no longer its own (fencing).
* A message scoped to an execution (timer firings, activity and sub-orchestration results) is
  never delivered to another execution of the instance.
* An activity result is accepted only while its task row exists and is leased by the caller
  or unleased; it is delivered at most once.
* A checkpoint with ``hold_until`` keeps the instance leased and stores its activities leased
  under the instance's lock token: the worker runs them itself and commits their results with
  its next checkpoint (``completed_activities``), which fails with ``LeaseLost`` unless each of
  those task rows is still leased under that token. Renewing the instance's lease renews those
  tasks' leases; abandoning it releases them (they run anywhere, their results reach the inbox).
* A checkpoint's ``on_commit`` hook is called once it has committed, before ``checkpoint``
  returns (on whichever thread committed it), and never for a checkpoint that failed.
* The caller's work item says what the instance's row holds (``status``, ``locked_until``):
  a store may leave alone what a checkpoint does not change.
* Finishing an instance deletes its queued messages and activity tasks, and notifies its parent.
* An entity (instance id ``@name@key``) is an instance without history: its state lives in the
  ``entity_state`` of its row, written by the same checkpoint that consumes its messages. A
  message to an entity that does not exist creates it, in the same transaction. Queries leave
  entities out unless asked for them (``InstanceQuery.entities``).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from durafn.core.entities import entity_name_of, is_entity_instance_id
from durafn.core.history import EventRaised, ExecutionStarted, HistoryEvent
from durafn.core.status import FailureDetails, RuntimeStatus


@dataclass(frozen=True)
class NewInstance:
    """An instance to create: its row and its ``ExecutionStarted`` message."""

    instance_id: str
    started: ExecutionStarted
    start_at: datetime | None = None

    @property
    def name(self) -> str:
        return self.started.name

    @property
    def execution_id(self) -> str:
        return self.started.execution_id


@dataclass
class InstanceRecord:
    """One row of the instances table."""

    instance_id: str
    name: str
    execution_id: str
    status: RuntimeStatus
    created_at: datetime
    updated_at: datetime
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    failure: FailureDetails | None = None
    parent_instance_id: str | None = None
    scheduled_start_at: datetime | None = None
    completed_at: datetime | None = None
    # An entity's stored state (its scheduler state, JSON text); None for orchestrations and
    # for an entity whose first message was not processed yet.
    entity_state: str | None = None


@dataclass(frozen=True)
class InboxMessage:
    """A message waiting in an instance's inbox; ``seq`` orders arrival."""

    seq: int
    event: HistoryEvent


# The columns a claim reads of an instance row, in this order (both SQL stores).
ClaimedRow = tuple[str, str, str, str, int, str | None]


@dataclass
class OrchestrationWorkItem:
    """A leased instance with the messages to apply in one episode."""

    instance_id: str
    execution_id: str
    name: str
    status: RuntimeStatus
    lock_token: str
    locked_until: datetime
    messages: list[InboxMessage]
    history_length: int
    entity_state: str | None = None

    @classmethod
    def from_claimed_row(
        cls,
        row: ClaimedRow,
        lock_token: str,
        locked_until: datetime,
        messages: list[InboxMessage],
    ) -> OrchestrationWorkItem:
        """The item of an instance a SQL store has just leased, from its row's columns
        ``instance_id, execution_id, name, status, history_length, entity_state``."""
        instance_id, execution_id, name, status, history_length, entity_state = row
        return cls(
            instance_id=instance_id,
            execution_id=execution_id,
            name=name,
            status=RuntimeStatus(status),
            lock_token=lock_token,
            locked_until=locked_until,
            messages=messages,
            history_length=history_length,
            entity_state=entity_state,
        )


@dataclass(frozen=True)
class ActivityTask:
    """An activity to schedule, as produced by a checkpoint."""

    event_id: int
    name: str
    input: str | None


@dataclass
class ActivityWorkItem:
    """A leased activity execution."""

    # The store's id of the task: no two tasks share it, even two with the same step key.
    task_id: int
    instance_id: str
    execution_id: str
    event_id: int
    name: str
    input: str | None
    lock_token: str
    locked_until: datetime
    attempts: int


@dataclass(frozen=True)
class OutgoingMessage:
    """A message for another instance, or for this one at a later time (a timer)."""

    instance_id: str
    event: HistoryEvent
    execution_id: str | None = None
    visible_at: datetime | None = None


@dataclass
class Checkpoint:
    """Everything one episode commits, applied by :meth:`Store.checkpoint` in one transaction."""

    new_events: list[HistoryEvent]
    consumed: list[int]
    status: RuntimeStatus
    output: str | None = None
    custom_status: str | None = None
    failure: FailureDetails | None = None
    activities: list[ActivityTask] = field(default_factory=list)
    messages: list[OutgoingMessage] = field(default_factory=list)
    sub_orchestrations: list[NewInstance] = field(default_factory=list)
    # Sent to the parent instance when this one finishes (completed, failed or terminated).
    parent_message: OutgoingMessage | None = None
    # continue_as_new: the new execution's start event and the events it carries over. A
    # restart appends no history and schedules nothing, but its ``messages`` are delivered.
    restart: ExecutionStarted | None = None
    carryover: list[EventRaised] = field(default_factory=list)
    # Events consumed without being applied (they reached an execution that had ended).
    dropped_events: int = 0
    # An entity's new state (its scheduler state); None leaves the stored one as it is.
    entity_state: str | None = None
    # Orchestrations to start (by an entity), each unless its id is taken by an unfinished one.
    new_instances: list[NewInstance] = field(default_factory=list)
    # Keep the instance leased until then instead of releasing it, and (unless
    # ``hold_activities`` is False) store ``activities`` leased under its lock token: the
    # worker runs them in place (see the module docstring).
    hold_until: datetime | None = None
    # With ``hold_until``: False stores ``activities`` free for any worker at once (the worker
    # holds the instance for other activities it runs in place, not for these).
    hold_activities: bool = True
    # Activities (event ids) run in place whose results are among ``new_events``: their task
    # rows, which must still be leased under the instance's lock token, are deleted.
    completed_activities: list[int] = field(default_factory=list)
    # Called once the checkpoint has committed, before ``checkpoint`` returns, maybe on the
    # store's own thread (never when it fails): quick and thread-safe, it must not raise.
    # The worker starts the activities it runs in place from it, without waiting for its
    # event loop to hear of the commit.
    on_commit: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    @property
    def activities_held_until(self) -> datetime | None:
        """When the lease of ``activities``, held with the instance, ends; None when they are
        free for any worker."""
        return self.hold_until if self.hold_activities else None

    @property
    def wakes(self) -> bool:
        """Whether committing this may make work visible to other workers or clients."""
        if self.hold_until is None or (self.activities and self.activities_held_until is None):
            return True
        return bool(
            self.messages or self.sub_orchestrations or self.new_instances or self.parent_message
        )


@dataclass(frozen=True)
class InstanceQuery:
    """Filters of :meth:`Store.query_instances`; ``None`` means no filter."""

    runtime_status: frozenset[RuntimeStatus] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    name: str | None = None
    instance_id_prefix: str | None = None
    page_size: int = 100
    continuation_token: str | None = None
    # False: orchestration instances only; True: entities only.
    entities: bool = False


@dataclass
class InstancePage:
    """One page of instances, newest first, and the token of the next page (or ``None``)."""

    instances: list[InstanceRecord]
    continuation_token: str | None


@dataclass(frozen=True)
class Backlog:
    """The work waiting in a task hub at one moment: what scaling decisions are made from.

    ``orchestrations`` counts instances with a visible message (waiting for an episode or in
    one), ``activities`` the activity tasks that are visible (waiting or running), and
    ``scheduled`` the messages that become visible later (timers, delayed starts, retries).
    """

    orchestrations: int
    activities: int
    scheduled: int

    def recommended_workers(
        self, orchestrations_per_worker: int = 64, activities_per_worker: int = 16
    ) -> int:
        """Workers needed to serve the backlog at once, given each worker's concurrency
        (by default a worker's: ``WorkerOptions.max_concurrent_orchestrations`` and
        ``max_concurrent_activities``)."""
        if orchestrations_per_worker < 1 or activities_per_worker < 1:
            raise ValueError("per-worker capacities must be at least 1")
        return max(
            math.ceil(self.orchestrations / orchestrations_per_worker),
            math.ceil(self.activities / activities_per_worker),
        )


@runtime_checkable
class Store(Protocol):
    """The operations of a task hub's storage. All methods are coroutines."""

    task_hub: str

    async def create_instance(self, new: NewInstance, now: datetime) -> None:
        """Create an instance (Pending) and queue its start.

        Raises ``InstanceAlreadyExists`` when the id belongs to an unfinished instance; a
        finished one is replaced (its history is deleted).
        """

    async def create_instance_leased(
        self, new: NewInstance, now: datetime, owner: str, lease: timedelta
    ) -> OrchestrationWorkItem:
        """:meth:`create_instance`, and in the same transaction lease the new instance to
        ``owner`` as a claim would: the work item of its first episode. A worker of this
        process starts the instance at once, without waiting for a claim. Same errors as
        :meth:`create_instance`; ``new`` must not start later than ``now``."""

    async def send_message(self, instance_id: str, event: HistoryEvent, now: datetime) -> None:
        """Queue an event (raised event, terminate, suspend, resume) for an instance.

        Raises ``InstanceNotFound`` or ``InstanceNotRunning`` (finished instance).
        """

    async def send_entity_message(
        self,
        instance_id: str,
        event: HistoryEvent,
        now: datetime,
        visible_at: datetime | None = None,
    ) -> None:
        """Queue a message for entity ``instance_id`` (``@name@key``), visible at
        ``visible_at`` (or ``now``), creating the entity in the same transaction if needed."""

    async def remove_entity(self, instance_id: str, entity_state: str | None) -> bool:
        """Delete entity ``instance_id`` if its stored state is still ``entity_state`` and it
        has no queued message and no lease; True if it was deleted."""

    async def lock_next_orchestration(
        self, owner: str, lease: timedelta, now: datetime, max_messages: int = 10_000
    ) -> OrchestrationWorkItem | None:
        """Lease one instance with visible messages whose lease is free or expired."""

    async def lock_next_orchestrations(
        self,
        owner: str,
        lease: timedelta,
        now: datetime,
        limit: int,
        max_messages: int = 10_000,
    ) -> list[OrchestrationWorkItem]:
        """Lease up to ``limit`` instances at once, in the order ``lock_next_orchestration``
        would lease them one by one, in one transaction."""

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The history of the instance's current execution, in order."""

    async def renew_orchestration_lease(
        self, item: OrchestrationWorkItem, lease: timedelta, now: datetime
    ) -> None:
        """Extend the lease (and that of the activity tasks held under it); ``LeaseLost`` if
        another worker has it now."""

    async def checkpoint(
        self, item: OrchestrationWorkItem, checkpoint: Checkpoint, now: datetime
    ) -> bool:
        """Commit an episode atomically and release the lease; ``LeaseLost`` if it was lost.

        Returns whether messages may wait in the inbox: False only for a checkpoint that keeps
        the lease (``hold_until``) when the store, looking during the commit, saw no message of
        the execution visible at ``now`` in the instance's inbox besides those it consumed. A
        message that arrives while it commits may be missed: a worker holding the instance
        hears of it at its next commit, or when it reads the inbox (``read_inbox``) again.
        """

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, retry_at: datetime | None = None
    ) -> None:
        """Release the lease without applying anything; messages stay for a later episode.

        Activity tasks leased under the instance's token (held checkpoints) are released too.
        """

    async def read_inbox(
        self, item: OrchestrationWorkItem, now: datetime, max_messages: int = 10_000
    ) -> list[InboxMessage]:
        """The messages of ``item``'s execution visible at ``now``, in arrival order: what
        arrived while a held instance ran its activities. Reads only; the next checkpoint
        fences."""

    async def lock_next_activities(
        self, owner: str, lease: timedelta, now: datetime, limit: int
    ) -> list[ActivityWorkItem]:
        """Lease up to ``limit`` visible activity tasks."""

    async def renew_activity_lease(
        self, item: ActivityWorkItem, lease: timedelta, now: datetime
    ) -> None:
        """Extend an activity lease; ``LeaseLost`` if the task is gone or leased by another."""

    async def complete_activity(
        self, item: ActivityWorkItem, result: HistoryEvent, now: datetime
    ) -> bool:
        """Deliver an activity's ``TaskCompleted``/``TaskFailed``; False if it was dropped."""

    async def abandon_activity(
        self, item: ActivityWorkItem, retry_at: datetime | None = None
    ) -> None:
        """Release an activity lease so the task runs again (at ``retry_at`` or at once)."""

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's row, or ``None``."""

    async def query_instances(self, query: InstanceQuery) -> InstancePage:
        """A page of instances matching ``query``."""

    async def count_instances(self, query: InstanceQuery) -> dict[RuntimeStatus, int]:
        """How many instances match ``query``'s filters, per status (absent: none).

        Paging fields are ignored. One aggregate query, however many instances match.
        """

    async def purge_instance(self, instance_id: str) -> int:
        """Delete a finished instance and its history: 1, or 0 if it does not exist.

        Raises ``InstanceStillRunning`` for an unfinished instance.
        """

    async def purge_instances(self, query: InstanceQuery) -> int:
        """Delete every finished instance matching ``query``; returns how many."""

    async def next_visible_at(self, now: datetime) -> datetime | None:
        """The earliest time after ``now`` at which a queued message or task becomes visible."""

    async def backlog(self, now: datetime) -> Backlog:
        """How much work is visible at ``now`` and how much is scheduled for later."""

    async def change_token(self) -> object:
        """An opaque token that changes whenever the task hub may hold new work."""

    async def wait_for_change(self, token: object, timeout: float) -> None:
        """Sleep until the store changed since ``token`` was taken, or ``timeout`` seconds."""

    async def dropped_events(self, instance_id: str) -> int:
        """How many events were dropped because they reached the finished instance."""

    async def close(self) -> None:
        """Release connections and threads."""


@runtime_checkable
class BlockingCheckpoints(Protocol):
    """A store that can also commit a checkpoint for a thread that waits for it.

    A worker then lets a chain of activities run in place go on from one step to the next on
    the activity's thread (episode, commit, next activity) without a hand-off to its event
    loop and back at each step.
    """

    def prepare_checkpoint(
        self, item: OrchestrationWorkItem, checkpoint: Checkpoint, now: datetime
    ) -> object | None:
        """What :meth:`checkpoint_blocking` of the same arguments will write, built on the
        calling thread ahead of the commit (a thread with time to spare while another
        commits), to pass to it as ``prepared``; None if the store builds nothing ahead.
        ``item`` and ``checkpoint`` must not change from then on."""

    def checkpoint_blocking(
        self,
        item: OrchestrationWorkItem,
        checkpoint: Checkpoint,
        now: datetime,
        *,
        before_commit: Callable[[bool], None] | None = None,
        prepared: object | None = None,
    ) -> bool:
        """:meth:`Store.checkpoint`, called from a thread that is not an event loop's and
        waits for the commit; same outcome and errors. The checkpoint has no ``on_commit``
        (its caller runs what follows the commit itself). ``prepared``: what
        :meth:`prepare_checkpoint` returned for the same arguments, if it was called.

        A store whose commit waits for the disk once its statements have run may call
        ``before_commit`` then (once, on whichever thread commits), with what this call will
        return if the commit goes through (whether a message may wait in the inbox): its
        caller may start, while the commit waits, work that the commit only makes durable
        (an activity, which runs at least once anyway). From then on the caller must not
        change ``item`` for the commit's sake (the store has read it). It is not called when
        the statements fail; the commit may still fail after it, and this call then raises.
        A store that cannot tell before its commit (one statement that commits as it runs)
        does not call it. It must be quick and must not raise."""


# --------------------------------------------------------------------------- shared helpers

TERMINAL_STATUSES = frozenset(s for s in RuntimeStatus if s.is_terminal)


def to_micros(moment: datetime) -> int:
    """A UTC datetime as integer microseconds since the epoch (the stored form of times)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_page_token(created_at: datetime, instance_id: str) -> str:
    raw = json.dumps([to_micros(created_at), instance_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(token: str) -> tuple[int, str]:
    """Parse a continuation token; ``ValueError`` if it was not made by this store."""
    try:
        micros, instance_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(micros), str(instance_id)
    except Exception as exc:
        raise ValueError(f"malformed continuation token {token!r}") from exc


def purge_scope(query: InstanceQuery) -> InstanceQuery:
    """What a bulk purge of ``query`` touches: the finished orchestrations among those it
    names, every page of them."""
    statuses = query.runtime_status
    return InstanceQuery(
        runtime_status=TERMINAL_STATUSES if statuses is None else statuses & TERMINAL_STATUSES,
        created_from=query.created_from,
        created_to=query.created_to,
        name=query.name,
        instance_id_prefix=query.instance_id_prefix,
    )


def execution_scope(event: HistoryEvent) -> bool:
    """True for messages that belong to one execution (results and timer firings)."""
    return event.kind in _SCOPED_KINDS


_SCOPED_KINDS = frozenset(
    {
        "TaskCompleted",
        "TaskFailed",
        "TimerFired",
        "SubOrchestrationInstanceCompleted",
        "SubOrchestrationInstanceFailed",
    }
)


def matches_query(record: InstanceRecord, query: InstanceQuery) -> bool:
    """Whether ``record`` passes the filters of ``query`` (paging aside)."""
    if query.runtime_status is not None and record.status not in query.runtime_status:
        return False
    if query.created_from is not None and record.created_at < query.created_from:
        return False
    if query.created_to is not None and record.created_at > query.created_to:
        return False
    if query.name is not None and record.name != query.name:
        return False
    if record.instance_id.startswith("@") != query.entities:
        return False
    return not (
        query.instance_id_prefix is not None
        and not record.instance_id.startswith(query.instance_id_prefix)
    )


def verb_for(event: HistoryEvent) -> str:
    """How a message is named in an ``InstanceNotRunning`` error."""
    return _VERBS.get(event.kind, "send a message")


_VERBS = {
    "EventRaised": "raise an event",
    "ExecutionTerminated": "terminate",
    "ExecutionSuspended": "suspend",
    "ExecutionResumed": "resume",
}


def check_starts_now(new: NewInstance, now: datetime) -> None:
    """Reject a leased creation of an instance that starts later (it has nothing to run)."""
    if new.start_at is not None and new.start_at > now:
        raise ValueError("an instance that starts later cannot be leased as it is created")


def check_blocking_checkpoint(cp: Checkpoint) -> None:
    """:func:`check_checkpoint`, for ``BlockingCheckpoints.checkpoint_blocking``."""
    check_checkpoint(cp)
    if cp.on_commit is not None:
        raise ValueError("a blocking checkpoint's caller runs what follows its commit")


def check_checkpoint(cp: Checkpoint) -> None:
    """Reject a checkpoint no store can apply (a programming error of its maker)."""
    for sub in cp.sub_orchestrations:
        if sub.started.parent_task_id is None:
            raise ValueError(f"sub-orchestration {sub.instance_id!r} has no parent_task_id")
    if cp.hold_until is not None and (cp.status.is_terminal or cp.restart is not None):
        raise ValueError("a checkpoint that ends or restarts its execution cannot hold its lease")


def dump_failure(failure: FailureDetails | None) -> str | None:
    """The stored (JSON text) form of failure details."""
    return json.dumps(failure.to_dict()) if failure else None


def record_from_row(row: tuple[Any, ...]) -> InstanceRecord:
    """An :class:`InstanceRecord` from a row of the SQL stores' instance columns, in order."""
    (
        instance_id,
        name,
        execution_id,
        status,
        created,
        updated,
        input_,
        output,
        custom,
        failure,
        parent,
        scheduled,
        completed,
        entity_state,
    ) = row
    return InstanceRecord(
        instance_id=instance_id,
        name=name,
        execution_id=execution_id,
        status=RuntimeStatus(status),
        created_at=from_micros(created),
        updated_at=from_micros(updated),
        input=input_,
        output=output,
        custom_status=custom,
        failure=FailureDetails.from_dict(json.loads(failure)) if failure else None,
        parent_instance_id=parent,
        scheduled_start_at=from_micros(scheduled) if scheduled is not None else None,
        completed_at=from_micros(completed) if completed is not None else None,
        entity_state=entity_state,
    )


# The instance row of an entity: it never ends, and has one everlasting "execution".
ENTITY_EXECUTION_ID = "entity"


def entity_record_values(instance_id: str) -> tuple[str, str, RuntimeStatus]:
    """``(name, execution_id, status)`` of the row created for entity ``instance_id``."""
    if not is_entity_instance_id(instance_id):
        raise ValueError(f"{instance_id!r} is not an entity instance id (@name@key)")
    return entity_name_of(instance_id), ENTITY_EXECUTION_ID, RuntimeStatus.RUNNING
