"""The SQLite store's reads, queries, purges and backlog: what the client, the CLI and the
dashboard ask of a task hub, beside the worker's hot path in :mod:`durafn.store.sqlite`."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from durafn.core.errors import InstanceStillRunning
from durafn.core.history import HistoryEvent, load_events
from durafn.core.status import RuntimeStatus
from durafn.store.base import (
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
from durafn.store.sqlite_connection import SqliteDatabase

_INSTANCE_COLUMNS = (
    "instance_id, name, execution_id, status, created_at, updated_at, input, output, "
    "custom_status, failure, parent_instance_id, scheduled_start_at, completed_at, entity_state"
)


class SqliteQueries:
    """The reads and queries of :class:`~durafn.store.sqlite.SqliteStore`, which inherits them."""

    task_hub: str
    _db: SqliteDatabase

    async def get_instance(self, instance_id: str) -> InstanceRecord | None:
        def read(conn: sqlite3.Connection) -> InstanceRecord | None:
            row = conn.execute(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE task_hub=? AND instance_id=?",
                (self.task_hub, instance_id),
            ).fetchone()
            return record_from_row(row) if row else None

        return await self._db.read(read)

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        def read(conn: sqlite3.Connection) -> list[HistoryEvent]:
            rows = conn.execute(
                "SELECT h.event FROM history h JOIN instances i "
                "ON i.task_hub=h.task_hub AND i.instance_id=h.instance_id "
                "AND i.execution_id=h.execution_id "
                "WHERE h.task_hub=? AND h.instance_id=? ORDER BY h.sequence",
                (self.task_hub, instance_id),
            ).fetchall()
            return [event for (text,) in rows for event in load_events(text)]

        return await self._db.run(read)

    async def dropped_events(self, instance_id: str) -> int:
        """How many events were dropped because they reached a finished instance."""

        def read(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT dropped_events FROM instances WHERE task_hub=? AND instance_id=?",
                (self.task_hub, instance_id),
            ).fetchone()
            return int(row[0]) if row else 0

        return await self._db.read(read)

    def _delete_instance(self, conn: sqlite3.Connection, instance_id: str) -> None:
        for table in ("instances", "history", "inbox", "activity_tasks"):
            conn.execute(
                f"DELETE FROM {table} WHERE task_hub=? AND instance_id=?",
                (self.task_hub, instance_id),
            )

    async def query_instances(self, query: InstanceQuery) -> InstancePage:
        def read(conn: sqlite3.Connection) -> InstancePage:
            where, params = self._where(query)
            if query.continuation_token:
                created, last_id = decode_page_token(query.continuation_token)
                where.append("(created_at<? OR (created_at=? AND instance_id<?))")
                params += [created, created, last_id]
            rows = conn.execute(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, instance_id DESC LIMIT ?",
                [*params, query.page_size + 1],
            ).fetchall()
            records = [record_from_row(r) for r in rows[: query.page_size]]
            token = None
            if len(rows) > query.page_size and records:
                token = encode_page_token(records[-1].created_at, records[-1].instance_id)
            return InstancePage(records, token)

        return await self._db.run(read)

    async def count_instances(self, query: InstanceQuery) -> dict[RuntimeStatus, int]:
        def read(conn: sqlite3.Connection) -> dict[RuntimeStatus, int]:
            where, params = self._where(query)
            rows = conn.execute(
                f"SELECT status, COUNT(*) FROM instances WHERE {' AND '.join(where)} "
                "GROUP BY status",
                params,
            ).fetchall()
            return {RuntimeStatus(status): int(count) for status, count in rows}

        return await self._db.read(read)

    def _where(self, query: InstanceQuery) -> tuple[list[str], list[Any]]:
        where = ["task_hub=?"]
        params: list[Any] = [self.task_hub]
        if query.runtime_status is not None:
            statuses = sorted(s.value for s in query.runtime_status)
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params += statuses
            if not statuses:
                where.append("0")
        if query.created_from is not None:
            where.append("created_at>=?")
            params.append(to_micros(query.created_from))
        if query.created_to is not None:
            where.append("created_at<=?")
            params.append(to_micros(query.created_to))
        if query.name is not None:
            where.append("name=?")
            params.append(query.name)
        if query.instance_id_prefix is not None:
            where.append("substr(instance_id, 1, ?)=?")
            params += [len(query.instance_id_prefix), query.instance_id_prefix]
        where.append("substr(instance_id, 1, 1)" + ("=" if query.entities else "<>") + "'@'")
        return where, params

    async def purge_instance(self, instance_id: str) -> int:
        def tx(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT status FROM instances WHERE task_hub=? AND instance_id=?",
                (self.task_hub, instance_id),
            ).fetchone()
            if row is None:
                return 0
            status = RuntimeStatus(row[0])
            if not status.is_terminal:
                raise InstanceStillRunning(instance_id, status.value)
            self._delete_instance(conn, instance_id)
            return 1

        return await self._db.write(tx)

    async def purge_instances(self, query: InstanceQuery) -> int:
        narrowed = purge_scope(query)

        def tx(conn: sqlite3.Connection) -> int:
            where, params = self._where(narrowed)
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT instance_id FROM instances WHERE {' AND '.join(where)}",
                    params,
                )
            ]
            for instance_id in ids:
                self._delete_instance(conn, instance_id)
            return len(ids)

        return await self._db.write(tx)

    async def backlog(self, now: datetime) -> Backlog:
        def read(conn: sqlite3.Connection) -> Backlog:
            n = to_micros(now)
            row = conn.execute(
                "SELECT "
                "(SELECT COUNT(DISTINCT instance_id) FROM inbox "
                "WHERE task_hub=? AND visible_at<=?), "
                # A leased task's visible_at is its lease's expiry: it counts while it runs.
                "(SELECT COUNT(*) FROM activity_tasks WHERE task_hub=? "
                "AND (visible_at<=? OR locked_by IS NOT NULL)), "
                "(SELECT COUNT(*) FROM inbox WHERE task_hub=? AND visible_at>?)",
                (self.task_hub, n) * 3,
            ).fetchone()
            return Backlog(int(row[0]), int(row[1]), int(row[2]))

        return await self._db.read(read)

    async def next_visible_at(self, now: datetime) -> datetime | None:
        def read(conn: sqlite3.Connection) -> datetime | None:
            n = to_micros(now)
            row = conn.execute(
                "SELECT MIN(t) FROM ("
                "SELECT MIN(visible_at) AS t FROM inbox WHERE task_hub=? AND visible_at>? "
                # An activity task's visible_at is also its lease's expiry while it is leased.
                "UNION ALL SELECT MIN(visible_at) FROM activity_tasks "
                "WHERE task_hub=? AND visible_at>? "
                "UNION ALL SELECT MIN(lock_expires_at) FROM instances "
                "WHERE task_hub=? AND lock_expires_at>?)",
                (self.task_hub, n) * 3,
            ).fetchone()
            return from_micros(row[0]) if row and row[0] is not None else None

        return await self._db.read(read)
