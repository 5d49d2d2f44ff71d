"""Which entity locks an execution holds, read from its history."""

from __future__ import annotations

from durafn.core.history import EntityLockRequested, EntityUnlockSent, HistoryEvent


def held_locks(history: list[HistoryEvent]) -> list[tuple[str, str]]:
    """The entity locks an execution requested and has not released, read from its history."""
    held: dict[str, list[str]] = {}
    for event in history:
        if isinstance(event, EntityLockRequested):
            held[event.critical_section_id] = list(event.lock_set)
        elif isinstance(event, EntityUnlockSent):
            entities = held.get(event.critical_section_id, [])
            if event.instance_id in entities:
                entities.remove(event.instance_id)
    return [(entity, section) for section, entities in held.items() for entity in entities]
