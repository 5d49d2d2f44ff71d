"""Validation of instance ids and event names (shared by the client and the executor)."""

from __future__ import annotations

import uuid

MAX_ID_LENGTH = 256
_FORBIDDEN_ID_CHARS = frozenset("/\\#?")


def validate_instance_id(instance_id: object) -> str:
    """Return ``instance_id`` if it is usable, else raise ``ValueError`` saying why."""
    if not isinstance(instance_id, str):
        raise ValueError(f"instance_id must be a str, got {type(instance_id).__name__}")
    if not instance_id or len(instance_id) > MAX_ID_LENGTH:
        raise ValueError(f"instance_id must have 1 to {MAX_ID_LENGTH} characters: {instance_id!r}")
    if instance_id.startswith("@"):
        raise ValueError(
            f"instance_id {instance_id!r} starts with '@', which is reserved for entities: "
            "address entities with df.EntityId and the entity methods (signal_entity, "
            "read_entity_state, get_entities, clean_entity_storage)"
        )
    bad = _FORBIDDEN_ID_CHARS.intersection(instance_id)
    if bad or not instance_id.isprintable() or instance_id != instance_id.strip():
        raise ValueError(
            f"instance_id {instance_id!r} is malformed: no '/', '\\\\', '#', '?', control "
            "characters or surrounding spaces"
        )
    return instance_id


def validate_event_name(name: object) -> str:
    """Return ``name`` if it is a usable event name, else raise ``ValueError``."""
    if not isinstance(name, str) or not name or len(name) > MAX_ID_LENGTH or not name.isprintable():
        raise ValueError(f"event name must be a printable string of 1 to 256 characters: {name!r}")
    return name


def new_instance_id() -> str:
    """A fresh random instance id (32 hex digits, as Durable Functions makes them)."""
    return uuid.uuid4().hex
