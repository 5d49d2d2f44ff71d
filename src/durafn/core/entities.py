"""Entity ids: how an entity ``(name, key)`` is addressed and named as an instance.

An entity is stored as an instance whose id is ``@{name}@{key}``, the scheme of Durable
Functions. Entity names are case-insensitive: they are kept lowercase, as Durable Functions does.
"""

from __future__ import annotations

from dataclasses import dataclass

from durafn.core.ids import MAX_ID_LENGTH

ENTITY_PREFIX = "@"


def normalize_entity_name(name: object) -> str:
    """``name`` lowercased, or ``ValueError`` if it cannot name an entity."""
    if not isinstance(name, str) or not name or not name.isprintable():
        raise ValueError(f"entity name must be a non-empty printable string: {name!r}")
    if "@" in name or "/" in name or name != name.strip():
        raise ValueError(f"entity name {name!r} must not contain '@' or '/' or surrounding spaces")
    return name.lower()


@dataclass(frozen=True, order=True)
class EntityId:
    """Addresses one entity: its registered ``name`` (case-insensitive) and a ``key``.

    ``df.EntityId("Counter", "tokyo")`` and ``df.EntityId("counter", "tokyo")`` are equal.
    Raises ``ValueError`` for an empty name, a name with ``@`` or ``/``, or a key that is not
    a printable string.
    """

    name: str
    key: str

    def __init__(self, name: str, key: str) -> None:
        object.__setattr__(self, "name", normalize_entity_name(name))
        if not isinstance(key, str) or not key.isprintable() or "/" in key:
            raise ValueError(f"entity key must be a printable string without '/': {key!r}")
        object.__setattr__(self, "key", key)
        if len(self.instance_id) > MAX_ID_LENGTH:
            raise ValueError(f"entity id {self.instance_id!r} is longer than {MAX_ID_LENGTH}")

    @property
    def instance_id(self) -> str:
        """The instance id the entity is stored under: ``@name@key``."""
        return f"{ENTITY_PREFIX}{self.name}@{self.key}"

    @classmethod
    def from_instance_id(cls, instance_id: str) -> EntityId:
        """The entity stored as ``instance_id``; ``ValueError`` if it is not an entity's id."""
        if not is_entity_instance_id(instance_id):
            raise ValueError(f"{instance_id!r} is not an entity instance id (@name@key)")
        name, _, key = instance_id[1:].partition("@")
        return cls(name, key)

    def __str__(self) -> str:
        return self.instance_id


def is_entity_instance_id(instance_id: str) -> bool:
    """True for an instance id of the form ``@name@key``."""
    return instance_id.startswith(ENTITY_PREFIX) and "@" in instance_id[1:]


def entity_name_of(instance_id: str) -> str:
    """The entity name part of an entity instance id."""
    return instance_id[1:].partition("@")[0]


def as_entity_id(entity: EntityId | str) -> EntityId:
    """An :class:`EntityId` from itself or from its ``@name@key`` form."""
    if isinstance(entity, EntityId):
        return entity
    if isinstance(entity, str):
        return EntityId.from_instance_id(entity)
    raise TypeError(f"expected a durafn.EntityId, got {entity!r}")
