"""The client's entity operations: signal, read, list and clean entities (part of AsyncClient)."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from durafn.core import codec
from durafn.core.entities import EntityId, as_entity_id, normalize_entity_name
from durafn.core.history import EntityOperationSignaled, EntityUnlockSent
from durafn.core.times import as_utc
from durafn.executor.entity import SchedulerState
from durafn.store.base import InstanceQuery, InstanceRecord

if TYPE_CHECKING:
    from durafn.app import App
    from durafn.store import Store
    from durafn.worker.clock import Clock


@dataclass(frozen=True)
class EntityStateResponse:
    """What :meth:`AsyncClient.read_entity_state` returns: whether the entity exists (has a
    state) and its state, decoded (``None`` when it does not exist)."""

    entity_exists: bool
    entity_state: Any = None


@dataclass(frozen=True)
class EntityMetadata:
    """One entity in :meth:`AsyncClient.get_entities`.

    ``locked_by`` is the instance id of the orchestration holding its lock, if any;
    ``backlog_queue_size`` counts the operations waiting for that lock to be released.
    """

    entity_id: EntityId
    last_modified_time: datetime
    entity_exists: bool
    state: Any = None
    locked_by: str | None = None
    backlog_queue_size: int = 0


@dataclass(frozen=True)
class EntityQueryResult:
    """One page of entities, and the token of the next page (or ``None``)."""

    entities: list[EntityMetadata]
    continuation_token: str | None


@dataclass(frozen=True)
class CleanEntityStorageResult:
    """What :meth:`AsyncClient.clean_entity_storage` did."""

    empty_entities_removed: int
    orphaned_locks_released: int


class EntityClient:
    """The entity methods of :class:`~durafn.AsyncClient`."""

    store: Store
    app: App | None
    clock: Clock

    async def signal_entity(
        self,
        entity_id: EntityId | str,
        operation_name: str,
        input: Any = None,
        *,
        scheduled_time: datetime | timedelta | None = None,
    ) -> None:
        """Send a one-way operation to an entity, at once or at ``scheduled_time`` (a UTC
        datetime, or a delay). An entity that does not exist yet is created.

        Raises ``FunctionNotFound`` for an entity name the client's app does not register,
        ``TypeError`` for an input that cannot be encoded, ``ValueError`` for a malformed id.
        """
        target = as_entity_id(entity_id)
        if self.app is not None:
            self.app.get_entity(target.name)
        if not isinstance(operation_name, str) or not operation_name:
            raise ValueError(f"operation name must be a non-empty string: {operation_name!r}")
        encoded = codec.encode_optional(input, what=f"input of operation {operation_name!r}")
        now = self.clock.now()
        at: datetime | None = None
        if isinstance(scheduled_time, timedelta):
            at = now + scheduled_time
        elif scheduled_time is not None:
            at = as_utc(scheduled_time, "scheduled_time")
        signal = EntityOperationSignaled(
            timestamp=now,
            event_id=-1,
            request_id=uuid.uuid4().hex,
            instance_id=target.instance_id,
            operation=operation_name,
            input=encoded,
        )
        await self.store.send_entity_message(target.instance_id, signal, now, at)

    async def read_entity_state(self, entity_id: EntityId | str) -> EntityStateResponse:
        """Whether the entity exists, and its state (as its last committed operation left it)."""
        target = as_entity_id(entity_id)
        record = await self.store.get_instance(target.instance_id)
        if record is None:
            return EntityStateResponse(False)
        scheduler = SchedulerState.load(record.entity_state)
        if not scheduler.exists:
            return EntityStateResponse(False)
        return EntityStateResponse(True, codec.decode(scheduler.state))

    async def get_entities(
        self,
        name: str | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
        *,
        include_deleted: bool = False,
        include_state: bool = True,
    ) -> EntityQueryResult:
        """A page of entities (of entity ``name``, if given), newest first.

        Entities without a state (deleted, or never given one) are left out unless
        ``include_deleted``; ``include_state=False`` leaves their states out.
        """
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000")
        prefix = f"@{normalize_entity_name(name)}@" if name is not None else None
        query = InstanceQuery(
            instance_id_prefix=prefix,
            page_size=page_size,
            continuation_token=continuation_token,
            entities=True,
        )
        found: list[EntityMetadata] = []
        # A page may hold only deleted entities: read on until one is found or none is left.
        while True:
            page = await self.store.query_instances(query)
            for record in page.instances:
                entity = _metadata(record, include_state)
                if entity is not None and (include_deleted or entity.entity_exists):
                    found.append(entity)
            token = page.continuation_token
            if found or token is None:
                return EntityQueryResult(found, token)
            query = dataclasses.replace(query, continuation_token=token)

    async def clean_entity_storage(self) -> CleanEntityStorageResult:
        """Remove the entities that have no state, no lock and nothing queued, and release the
        locks held by orchestrations that are no longer running (or no longer exist)."""
        removed = released = 0
        query = InstanceQuery(page_size=500, entities=True)
        while True:
            page = await self.store.query_instances(query)
            for record in page.instances:
                scheduler = SchedulerState.load(record.entity_state)
                owner = scheduler.lock_owner
                if owner is not None and scheduler.critical_section_id is not None:
                    holder = await self.store.get_instance(owner)
                    if holder is None or holder.status.is_terminal:
                        await self._release_orphaned_lock(
                            record.instance_id, owner, scheduler.critical_section_id
                        )
                        released += 1
                elif scheduler.is_empty and await self.store.remove_entity(
                    record.instance_id, record.entity_state
                ):
                    removed += 1
            if page.continuation_token is None:
                return CleanEntityStorageResult(removed, released)
            query = dataclasses.replace(query, continuation_token=page.continuation_token)

    async def _release_orphaned_lock(self, entity: str, owner: str, section: str) -> None:
        now = self.clock.now()
        unlock = EntityUnlockSent(
            timestamp=now,
            event_id=-1,
            critical_section_id=section,
            instance_id=entity,
            parent_instance_id=owner,
        )
        await self.store.send_entity_message(entity, unlock, now)


def _metadata(record: InstanceRecord, include_state: bool) -> EntityMetadata | None:
    try:
        entity_id = EntityId.from_instance_id(record.instance_id)
    except ValueError:
        return None
    scheduler = SchedulerState.load(record.entity_state)
    return EntityMetadata(
        entity_id=entity_id,
        last_modified_time=record.updated_at,
        entity_exists=scheduler.exists,
        state=codec.decode(scheduler.state) if include_state else None,
        locked_by=scheduler.lock_owner,
        backlog_queue_size=len(scheduler.queue),
    )
