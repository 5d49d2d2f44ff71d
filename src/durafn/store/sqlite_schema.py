"""The SQLite schema, as numbered migrations applied in order inside one transaction."""

from __future__ import annotations

import sqlite3

from durafn.core.errors import StoreError

# Each entry moves the schema from version i to i + 1. Never edit a released entry: add one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE instances (
        task_hub           TEXT    NOT NULL,
        instance_id        TEXT    NOT NULL,
        execution_id       TEXT    NOT NULL,
        name               TEXT    NOT NULL,
        status             TEXT    NOT NULL,
        input              TEXT,
        output             TEXT,
        custom_status      TEXT,
        failure            TEXT,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL,
        completed_at       INTEGER,
        scheduled_start_at INTEGER,
        parent_instance_id TEXT,
        locked_by          TEXT,
        lock_expires_at    INTEGER,
        dropped_events     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (task_hub, instance_id)
    ) WITHOUT ROWID;
    CREATE INDEX instances_by_created ON instances (task_hub, created_at, instance_id);
    CREATE INDEX instances_by_status ON instances (task_hub, status, created_at);

    CREATE TABLE history (
        task_hub     TEXT    NOT NULL,
        instance_id  TEXT    NOT NULL,
        execution_id TEXT    NOT NULL,
        sequence     INTEGER NOT NULL,
        event        TEXT    NOT NULL,
        PRIMARY KEY (task_hub, instance_id, execution_id, sequence)
    ) WITHOUT ROWID;

    CREATE TABLE inbox (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        task_hub     TEXT    NOT NULL,
        instance_id  TEXT    NOT NULL,
        execution_id TEXT,
        visible_at   INTEGER NOT NULL,
        event        TEXT    NOT NULL
    );
    CREATE INDEX inbox_by_instance ON inbox (task_hub, instance_id, seq);
    CREATE INDEX inbox_by_visible ON inbox (task_hub, visible_at, seq);

    CREATE TABLE activity_tasks (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        task_hub        TEXT    NOT NULL,
        instance_id     TEXT    NOT NULL,
        execution_id    TEXT    NOT NULL,
        event_id        INTEGER NOT NULL,
        name            TEXT    NOT NULL,
        input           TEXT,
        visible_at      INTEGER NOT NULL,
        locked_by       TEXT,
        lock_expires_at INTEGER,
        attempts        INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX activity_tasks_by_step
        ON activity_tasks (task_hub, instance_id, execution_id, event_id);
    CREATE INDEX activity_tasks_by_visible ON activity_tasks (task_hub, visible_at, seq);
    """,
    # 2: the history length on the instance row (no COUNT(*) per claim), and indexes over the
    # leases that are held, so finding the next expiry does not scan every instance.
    """
    ALTER TABLE instances ADD COLUMN history_length INTEGER NOT NULL DEFAULT 0;
    UPDATE instances SET history_length = (
        SELECT COUNT(*) FROM history h
        WHERE h.task_hub = instances.task_hub AND h.instance_id = instances.instance_id
        AND h.execution_id = instances.execution_id
    );
    CREATE INDEX instances_by_lease ON instances (task_hub, lock_expires_at)
        WHERE lock_expires_at IS NOT NULL;
    CREATE INDEX activity_tasks_by_lease ON activity_tasks (task_hub, lock_expires_at)
        WHERE lock_expires_at IS NOT NULL;
    """,
    # 3: entities keep their state (scheduler state, JSON text) in their instance row.
    """
    ALTER TABLE instances ADD COLUMN entity_state TEXT;
    """,
    # 4: activity tasks keyed by their step, with one index. A task's ``visible_at`` is when
    # it may next be claimed: when it is due or, while it is leased, when its lease expires
    # (so one index serves claims and expiries alike). A step that schedules an activity
    # writes two b-tree pages for it instead of five (the table, three indexes and the
    # AUTOINCREMENT counter), and every commit writes each page it touched to the WAL.
    # ``task_id`` tells apart two tasks that had the same step key one after the other (a
    # late result of the first never completes the second): random, or the old ``seq``.
    """
    CREATE TABLE activity_tasks_keyed (
        task_hub     TEXT    NOT NULL,
        instance_id  TEXT    NOT NULL,
        execution_id TEXT    NOT NULL,
        event_id     INTEGER NOT NULL,
        name         TEXT    NOT NULL,
        input        TEXT,
        visible_at   INTEGER NOT NULL,
        locked_by    TEXT,
        attempts     INTEGER NOT NULL DEFAULT 0,
        task_id      INTEGER NOT NULL,
        PRIMARY KEY (task_hub, instance_id, execution_id, event_id)
    ) WITHOUT ROWID;
    INSERT INTO activity_tasks_keyed
        SELECT task_hub, instance_id, execution_id, event_id, name, input,
               MAX(visible_at, COALESCE(lock_expires_at, visible_at)), locked_by, attempts, seq
        FROM activity_tasks;
    DROP TABLE activity_tasks;
    ALTER TABLE activity_tasks_keyed RENAME TO activity_tasks;
    CREATE INDEX activity_tasks_by_visible ON activity_tasks (task_hub, visible_at);
    """,
    # 5: a history row holds the events one checkpoint appended (a few rows for many), keyed by
    # the sequence number of the first: one event's stored form, or a JSON array of several
    # (``history_rows``). The rows already there stay as they are (one event each); no
    # statement changes. The version says that a durafn before this one could not read the file.
    "",
]

SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to :data:`SCHEMA_VERSION`; several processes may call it at once."""
    if current_version(conn) == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = current_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database has schema version {version}, newer than this durafn "
                f"({SCHEMA_VERSION}); upgrade durafn"
            )
        for script in MIGRATIONS[version:]:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
