"""The PostgreSQL schema: numbered migrations, applied once, under an advisory lock.

The tables live in one PostgreSQL schema (``durafn`` unless the store URL says
``?schema=NAME``), so several apps can share a database; the task hubs of one app share the
tables, and a ``task_hub`` column leads every key. The schema version is the single row of
``<schema>.durafn_schema_version``.

A :class:`~durafn.store.postgres.PostgresStore` brings the schema up to date by itself on first
use: several processes starting at once against an empty database serialize on
``pg_advisory_xact_lock`` and the schema is created exactly once, in one transaction. A
database whose schema is newer than this durafn is refused with ``StoreError``.

Operator API, for ``durafn db status`` and ``durafn db upgrade`` (all coroutines; ``conninfo``
is a libpq connection string or ``postgresql://`` URL without durafn's own options, ``schema``
the PostgreSQL schema; :func:`durafn.store.postgres_target` splits a store URL into both)::

    from durafn.store import postgres_target
    from durafn.store.postgres_schema import SCHEMA_VERSION, current_version, upgrade

    target = postgres_target("postgresql://app@db/prod?schema=orders")
    version = await current_version(target.conninfo, target.schema)  # 0: no tables yet
    before, after = await upgrade(target.conninfo, target.schema)     # after == SCHEMA_VERSION

:func:`current_version` only reads; a result above :data:`SCHEMA_VERSION` means the database
was upgraded by a newer durafn. :func:`upgrade` applies the missing migrations (creating the
PostgreSQL schema if needed) in one transaction and returns the versions before and after; it
may run twice, or from several processes at once. Both raise ``StoreError`` when the server
cannot be reached or refuses; :func:`upgrade` also when the database's schema is newer than
:data:`SCHEMA_VERSION` (upgrade durafn instead).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from durafn.core.errors import StoreError

DEFAULT_SCHEMA = "durafn"

# Each entry moves the schema from version i to i + 1. Never edit a released entry: add one.
# ``{s}`` stands for the quoted schema name. Times are integer microseconds since the epoch
# (as in SQLite), and the text keys compare bytewise (COLLATE "C"), as SQLite's do.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE {s}.instances (
        task_hub           TEXT COLLATE "C" NOT NULL,
        instance_id        TEXT COLLATE "C" NOT NULL,
        execution_id       TEXT COLLATE "C" NOT NULL,
        name               TEXT COLLATE "C" NOT NULL,
        status             TEXT COLLATE "C" NOT NULL,
        input              TEXT,
        output             TEXT,
        custom_status      TEXT,
        failure            TEXT,
        created_at         BIGINT NOT NULL,
        updated_at         BIGINT NOT NULL,
        completed_at       BIGINT,
        scheduled_start_at BIGINT,
        parent_instance_id TEXT COLLATE "C",
        locked_by          TEXT COLLATE "C",
        lock_expires_at    BIGINT,
        dropped_events     BIGINT NOT NULL DEFAULT 0,
        history_length     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (task_hub, instance_id)
    );
    CREATE INDEX instances_by_created ON {s}.instances (task_hub, created_at, instance_id);
    CREATE INDEX instances_by_status ON {s}.instances (task_hub, status, created_at);
    CREATE INDEX instances_by_lease ON {s}.instances (task_hub, lock_expires_at)
        WHERE lock_expires_at IS NOT NULL;

    CREATE TABLE {s}.history (
        task_hub     TEXT COLLATE "C" NOT NULL,
        instance_id  TEXT COLLATE "C" NOT NULL,
        execution_id TEXT COLLATE "C" NOT NULL,
        sequence     INTEGER NOT NULL,
        event        TEXT NOT NULL,
        PRIMARY KEY (task_hub, instance_id, execution_id, sequence)
    );

    CREATE TABLE {s}.inbox (
        task_hub     TEXT COLLATE "C" NOT NULL,
        instance_id  TEXT COLLATE "C" NOT NULL,
        seq          BIGSERIAL,
        execution_id TEXT COLLATE "C",
        visible_at   BIGINT NOT NULL,
        event        TEXT NOT NULL,
        PRIMARY KEY (task_hub, instance_id, seq)
    );
    CREATE INDEX inbox_by_visible ON {s}.inbox (task_hub, visible_at, seq);

    CREATE TABLE {s}.activity_tasks (
        task_hub        TEXT COLLATE "C" NOT NULL,
        instance_id     TEXT COLLATE "C" NOT NULL,
        seq             BIGSERIAL,
        execution_id    TEXT COLLATE "C" NOT NULL,
        event_id        INTEGER NOT NULL,
        name            TEXT NOT NULL,
        input           TEXT,
        visible_at      BIGINT NOT NULL,
        locked_by       TEXT COLLATE "C",
        lock_expires_at BIGINT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (task_hub, instance_id, seq)
    );
    CREATE UNIQUE INDEX activity_tasks_by_step
        ON {s}.activity_tasks (task_hub, instance_id, execution_id, event_id);
    CREATE INDEX activity_tasks_by_visible ON {s}.activity_tasks (task_hub, visible_at, seq);
    CREATE INDEX activity_tasks_by_lease ON {s}.activity_tasks (task_hub, lock_expires_at)
        WHERE lock_expires_at IS NOT NULL;
    """,
    # The scale signal: the store's backlog and KEDA's postgresql scaler read the same numbers.
    """
    CREATE FUNCTION {s}.backlog(
        hub TEXT,
        now_micros BIGINT DEFAULT NULL
    ) RETURNS TABLE (orchestrations BIGINT, activities BIGINT, scheduled BIGINT)
    LANGUAGE sql STABLE AS $$
        WITH clock AS (
            SELECT COALESCE(
                now_micros, (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT
            ) AS now
        )
        SELECT
            (SELECT count(DISTINCT m.instance_id) FROM {s}.inbox m, clock
                WHERE m.task_hub = hub AND m.visible_at <= clock.now),
            (SELECT count(*) FROM {s}.activity_tasks a, clock
                WHERE a.task_hub = hub AND a.visible_at <= clock.now),
            (SELECT count(*) FROM {s}.inbox m, clock
                WHERE m.task_hub = hub AND m.visible_at > clock.now)
    $$;

    CREATE FUNCTION {s}.recommended_workers(
        hub TEXT DEFAULT 'default',
        orchestrations_per_worker INTEGER DEFAULT 4,
        activities_per_worker INTEGER DEFAULT 16
    ) RETURNS INTEGER
    LANGUAGE sql STABLE AS $$
        SELECT GREATEST(
            ceil(b.orchestrations::NUMERIC / GREATEST(orchestrations_per_worker, 1)),
            ceil(b.activities::NUMERIC / GREATEST(activities_per_worker, 1))
        )::INTEGER
        FROM {s}.backlog(hub) b
    $$;
    """,
    # Entities keep their state (scheduler state, JSON text) in their instance row.
    """
    ALTER TABLE {s}.instances ADD COLUMN entity_state TEXT;
    """,
    # A worker runs 64 episodes at once by default (it ran 4).
    """
    CREATE OR REPLACE FUNCTION {s}.recommended_workers(
        hub TEXT DEFAULT 'default',
        orchestrations_per_worker INTEGER DEFAULT 64,
        activities_per_worker INTEGER DEFAULT 16
    ) RETURNS INTEGER
    LANGUAGE sql STABLE AS $$
        SELECT GREATEST(
            ceil(b.orchestrations::NUMERIC / GREATEST(orchestrations_per_worker, 1)),
            ceil(b.activities::NUMERIC / GREATEST(activities_per_worker, 1))
        )::INTEGER
        FROM {s}.backlog(hub) b
    $$;
    """,
    # A history row holds the events one checkpoint appended (a few rows for many), keyed by
    # the sequence number of the first (``history_rows``); the rows already there hold one
    # event each. A durafn before this version could not read the new rows: the version keeps
    # it off the database.
    """
    COMMENT ON TABLE {s}.history IS
        'The events each checkpoint appended: a row per checkpoint (rows of about 1 MiB for '
        'many events), keyed by the sequence number of its first event; one event''s JSON '
        'object, or a JSON array of several.';
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

_VERSION_TABLE = """
    CREATE TABLE IF NOT EXISTS {s}.durafn_schema_version (
        id          INTEGER PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        version     INTEGER NOT NULL,
        upgraded_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
"""

Connection = psycopg.Connection[tuple[Any, ...]]
T = TypeVar("T")


def quote_schema(schema: str) -> str:
    """``schema`` as a quoted SQL identifier; ``StoreError`` if PostgreSQL cannot name it."""
    if not schema or "\x00" in schema or len(schema.encode()) > 63:
        raise StoreError(f"invalid PostgreSQL schema name {schema!r} (1 to 63 bytes, no NUL)")
    return '"' + schema.replace('"', '""') + '"'


def script(index: int, schema: str) -> str:
    """Migration ``index`` (0-based) with the schema name filled in."""
    return MIGRATIONS[index].replace("{s}", quote_schema(schema))


async def current_version(conninfo: str, schema: str = DEFAULT_SCHEMA) -> int:
    """The schema version of ``schema`` in the database ``conninfo`` names; 0 if none."""
    return await asyncio.to_thread(_on_connection, conninfo, lambda c: read_version(c, schema))


async def upgrade(conninfo: str, schema: str = DEFAULT_SCHEMA) -> tuple[int, int]:
    """Apply the missing migrations; returns the schema versions before and after."""
    return await asyncio.to_thread(_on_connection, conninfo, lambda c: migrate(c, schema))


def read_version(conn: Connection, schema: str) -> int:
    # The catalog is read with a query, not ``to_regclass``: a query sees what committed while
    # this session waited for the advisory lock, where the session's cache of names may not.
    cursor = conn.execute(
        "SELECT 1 FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'durafn_schema_version'",
        (schema,),
    )
    if cursor.fetchone() is None:
        return 0
    cursor = conn.execute(f"SELECT version FROM {quote_schema(schema)}.durafn_schema_version")
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def migrate(conn: Connection, schema: str, target: int = SCHEMA_VERSION) -> tuple[int, int]:
    """Bring ``schema`` to version ``target`` on an autocommit connection; (before, after).

    Many processes may call this at once: they serialize on an advisory lock, and each looks
    at the version again once it holds the lock. A version above ``target`` is left alone.
    """
    before = read_version(conn, schema)
    _refuse_newer(before)
    if before >= target:
        return before, before
    quoted = quote_schema(schema)
    # READ COMMITTED whatever the server's default: the version read after the lock wait must
    # see what the previous holder committed.
    conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        before = read_version(conn, schema)
        _refuse_newer(before)
        if before >= target:
            return before, before
        cursor = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if cursor.fetchone() is None:
            conn.execute(f"CREATE SCHEMA {quoted}")
        conn.execute(_VERSION_TABLE.replace("{s}", quoted))
        for index in range(before, target):
            conn.execute(script(index, schema))
        conn.execute(
            f"INSERT INTO {quoted}.durafn_schema_version (id, version) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, upgraded_at = now()",
            (target,),
        )
    return before, target


def _refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the database has durafn schema version {version}, newer than this durafn "
            f"({SCHEMA_VERSION}); upgrade durafn"
        )


def _lock_key(schema: str) -> int:
    digest = hashlib.blake2b(b"durafn-schema\x00" + schema.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _on_connection(conninfo: str, work: Callable[[Connection], T]) -> T:
    """``work`` on a connection of its own, psycopg's errors as ``StoreError``."""
    try:
        conn = psycopg.Connection.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc
    with conn:
        try:
            return work(conn)
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL error: {exc}") from exc
