"""The PostgreSQL store's reads, queries, purges and backlog: what the client, the CLI and
the dashboard ask of a task hub, beside the workers' statements in :mod:`durafn.store.postgres`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from durafn.core.errors import InstanceStillRunning
from durafn.core.history import HistoryEvent, load_events
from durafn.core.status import RuntimeStatus
from durafn.store import postgres_sql as q
from durafn.store.base import (
    TERMINAL_STATUSES,
    Backlog,
    InstancePage,
    InstanceQuery,
    InstanceRecord,
    decode_page_token,
    encode_page_token,
    from_micros,
    purge_scope,
    record_from_row,
    to_micros,
)
from durafn.store.postgres_connections import Database, Session

TERMINAL = sorted(s.value for s in TERMINAL_STATUSES)
# How raised events begin in their stored form (``dump_event``): the SQLite store counts
# dropped events the same way.
RAISED_PREFIX = '{"kind":"EventRaised"'


class PostgresQueries:
    """The reads and queries of :class:`~durafn.store.postgres.PostgresStore`, which inherits
    them, with the helpers every statement uses."""

    task_hub: str
    _db: Database
    _quoted: str
    _statements: dict[str, str]

    def _sql(self, template: str) -> str:
        """``template`` with ``{s}`` naming this store's schema."""
        statement = self._statements.get(template)
        if statement is None:
            statement = self._statements[template] = template.replace("{s}", self._quoted)
        return statement

    def _key(self, instance_id: str, **more: Any) -> dict[str, Any]:
        return {"hub": self.task_hub, "iid": instance_id, **more}

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        def read(s: Session) -> InstanceRecord | None:
            row = s.fetchone(self._sql(q.GET_INSTANCE), self._key(instance_id))
            return record_from_row(row) if row else None

        return await self._db.read(read)

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        def read(s: Session) -> list[HistoryEvent]:
            rows = s.fetchall(self._sql(q.GET_HISTORY), self._key(instance_id))
            return [event for (text,) in rows for event in load_events(text)]

        return await self._db.read(read)

    async def dropped_events(self, instance_id: str) -> int:
        """How many events were dropped because they reached a finished instance."""

        def read(s: Session) -> int:
            row = s.fetchone(self._sql(q.GET_DROPPED), self._key(instance_id))
            return int(row[0]) if row else 0

        return await self._db.read(read)

    def _delete_instance(self, s: Session, instance_id: str) -> None:
        s.execute(self._sql(q.DELETE_INSTANCE), self._key(instance_id))
        s.changed = True

    async def query_instances(self, query: InstanceQuery) -> InstancePage:
        where, values = self._where(query)
        if query.continuation_token:
            created, last_id = decode_page_token(query.continuation_token)
            where.append("(created_at, instance_id) < (%(after_created)s, %(after_id)s)")
            values.update(after_created=created, after_id=last_id)
        values["limit"] = query.page_size + 1
        statement = self._sql(q.QUERY_INSTANCES).replace("{where}", " AND ".join(where))

        def read(s: Session) -> list[tuple[Any, ...]]:
            return s.fetchall(statement, values)

        rows = await self._db.read(read)
        records = [record_from_row(r) for r in rows[: query.page_size]]
        token = None
        if len(rows) > query.page_size and records:
            token = encode_page_token(records[-1].created_at, records[-1].instance_id)
        return InstancePage(records, token)

    async def count_instances(self, query: InstanceQuery) -> dict[RuntimeStatus, int]:
        where, values = self._where(query)
        statement = self._sql(q.COUNT_INSTANCES).replace("{where}", " AND ".join(where))

        def read(s: Session) -> list[tuple[Any, ...]]:
            return s.fetchall(statement, values)

        rows = await self._db.read(read)
        return {RuntimeStatus(status): int(count) for status, count in rows}

    def _where(self, query: InstanceQuery) -> tuple[list[str], dict[str, Any]]:
        where = ["task_hub = %(hub)s"]
        values: dict[str, Any] = {"hub": self.task_hub}
        if query.runtime_status is not None:
            where.append("status = ANY(%(statuses)s::text[])")
            values["statuses"] = sorted(s.value for s in query.runtime_status)
        if query.created_from is not None:
            where.append("created_at >= %(created_from)s")
            values["created_from"] = to_micros(query.created_from)
        if query.created_to is not None:
            where.append("created_at <= %(created_to)s")
            values["created_to"] = to_micros(query.created_to)
        if query.name is not None:
            where.append("name = %(name)s")
            values["name"] = query.name
        if query.instance_id_prefix is not None:
            where.append("starts_with(instance_id, %(prefix)s)")
            values["prefix"] = query.instance_id_prefix
        where.append(("" if query.entities else "NOT ") + "starts_with(instance_id, '@')")
        return where, values

    async def purge_instance(self, instance_id: str) -> int:
        def tx(s: Session) -> int:
            row = s.fetchone(self._sql(q.LOCK_INSTANCE_STATUS), self._key(instance_id))
            if row is None:
                return 0
            status = RuntimeStatus(row[0])
            if not status.is_terminal:
                raise InstanceStillRunning(instance_id, status.value)
            self._delete_instance(s, instance_id)
            return 1

        return await self._db.write(tx)

    async def purge_instances(self, query: InstanceQuery) -> int:
        narrowed = purge_scope(query)
        where, values = self._where(narrowed)
        statement = self._sql(q.PURGE_INSTANCES).replace("{where}", " AND ".join(where))

        def tx(s: Session) -> int:
            row = s.fetchone(statement, values)
            purged = int(row[0]) if row else 0
            s.changed = purged > 0
            return purged

        return await self._db.write(tx, transaction=False)

    async def backlog(self, now: datetime) -> Backlog:
        values = {"hub": self.task_hub, "now": to_micros(now)}

        def read(s: Session) -> Backlog:
            row = s.fetchone(self._sql(q.BACKLOG), values)
            assert row is not None
            return Backlog(int(row[0]), int(row[1]), int(row[2]))

        return await self._db.read(read)

    async def next_visible_at(self, now: datetime) -> datetime | None:
        values = {"hub": self.task_hub, "now": to_micros(now)}

        def read(s: Session) -> int | None:
            row = s.fetchone(self._sql(q.NEXT_VISIBLE_AT), values)
            return None if row is None or row[0] is None else int(row[0])

        micros = await self._db.read(read)
        return from_micros(micros) if micros is not None else None
