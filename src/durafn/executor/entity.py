"""The entity executor: applies a batch of operation messages to an entity's state, with no I/O.

Contract: given the registered entity, its scheduler state (the user state, the lock, the
messages deferred while locked) and the batch of new messages in arrival order, return the new
scheduler state, the messages to send (replies to callers, signals, lock grants) and the
orchestrations to start. An entity keeps no history: one batch is one commit of its state.

Operations run one at a time, in arrival order. An operation that raises leaves the state as it
was before it, sends nothing, and its error goes back to its caller; the batch goes on. While a
critical section holds the entity's lock, only the lock owner's messages are served; the others
are deferred in the scheduler state (durably, with the state) until the unlock.
"""

from __future__ import annotations

import inspect
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from durafn.app import App, RegisteredEntity
from durafn.core import codec
from durafn.core.entities import EntityId
from durafn.core.errors import FunctionNotFound, OperationNotFound
from durafn.core.history import (
    EntityLockGranted,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationCompleted,
    EntityOperationFailed,
    EntityOperationSignaled,
    EntityUnlockSent,
    HistoryEvent,
    event_from_dict,
    event_to_dict,
)
from durafn.core.status import FailureDetails
from durafn.executor.entity_context import _MISSING, EntityContext

# How many unlocks that arrived before their lock request an entity remembers.
_RELEASED_MEMORY = 32
_UUID_NAMESPACE = uuid.UUID("2d7f0c8e-5a3b-4f0e-9c61-7a0d3b5e8f14")


@dataclass
class SchedulerState:
    """What an entity stores: its user state (encoded; ``None``: no state), its lock, and the
    messages deferred while another critical section held the lock."""

    state: str | None = None
    lock_owner: str | None = None
    critical_section_id: str | None = None
    queue: list[HistoryEvent] = field(default_factory=list)
    # Critical sections unlocked before their lock request arrived here (a terminated owner).
    released: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.state is not None

    @property
    def is_empty(self) -> bool:
        """No state, no lock, nothing deferred: the entity may be removed."""
        return self.state is None and self.lock_owner is None and not self.queue

    def dump(self) -> str:
        data: dict[str, Any] = {}
        if self.state is not None:
            data["state"] = self.state
        if self.lock_owner is not None:
            data["lock"] = {"owner": self.lock_owner, "id": self.critical_section_id}
        if self.queue:
            data["queue"] = [event_to_dict(e) for e in self.queue]
        if self.released:
            data["released"] = self.released
        return codec.dumps(data)

    @classmethod
    def load(cls, text: str | None) -> SchedulerState:
        if not text:
            return cls()
        data = codec.loads(text)
        lock = data.get("lock") or {}
        return cls(
            state=data.get("state"),
            lock_owner=lock.get("owner"),
            critical_section_id=lock.get("id"),
            queue=[event_from_dict(e) for e in data.get("queue", [])],
            released=list(data.get("released", [])),
        )


@dataclass(frozen=True)
class EntitySend:
    """A message the batch sends: to ``instance_id`` (for ``execution_id`` when it is a reply),
    visible at ``visible_at`` (a scheduled signal) or at once."""

    instance_id: str
    event: HistoryEvent
    execution_id: str | None = None
    visible_at: datetime | None = None


@dataclass(frozen=True)
class EntityStart:
    """An orchestration an operation started."""

    name: str
    instance_id: str
    input: str | None


@dataclass(frozen=True)
class OperationOutcome:
    """How one operation ended: its encoded result, or its failure."""

    operation: str
    request_id: str
    caller: str | None
    result: str | None = None
    failure: FailureDetails | None = None
    # True for a call: its result or failure went back to the caller.
    reply_sent: bool = False


@dataclass
class EntityBatchResult:
    """What one batch produced."""

    state: SchedulerState
    sends: list[EntitySend]
    starts: list[EntityStart]
    outcomes: list[OperationOutcome]


class EntityExecutor:
    """Runs one batch of one entity. Pure: no I/O, no clock (``now`` is given)."""

    def __init__(self, app: App, instance_id: str, state: str | None, now: datetime) -> None:
        self.app = app
        self.entity_id = EntityId.from_instance_id(instance_id)
        self.instance_id = instance_id
        self.now = now
        self.scheduler = SchedulerState.load(state)
        self.sends: list[EntitySend] = []
        self.starts: list[EntityStart] = []
        self.outcomes: list[OperationOutcome] = []
        self._decoded: Any = _MISSING  # the decoded value of ``scheduler.state``, when known
        self._request_id = ""
        self._counter = 0
        registered: RegisteredEntity | None = None
        self._missing: FunctionNotFound | None = None
        try:
            registered = app.get_entity(self.entity_id.name)
        except FunctionNotFound as exc:
            self._missing = exc
        self._entity = registered

    def run(self, messages: Sequence[HistoryEvent]) -> EntityBatchResult:
        """Apply the deferred messages, then ``messages``, in order."""
        scheduler = self.scheduler
        pending: deque[HistoryEvent] = deque([*scheduler.queue, *messages])
        deferred: list[HistoryEvent] = []
        while pending:
            message = pending.popleft()
            if isinstance(message, EntityUnlockSent):
                if self._unlock(message, deferred):
                    pending.extendleft(reversed(deferred))
                    deferred = []
                continue
            owner = scheduler.lock_owner
            if owner is not None and getattr(message, "parent_instance_id", None) != owner:
                deferred.append(message)
            elif isinstance(message, EntityLockRequested):
                if owner is not None:
                    deferred.append(message)  # the owner's next critical section waits
                else:
                    self._lock(message)
            elif isinstance(message, EntityOperationSignaled | EntityOperationCalled):
                self._operate(message)
        scheduler.queue = deferred
        return EntityBatchResult(scheduler, self.sends, self.starts, self.outcomes)

    # ------------------------------------------------------------------ locks

    def _lock(self, request: EntityLockRequested) -> None:
        scheduler = self.scheduler
        if request.critical_section_id in scheduler.released:
            # Its owner ended and unlocked before the request got here: nothing to lock.
            scheduler.released.remove(request.critical_section_id)
            return
        scheduler.lock_owner = request.parent_instance_id
        scheduler.critical_section_id = request.critical_section_id
        following = request.position + 1
        if following < len(request.lock_set):
            forwarded = replace(request, timestamp=self.now, position=following)
            self.sends.append(EntitySend(request.lock_set[following], forwarded))
        elif request.parent_instance_id is not None:
            granted = EntityLockGranted(
                timestamp=self.now,
                task_scheduled_id=request.event_id,
                critical_section_id=request.critical_section_id,
            )
            self.sends.append(
                EntitySend(request.parent_instance_id, granted, request.parent_execution_id)
            )

    def _unlock(self, unlock: EntityUnlockSent, deferred: list[HistoryEvent]) -> bool:
        """Apply an unlock; True when it released the lock."""
        scheduler = self.scheduler
        section = unlock.critical_section_id
        if scheduler.lock_owner is not None and scheduler.critical_section_id == section:
            scheduler.lock_owner = scheduler.critical_section_id = None
            return True
        waiting = [
            m
            for m in deferred
            if isinstance(m, EntityLockRequested) and m.critical_section_id == section
        ]
        for request in waiting:
            deferred.remove(request)
        if not waiting and section not in scheduler.released:
            scheduler.released = [*scheduler.released, section][-_RELEASED_MEMORY:]
        return False

    # ------------------------------------------------------------------ operations

    def _operate(self, message: EntityOperationSignaled | EntityOperationCalled) -> None:
        is_call = isinstance(message, EntityOperationCalled)
        scheduler = self.scheduler
        sends, starts = len(self.sends), len(self.starts)
        self._request_id = message.request_id
        self._counter = 0
        ctx = EntityContext(self, message.operation, message.input, scheduler.state, self._decoded)
        try:
            value = self._dispatch(ctx)
            result = ctx._result if ctx._has_result else value
            encoded = (
                codec.encode_optional(result, what=f"result of operation {message.operation!r}")
                if is_call
                else None
            )
            new_state, decoded = ctx._final_state()
        except BaseException as exc:  # the operation's failure, even SystemExit
            # The operation's changes are undone: state, signals and starts alike.
            del self.sends[sends:]
            del self.starts[starts:]
            self._decoded = _MISSING  # the code may have changed the decoded value in place
            failure = FailureDetails.from_exception(exc)
            self.outcomes.append(
                OperationOutcome(
                    message.operation,
                    message.request_id,
                    message.parent_instance_id,
                    None,
                    failure,
                    reply_sent=is_call,
                )
            )
            if is_call:
                self._reply(
                    message,
                    EntityOperationFailed(
                        timestamp=self.now,
                        task_scheduled_id=message.event_id,
                        request_id=message.request_id,
                        failure=failure,
                    ),
                )
            return
        scheduler.state = new_state
        self._decoded = decoded
        self.outcomes.append(
            OperationOutcome(
                message.operation,
                message.request_id,
                message.parent_instance_id,
                encoded,
                reply_sent=is_call,
            )
        )
        if is_call:
            self._reply(
                message,
                EntityOperationCompleted(
                    timestamp=self.now,
                    task_scheduled_id=message.event_id,
                    request_id=message.request_id,
                    result=encoded,
                ),
            )

    def _reply(
        self, message: EntityOperationSignaled | EntityOperationCalled, reply: HistoryEvent
    ) -> None:
        if message.parent_instance_id is not None:
            self.sends.append(
                EntitySend(message.parent_instance_id, reply, message.parent_execution_id)
            )

    def _dispatch(self, ctx: EntityContext) -> Any:
        entity = self._entity
        if entity is None:
            assert self._missing is not None
            raise self._missing
        if not entity.is_class:
            return entity.target(ctx)
        return _run_class_operation(entity, ctx)

    # ------------------------------------------------------------------ called by the context

    def _next_id(self) -> uuid.UUID:
        self._counter += 1
        seed = f"{self.instance_id}/{self._request_id}/{self._counter}"
        return uuid.uuid5(_UUID_NAMESPACE, seed)

    def send_signal(
        self, target: EntityId, operation: str, encoded_input: str | None, at: datetime | None
    ) -> None:
        signal = EntityOperationSignaled(
            timestamp=self.now,
            event_id=-1,
            request_id=self._next_id().hex,
            instance_id=target.instance_id,
            operation=operation,
            input=encoded_input,
            parent_instance_id=self.instance_id,
        )
        self.sends.append(EntitySend(target.instance_id, signal, None, at))

    def start_orchestration(
        self, name: str, encoded_input: str | None, instance_id: str | None
    ) -> str:
        chosen = instance_id or self._next_id().hex
        self.starts.append(EntityStart(name, chosen, encoded_input))
        return chosen


def operations_of(cls: type) -> dict[str, Any]:
    """The operations of a class entity: its public methods, by name."""
    found = {
        name: member
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_") and not inspect.isclass(member)
    }
    return found


def _run_class_operation(entity: RegisteredEntity, ctx: EntityContext) -> Any:
    cls = entity.target
    operations = operations_of(cls)  # type: ignore[arg-type]
    name = ctx.operation_name
    method_name = name if name in operations else _case_insensitive(operations, name)
    if method_name is None:
        if name.lower() == "delete":
            ctx.delete_state()
            return None
        raise OperationNotFound(entity.name, name, list(operations))
    instance = cls()
    stored = ctx.get_state(None) if ctx.has_state else None
    if stored is not None:
        if not isinstance(stored, dict):
            raise TypeError(
                f"the state of class entity {entity.name!r} is not an object of attributes"
            )
        instance.__dict__.update(stored)
    method = getattr(instance, method_name)
    args = [ctx.get_input()] if _takes_argument(method) else []
    # A method with a keyword-only ``ctx`` gets the context (to signal, start orchestrations).
    kwargs = {"ctx": ctx} if _wants_context(method) else {}
    result = method(*args, **kwargs)
    ctx.set_state(dict(vars(instance)))
    return result


def _wants_context(method: Any) -> bool:
    try:
        parameter = inspect.signature(method).parameters.get("ctx")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind is parameter.KEYWORD_ONLY


def _case_insensitive(operations: dict[str, Any], name: str) -> str | None:
    lowered = name.lower()
    return next((n for n in operations if n.lower() == lowered), None)


def _takes_argument(method: Any) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in parameters
    )


def execute_entity(
    app: App,
    instance_id: str,
    state: str | None,
    messages: Sequence[HistoryEvent],
    now: datetime,
) -> EntityBatchResult:
    """The entity executor as one pure function."""
    return EntityExecutor(app, instance_id, state, now).run(messages)
