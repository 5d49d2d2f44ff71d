"""The SQL of the PostgreSQL store, one named statement each.

``{s}`` stands for the quoted schema name (filled in once per store); parameters are named.
Arrays go in binary (``%(name)b``): psycopg escapes every element of a text-format array with a
regular expression, which costs several times the binary form on every checkpoint.
Every statement stays inside one ``(task_hub, instance_id)`` except the claims, the queries and
the bulk purge (DESIGN.md §4). Times are integer microseconds since the epoch.
"""

from __future__ import annotations

# ---------------------------------------------------------------------- instances

LOCK_INSTANCE_STATUS = """
SELECT status FROM {s}.instances
WHERE task_hub = %(hub)s AND instance_id = %(iid)s
FOR UPDATE
"""

# Creates the instance and queues its start; no row back when the id was taken meanwhile.
# Rows a racing delivery may have left for the id while nobody had it are cleared, only when
# the insert won (then no one else can be creating the id).
INSERT_INSTANCE = """
WITH created AS (
    INSERT INTO {s}.instances (task_hub, instance_id, execution_id, name, status, input,
        created_at, updated_at, scheduled_start_at, parent_instance_id)
    VALUES (%(hub)s, %(iid)s, %(eid)s, %(name)s, %(status)s, %(input)s,
        %(now)s, %(now)s, %(scheduled)s, %(parent)s)
    ON CONFLICT (task_hub, instance_id) DO NOTHING
    RETURNING instance_id
), h AS (
    DELETE FROM {s}.history WHERE task_hub = %(hub)s AND instance_id = %(iid)s
        AND EXISTS (SELECT 1 FROM created)
), a AS (
    DELETE FROM {s}.activity_tasks WHERE task_hub = %(hub)s AND instance_id = %(iid)s
        AND EXISTS (SELECT 1 FROM created)
), m AS (
    DELETE FROM {s}.inbox WHERE task_hub = %(hub)s AND instance_id = %(iid)s
        AND EXISTS (SELECT 1 FROM created)
)
INSERT INTO {s}.inbox (task_hub, instance_id, execution_id, visible_at, event)
SELECT %(hub)s, instance_id, NULL, %(visible)s, %(event)s FROM created
RETURNING seq
"""

DELETE_INSTANCE = """
WITH i AS (DELETE FROM {s}.instances WHERE task_hub = %(hub)s AND instance_id = %(iid)s),
     h AS (DELETE FROM {s}.history WHERE task_hub = %(hub)s AND instance_id = %(iid)s),
     a AS (DELETE FROM {s}.activity_tasks WHERE task_hub = %(hub)s AND instance_id = %(iid)s)
DELETE FROM {s}.inbox WHERE task_hub = %(hub)s AND instance_id = %(iid)s
"""

# Messages ``(execution_id, visible_at, event)`` for one instance, queued in array order.
ENQUEUE = """
INSERT INTO {s}.inbox (task_hub, instance_id, execution_id, visible_at, event)
SELECT %(hub)s, %(iid)s, m.execution_id, m.visible_at, m.event
FROM unnest(%(eids)b::text[], %(times)b::bigint[], %(events)b::text[])
    WITH ORDINALITY AS m(execution_id, visible_at, event, ord)
ORDER BY m.ord
"""

# The instance row stays locked until the message is queued, so that the message is refused or
# queued, never both. An ending checkpoint that waited for that lock reads the inbox as it was
# when its statement began (``CHECKPOINT_END``): a message queued meanwhile stays in the
# finished instance's inbox until a claim sweeps it (counting it as dropped if it was raised).
LOCK_INSTANCE_FOR_MESSAGE = """
SELECT status, scheduled_start_at FROM {s}.instances
WHERE task_hub = %(hub)s AND instance_id = %(iid)s
FOR NO KEY UPDATE
"""

COUNT_DROPPED = """
UPDATE {s}.instances SET dropped_events = dropped_events + %(count)s
WHERE task_hub = %(hub)s AND instance_id = %(iid)s
"""

GET_INSTANCE = """
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
    custom_status, failure, parent_instance_id, scheduled_start_at, completed_at, entity_state
FROM {s}.instances
WHERE task_hub = %(hub)s AND instance_id = %(iid)s
"""

GET_HISTORY = """
SELECT h.event FROM {s}.history h
JOIN {s}.instances i ON i.task_hub = h.task_hub AND i.instance_id = h.instance_id
    AND i.execution_id = h.execution_id
WHERE h.task_hub = %(hub)s AND h.instance_id = %(iid)s
ORDER BY h.sequence
"""

GET_DROPPED = """
SELECT dropped_events FROM {s}.instances WHERE task_hub = %(hub)s AND instance_id = %(iid)s
"""

# ---------------------------------------------------------------------- orchestration work

# The instance whose oldest visible message is the oldest, among those no lease holds; rows
# another claim is locking right now are skipped, not waited for. NO KEY UPDATE, not UPDATE:
# senders holding an entity's row (``LOCK_ENTITIES``) do not hide it from claims. The claims
# walk the visible inbox and look each message's instance up by its key (LATERAL): a plan
# that scanned the instances of the task hub instead, finished ones included, is what a
# table without statistics would otherwise get.
CLAIM_INSTANCE = """
SELECT i.instance_id, i.execution_id, i.name, i.status, i.history_length, i.entity_state
FROM (
    SELECT instance_id, visible_at, seq FROM {s}.inbox
    WHERE task_hub = %(hub)s AND visible_at <= %(now)s
    ORDER BY visible_at, seq
) m CROSS JOIN LATERAL (
    SELECT * FROM {s}.instances
    WHERE task_hub = %(hub)s AND instance_id = m.instance_id
        AND (lock_expires_at IS NULL OR lock_expires_at <= %(now)s)
    FOR NO KEY UPDATE SKIP LOCKED
) i
LIMIT 1
"""

# Up to ``limit`` claimable instances in the order of their first visible message, locked, from
# one read of the first ``scan`` visible messages: a claim of many instances reads the inbox
# once, not once per instance past the messages of the instances it leased already. Each
# candidate's row is looked up by its key and locked in turn (the LATERAL subquery), so the
# plan does not depend on statistics (a fresh or churning table has none worth the name)
# and no more rows are locked than the LIMIT takes.
CLAIM_INSTANCES = """
WITH v AS MATERIALIZED (
    SELECT instance_id, visible_at, seq FROM {s}.inbox
    WHERE task_hub = %(hub)s AND visible_at <= %(now)s
    ORDER BY visible_at, seq
    LIMIT %(scan)s
), r AS MATERIALIZED (
    SELECT instance_id, min(visible_at) AS first_at, min(seq) AS first_seq
    FROM v GROUP BY instance_id
    ORDER BY first_at, first_seq
)
SELECT i.instance_id, i.execution_id, i.name, i.status, i.history_length, i.entity_state
FROM r CROSS JOIN LATERAL (
    SELECT * FROM {s}.instances
    WHERE task_hub = %(hub)s AND instance_id = r.instance_id
        AND (lock_expires_at IS NULL OR lock_expires_at <= %(now)s)
    FOR NO KEY UPDATE SKIP LOCKED
) i
LIMIT %(limit)s
"""

# Whether a claim could find anything: one cheap read in autocommit spares an idle worker the
# claim's transaction (most wake-ups, from commits elsewhere, bring it nothing to claim). It
# walks the visible inbox as the claims do.
ANY_CLAIMABLE_INSTANCE = """
SELECT EXISTS (
    SELECT 1 FROM {s}.inbox m CROSS JOIN LATERAL (
        SELECT 1 FROM {s}.instances i
        WHERE i.task_hub = %(hub)s AND i.instance_id = m.instance_id
            AND (i.lock_expires_at IS NULL OR i.lock_expires_at <= %(now)s)
        LIMIT 1
    ) i
    WHERE m.task_hub = %(hub)s AND m.visible_at <= %(now)s
)
"""

ANY_CLAIMABLE_ACTIVITY = """
SELECT EXISTS (
    SELECT 1 FROM {s}.activity_tasks
    WHERE task_hub = %(hub)s AND visible_at <= %(now)s
        AND (lock_expires_at IS NULL OR lock_expires_at <= %(now)s)
)
"""

# Drops the results and timers of earlier executions (they can never apply); then, if a
# message is left to apply, takes the lease and returns the messages (no row: not leased; the
# message that made the claim pick the instance was consumed meanwhile, or was stale). Every
# part sees the inbox as it was before the DELETE, hence the execution filter everywhere.
LEASE_INSTANCE = """
WITH stale AS (
    DELETE FROM {s}.inbox
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s
        AND execution_id IS NOT NULL AND execution_id <> %(eid)s
), leased AS (
    UPDATE {s}.instances SET locked_by = %(token)s, lock_expires_at = %(until)s
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND EXISTS (
        SELECT 1 FROM {s}.inbox
        WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND visible_at <= %(now)s
            AND (execution_id IS NULL OR execution_id = %(eid)s)
    )
    RETURNING instance_id
)
SELECT seq, event FROM {s}.inbox
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND visible_at <= %(now)s
    AND (execution_id IS NULL OR execution_id = %(eid)s) AND EXISTS (SELECT 1 FROM leased)
ORDER BY seq
LIMIT %(max)s
"""

# Deletes an instance's queued messages, counting the raised events among them as dropped.
DROP_INBOX = """
WITH gone AS (
    DELETE FROM {s}.inbox WHERE task_hub = %(hub)s AND instance_id = %(iid)s RETURNING event
)
UPDATE {s}.instances
SET dropped_events = dropped_events
    + (SELECT count(*) FROM gone WHERE starts_with(gone.event, %(raised)s))
WHERE task_hub = %(hub)s AND instance_id = %(iid)s
"""

# The activity tasks held under the instance's token (a held checkpoint's) go with its lease.
RENEW_INSTANCE_LEASE = """
WITH held AS (
    UPDATE {s}.activity_tasks SET lock_expires_at = %(until)s
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND locked_by = %(token)s
)
UPDATE {s}.instances SET lock_expires_at = %(until)s
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND locked_by = %(token)s
"""

RELEASE_INSTANCE = """
WITH held AS (
    UPDATE {s}.activity_tasks SET locked_by = NULL, lock_expires_at = NULL
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND locked_by = %(token)s
)
UPDATE {s}.instances SET locked_by = NULL, lock_expires_at = %(until)s
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND locked_by = %(token)s
"""

# What reached a held instance while it ran its activities.
READ_INBOX = """
SELECT seq, event FROM {s}.inbox
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND visible_at <= %(now)s
    AND (execution_id IS NULL OR execution_id = %(eid)s)
ORDER BY seq
LIMIT %(max)s
"""

# Activities run in place: their rows go with the checkpoint that applies their results, and
# only while still leased under the instance's token (the caller counts the rows).
TAKE_HELD_ACTIVITIES = """
DELETE FROM {s}.activity_tasks
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND execution_id = %(eid)s
    AND event_id = ANY(%(event_ids)b::integer[]) AND locked_by = %(token)s
"""

# The fence of a checkpoint: no row when the lease is no longer the caller's.
CHECKPOINT_INSTANCE = """
UPDATE {s}.instances
SET status = %(status)s, output = %(output)s, custom_status = %(custom)s,
    failure = %(failure)s, updated_at = %(now)s, completed_at = %(completed)s,
    execution_id = %(eid)s, input = CASE WHEN %(restart)s THEN %(input)s ELSE input END,
    history_length = %(length)s, dropped_events = dropped_events + %(dropped)s,
    entity_state = COALESCE(%(entity_state)s, entity_state),
    locked_by = CASE WHEN %(hold)s::bigint IS NULL THEN NULL ELSE locked_by END,
    lock_expires_at = %(hold)s::bigint
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND locked_by = %(token)s
    AND history_length = %(first)s
"""

# The common forms of a checkpoint, one statement each: one round trip, committed on its own.
# Every change hangs on the fence (the lease, and each activity run in place still leased under
# it, locked against claims): without it the statement changes nothing and returns false.
_HELD = """
WITH held AS (
    SELECT event_id FROM {s}.activity_tasks
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND execution_id = %(eid)s
        AND event_id = ANY(%(done)b::integer[]) AND locked_by = %(token)s
    FOR UPDATE
)"""
_FENCED = """
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND locked_by = %(token)s
        AND history_length = %(first)s
        AND (SELECT count(*) FROM held) = cardinality(%(done)b::integer[])
    RETURNING 1
)"""
_APPENDED = """, appended AS (
    INSERT INTO {s}.history (task_hub, instance_id, execution_id, sequence, event)
    SELECT %(hub)s, %(iid)s, %(eid)s, e.sequence, e.event
    FROM unnest(%(sequences)b::integer[], %(events)b::text[]) AS e(sequence, event)
    WHERE EXISTS (SELECT 1 FROM fence)
)"""
_ANSWER = """
SELECT EXISTS (SELECT 1 FROM fence), (
    SELECT count(*) FROM (
        SELECT pg_notify(%(channel)s, %(sender)s)
        WHERE %(notify)s AND EXISTS (SELECT 1 FROM fence)
    ) n
), CASE WHEN %(watch)s THEN EXISTS (
    SELECT 1 FROM {s}.inbox
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND visible_at <= %(now)s
        AND (execution_id IS NULL OR execution_id = %(eid)s)
        AND seq <> ALL(%(seqs)b::bigint[])
) END
"""

# An episode recorded, activities scheduled (no message, child, restart or end).
CHECKPOINT_STEP = (
    _HELD
    + """, fence AS (
    UPDATE {s}.instances
    SET status = %(status)s, output = %(output)s, custom_status = %(custom)s,
        failure = %(failure)s, updated_at = %(now)s, completed_at = NULL,
        history_length = %(length)s, dropped_events = dropped_events + %(dropped)s,
        locked_by = CASE WHEN %(hold)s::bigint IS NULL THEN NULL ELSE locked_by END,
        lock_expires_at = %(hold)s::bigint"""
    + _FENCED
    + """, taken AS (
    DELETE FROM {s}.activity_tasks t USING held h
    WHERE t.task_hub = %(hub)s AND t.instance_id = %(iid)s AND t.execution_id = %(eid)s
        AND t.event_id = h.event_id AND EXISTS (SELECT 1 FROM fence)
), consumed AS (
    DELETE FROM {s}.inbox
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND seq = ANY(%(seqs)b::bigint[])
        AND EXISTS (SELECT 1 FROM fence)
)"""
    + _APPENDED
    + """, scheduled AS (
    INSERT INTO {s}.activity_tasks (task_hub, instance_id, execution_id, event_id, name, input,
        visible_at, locked_by, lock_expires_at, attempts)
    SELECT %(hub)s, %(iid)s, %(eid)s, a.event_id, a.name, a.input, %(now)s, %(held_by)s::text,
        %(hold)s::bigint, CASE WHEN %(held_by)s::text IS NULL THEN 0 ELSE 1 END
    FROM unnest(%(event_ids)b::integer[], %(names)b::text[], %(inputs)b::text[])
        WITH ORDINALITY AS a(event_id, name, input, ord)
    WHERE EXISTS (SELECT 1 FROM fence)
    ORDER BY a.ord
)"""
    + _ANSWER
)

# ``CHECKPOINT_STEP`` for the steps of several instances at once (one row each in the
# ``s`` arrays, numbered ``k`` from 1; the lists of each step flattened into arrays whose
# ``_k`` array says whose each element is). Each step is fenced on its own: one whose lease
# or held activities are no longer the caller's changes nothing, and the others go on. The
# held activity rows are found by their unique key, the instance rows by theirs. One row
# back per step, in order: whether its fence held, and (where asked) whether messages wait.
# The held rows, locked, are deleted by their row address: a plan chosen on a young table's
# statistics could otherwise look each one up through an index by task hub alone.
_GROUP_HELD = """, c AS MATERIALIZED (
    SELECT * FROM unnest(%(seq_k)b::bigint[], %(seqs)b::bigint[]) AS c(k, seq)
), held AS MATERIALIZED (
    SELECT s.k, t.ctid AS row_id
    FROM unnest(%(done_k)b::bigint[], %(done)b::integer[]) AS d(k, event_id)
    JOIN s ON s.k = d.k
    CROSS JOIN LATERAL (
        SELECT ctid FROM {s}.activity_tasks
        WHERE task_hub = %(hub)s AND instance_id = s.iid AND execution_id = s.eid
            AND event_id = d.event_id AND locked_by = s.token
        FOR UPDATE
    ) t
), whole AS MATERIALIZED (
    SELECT s.k FROM s LEFT JOIN (SELECT k, count(*) AS n FROM held GROUP BY k) h ON h.k = s.k
    WHERE s.ndone = coalesce(h.n, 0)
)"""
_GROUP_FENCE = """
    FROM s
    WHERE i.task_hub = %(hub)s AND i.instance_id = s.iid AND i.locked_by = s.token
        AND i.history_length = s.first
        AND s.k IN (SELECT k FROM whole)
    RETURNING s.k
)"""
_GROUP_APPENDED = """, appended AS (
    INSERT INTO {s}.history (task_hub, instance_id, execution_id, sequence, event)
    SELECT %(hub)s, s.iid, s.eid, e.sequence, e.event
    FROM unnest(%(event_k)b::bigint[], %(sequences)b::integer[], %(events)b::text[])
        AS e(k, sequence, event)
    JOIN s ON s.k = e.k
    WHERE e.k IN (SELECT k FROM fence)
), notified AS (
    SELECT count(*) AS n FROM (
        SELECT pg_notify(%(channel)s, %(sender)s)
        WHERE EXISTS (SELECT 1 FROM fence f JOIN s ON s.k = f.k WHERE s.wakes)
    ) n
)"""

CHECKPOINT_STEPS = (
    """
WITH s AS MATERIALIZED (
    SELECT * FROM unnest(%(iids)b::text[], %(eids)b::text[], %(tokens)b::text[],
        %(statuses)b::text[], %(outputs)b::text[], %(customs)b::text[], %(failures)b::text[],
        %(lengths)b::integer[], %(firsts)b::integer[], %(dropped)b::bigint[],
        %(holds)b::bigint[], %(ndone)b::bigint[], %(watch)b::boolean[], %(wakes)b::boolean[],
        %(nows)b::bigint[])
        WITH ORDINALITY AS s(iid, eid, token, status, output, custom, failure, length, first,
            dropped, hold, ndone, watch, wakes, now, k)
)"""
    + _GROUP_HELD
    + """, fence AS (
    UPDATE {s}.instances i
    SET status = s.status, output = s.output, custom_status = s.custom, failure = s.failure,
        updated_at = s.now, completed_at = NULL, history_length = s.length,
        dropped_events = i.dropped_events + s.dropped,
        locked_by = CASE WHEN s.hold IS NULL THEN NULL ELSE i.locked_by END,
        lock_expires_at = s.hold"""
    + _GROUP_FENCE
    + """, taken AS (
    DELETE FROM {s}.activity_tasks
    WHERE ctid = ANY(ARRAY(SELECT row_id FROM held WHERE k IN (SELECT k FROM fence)))
), consumed AS (
    DELETE FROM {s}.inbox m USING c JOIN s ON s.k = c.k
    WHERE m.task_hub = %(hub)s AND m.instance_id = s.iid AND m.seq = c.seq
        AND c.k IN (SELECT k FROM fence)
)"""
    + _GROUP_APPENDED
    + """, scheduled AS (
    INSERT INTO {s}.activity_tasks (task_hub, instance_id, execution_id, event_id, name, input,
        visible_at, locked_by, lock_expires_at, attempts)
    SELECT %(hub)s, s.iid, s.eid, a.event_id, a.name, a.input, s.now,
        CASE WHEN s.hold IS NULL THEN NULL ELSE s.token END, s.hold,
        CASE WHEN s.hold IS NULL THEN 0 ELSE 1 END
    FROM unnest(%(activity_k)b::bigint[], %(event_ids)b::integer[], %(names)b::text[],
        %(inputs)b::text[]) WITH ORDINALITY AS a(k, event_id, name, input, ord)
    JOIN s ON s.k = a.k
    WHERE a.k IN (SELECT k FROM fence)
    ORDER BY a.ord
)
SELECT s.k IN (SELECT k FROM fence), CASE WHEN s.watch THEN EXISTS (
    SELECT 1 FROM {s}.inbox m
    WHERE m.task_hub = %(hub)s AND m.instance_id = s.iid AND m.visible_at <= s.now
        AND (m.execution_id IS NULL OR m.execution_id = s.eid)
        AND NOT EXISTS (SELECT 1 FROM c WHERE c.k = s.k AND c.seq = m.seq)
) END, (SELECT n FROM notified)
FROM s
ORDER BY s.k
"""
)

# ``CHECKPOINT_END`` for several instances at once, as ``CHECKPOINT_STEPS`` is for steps.
# Two of them may be parent and child: the child's result then lands in the ending parent's
# inbox, as it would if their statements raced, for a claim to sweep.
CHECKPOINT_ENDS = (
    """
WITH s AS MATERIALIZED (
    SELECT * FROM unnest(%(iids)b::text[], %(eids)b::text[], %(tokens)b::text[],
        %(statuses)b::text[], %(outputs)b::text[], %(customs)b::text[], %(failures)b::text[],
        %(lengths)b::integer[], %(firsts)b::integer[], %(dropped)b::bigint[], %(ndone)b::bigint[],
        %(wakes)b::boolean[], %(nows)b::bigint[], %(parents)b::text[], %(parent_eids)b::text[],
        %(parent_ats)b::bigint[], %(parent_events)b::text[])
        WITH ORDINALITY AS s(iid, eid, token, status, output, custom, failure, length, first,
            dropped, ndone, wakes, now, parent, parent_eid, parent_at, parent_event, k)
)"""
    + _GROUP_HELD
    + """, doomed AS MATERIALIZED (
    SELECT s.k, count(m.seq) AS n
    FROM s LEFT JOIN {s}.inbox m ON m.task_hub = %(hub)s AND m.instance_id = s.iid
        AND starts_with(m.event, %(raised)s)
        AND NOT EXISTS (SELECT 1 FROM c WHERE c.k = s.k AND c.seq = m.seq)
    GROUP BY s.k
), fence AS (
    UPDATE {s}.instances i
    SET status = s.status, output = s.output, custom_status = s.custom, failure = s.failure,
        updated_at = s.now, completed_at = s.now, history_length = s.length,
        dropped_events = i.dropped_events + s.dropped
            + (SELECT d.n FROM doomed d WHERE d.k = s.k),
        locked_by = NULL, lock_expires_at = NULL"""
    + _GROUP_FENCE
    + """, taken AS (
    DELETE FROM {s}.activity_tasks t USING s
    WHERE t.task_hub = %(hub)s AND t.instance_id = s.iid AND s.k IN (SELECT k FROM fence)
), consumed AS (
    DELETE FROM {s}.inbox m USING s
    WHERE m.task_hub = %(hub)s AND m.instance_id = s.iid AND s.k IN (SELECT k FROM fence)
)"""
    + _GROUP_APPENDED
    + """, told AS (
    INSERT INTO {s}.inbox (task_hub, instance_id, execution_id, visible_at, event)
    SELECT %(hub)s, p.instance_id, s.parent_eid, s.parent_at, s.parent_event
    FROM s JOIN {s}.instances p ON p.task_hub = %(hub)s AND p.instance_id = s.parent
    WHERE p.status <> ALL(%(terminal)b::text[])
        AND (s.parent_eid IS NULL OR p.execution_id = s.parent_eid)
        AND s.k IN (SELECT k FROM fence)
    ORDER BY s.k
)
SELECT s.k IN (SELECT k FROM fence), NULL::boolean, (SELECT n FROM notified)
FROM s
ORDER BY s.k
"""
)

# The end of an instance (no message but to its parent, no restart): its activity tasks and the
# rest of its inbox go, the raised events there counted as dropped, and its parent, if it has
# one, is told. The parent is read, not locked, as ``DELIVER`` reads its targets. All the parts
# read one snapshot: a result that commits meanwhile stays in the finished instance's inbox,
# for a claim to sweep.
CHECKPOINT_END = (
    _HELD
    + """, doomed AS (
    SELECT count(*) AS n FROM {s}.inbox
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND seq <> ALL(%(seqs)b::bigint[])
        AND starts_with(event, %(raised)s)
), fence AS (
    UPDATE {s}.instances
    SET status = %(status)s, output = %(output)s, custom_status = %(custom)s,
        failure = %(failure)s, updated_at = %(now)s, completed_at = %(now)s,
        history_length = %(length)s,
        dropped_events = dropped_events + %(dropped)s + (SELECT n FROM doomed),
        locked_by = NULL, lock_expires_at = NULL"""
    + _FENCED
    + """, taken AS (
    DELETE FROM {s}.activity_tasks
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND EXISTS (SELECT 1 FROM fence)
), consumed AS (
    DELETE FROM {s}.inbox
    WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND EXISTS (SELECT 1 FROM fence)
)"""
    + _APPENDED
    + """, told AS (
    INSERT INTO {s}.inbox (task_hub, instance_id, execution_id, visible_at, event)
    SELECT %(hub)s, p.instance_id, %(parent_eid)s::text, %(parent_at)s::bigint,
        %(parent_event)s::text
    FROM {s}.instances p
    WHERE p.task_hub = %(hub)s AND p.instance_id = %(parent)s::text
        AND p.status <> ALL(%(terminal)b::text[])
        AND (%(parent_eid)s::text IS NULL OR p.execution_id = %(parent_eid)s::text)
        AND EXISTS (SELECT 1 FROM fence)
)"""
    + _ANSWER
)

# The rows of entities: a message to an entity creates it.
CREATE_ENTITIES = """
INSERT INTO {s}.instances (task_hub, instance_id, execution_id, name, status, created_at,
    updated_at)
SELECT %(hub)s, e.instance_id, %(eid)s, e.name, %(status)s, %(now)s, %(now)s
FROM unnest(%(iids)b::text[], %(names)b::text[]) AS e(instance_id, name)
ORDER BY e.instance_id
ON CONFLICT (task_hub, instance_id) DO NOTHING
"""

# Every transaction that delivers to entities holds their rows with this lock until it commits,
# so that no removal deletes a row a message is being queued for (``REMOVE_ENTITY`` waits).
# KEY SHARE conflicts only with FOR UPDATE and DELETE: other senders, the entity's checkpoint
# and claims (FOR NO KEY UPDATE) go on. No row for an entity a removal deleted since the insert.
LOCK_ENTITIES = """
SELECT instance_id FROM {s}.instances
WHERE task_hub = %(hub)s AND instance_id = ANY(%(iids)b::text[])
ORDER BY instance_id
FOR KEY SHARE
"""

# Taken before ``REMOVE_ENTITY``, in a statement of its own: it waits for the senders holding
# the row, and the DELETE that follows then sees (with a fresh snapshot) what they queued.
LOCK_ENTITY_FOR_REMOVAL = """
SELECT 1 FROM {s}.instances
WHERE task_hub = %(hub)s AND instance_id = %(iid)s
FOR UPDATE
"""

# An entity goes only while it is as the caller saw it: same state, no lease, nothing queued.
REMOVE_ENTITY = """
DELETE FROM {s}.instances i
WHERE i.task_hub = %(hub)s AND i.instance_id = %(iid)s AND starts_with(i.instance_id, '@')
    AND i.entity_state IS NOT DISTINCT FROM %(state)s AND i.locked_by IS NULL
    AND NOT EXISTS (
        SELECT 1 FROM {s}.inbox m WHERE m.task_hub = %(hub)s AND m.instance_id = %(iid)s
    )
"""

DELETE_MESSAGES = """
DELETE FROM {s}.inbox
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND seq = ANY(%(seqs)b::bigint[])
"""

APPEND_HISTORY = """
INSERT INTO {s}.history (task_hub, instance_id, execution_id, sequence, event)
SELECT %(hub)s, %(iid)s, %(eid)s, e.sequence, e.event
FROM unnest(%(sequences)b::integer[], %(events)b::text[]) AS e(sequence, event)
"""

SCHEDULE_ACTIVITIES = """
INSERT INTO {s}.activity_tasks (task_hub, instance_id, execution_id, event_id, name, input,
    visible_at, locked_by, lock_expires_at, attempts)
SELECT %(hub)s, %(iid)s, %(eid)s, a.event_id, a.name, a.input, %(now)s, %(held_by)s::text,
    %(hold)s::bigint, CASE WHEN %(held_by)s::text IS NULL THEN 0 ELSE 1 END
FROM unnest(%(event_ids)b::integer[], %(names)b::text[], %(inputs)b::text[])
    WITH ORDINALITY AS a(event_id, name, input, ord)
ORDER BY a.ord
"""

DELETE_ACTIVITIES = """
DELETE FROM {s}.activity_tasks WHERE task_hub = %(hub)s AND instance_id = %(iid)s
"""

# continue_as_new: the history and tasks go; the inbox comes back to be queued again.
RESET_EXECUTION = """
WITH h AS (DELETE FROM {s}.history WHERE task_hub = %(hub)s AND instance_id = %(iid)s),
     a AS (DELETE FROM {s}.activity_tasks WHERE task_hub = %(hub)s AND instance_id = %(iid)s)
DELETE FROM {s}.inbox WHERE task_hub = %(hub)s AND instance_id = %(iid)s
RETURNING seq, execution_id, visible_at, event
"""

# Messages to instances, queued in array order, except those that cannot apply: to a missing
# instance, to a finished one (raised events are counted there), to an execution not current.
# The targets are read, not locked (entities aside: ``LOCK_ENTITIES``): see the module
# docstring of ``postgres``.
DELIVER = """
WITH m AS (
    SELECT * FROM unnest(%(iids)b::text[], %(eids)b::text[], %(times)b::bigint[],
        %(events)b::text[], %(raised)b::boolean[])
        WITH ORDINALITY AS m(instance_id, execution_id, visible_at, event, raised, ord)
), t AS (
    SELECT m.*, i.status = ANY(%(terminal)b::text[]) AS finished,
        i.execution_id AS current_execution
    FROM m JOIN {s}.instances i ON i.task_hub = %(hub)s AND i.instance_id = m.instance_id
), d AS (
    UPDATE {s}.instances i SET dropped_events = i.dropped_events + c.n
    FROM (
        SELECT instance_id, count(*) AS n FROM t WHERE finished AND raised GROUP BY instance_id
    ) c
    WHERE i.task_hub = %(hub)s AND i.instance_id = c.instance_id
)
INSERT INTO {s}.inbox (task_hub, instance_id, execution_id, visible_at, event)
SELECT %(hub)s, t.instance_id, t.execution_id, t.visible_at, t.event FROM t
WHERE NOT t.finished AND (t.execution_id IS NULL OR t.execution_id = t.current_execution)
ORDER BY t.ord
"""

# ---------------------------------------------------------------------- activity work

CLAIM_ACTIVITIES = """
WITH picked AS (
    SELECT task_hub, instance_id, seq FROM {s}.activity_tasks
    WHERE task_hub = %(hub)s AND visible_at <= %(now)s
        AND (lock_expires_at IS NULL OR lock_expires_at <= %(now)s)
    ORDER BY visible_at, seq
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE {s}.activity_tasks t
SET locked_by = %(prefix)s || t.seq, lock_expires_at = %(until)s, attempts = t.attempts + 1
FROM picked p
WHERE t.task_hub = p.task_hub AND t.instance_id = p.instance_id AND t.seq = p.seq
RETURNING t.seq, t.instance_id, t.execution_id, t.event_id, t.name, t.input, t.locked_by,
    t.attempts, t.visible_at
"""

RENEW_ACTIVITY_LEASE = """
UPDATE {s}.activity_tasks SET lock_expires_at = %(until)s
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND seq = %(seq)s
    AND locked_by = %(token)s
"""

# A result is accepted while the task is leased by its caller or by nobody.
TAKE_ACTIVITY = """
DELETE FROM {s}.activity_tasks
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND seq = %(seq)s
    AND (locked_by = %(token)s OR locked_by IS NULL)
"""

RELEASE_ACTIVITY = """
UPDATE {s}.activity_tasks
SET locked_by = NULL, lock_expires_at = NULL, visible_at = COALESCE(%(retry_at)s, visible_at)
WHERE task_hub = %(hub)s AND instance_id = %(iid)s AND seq = %(seq)s
    AND locked_by = %(token)s
"""

# ---------------------------------------------------------------------- queries and purge

# ``{where}`` is filled by the store from the query's filters.
COUNT_INSTANCES = """
SELECT status, count(*) FROM {s}.instances WHERE {where} GROUP BY status
"""

QUERY_INSTANCES = """
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
    custom_status, failure, parent_instance_id, scheduled_start_at, completed_at, entity_state
FROM {s}.instances
WHERE {where}
ORDER BY created_at DESC, instance_id DESC
LIMIT %(limit)s
"""

# The filters are checked again on the rows as they are when deleted: an instance restarted
# since the statement began stays.
PURGE_INSTANCES = """
WITH doomed AS (
    DELETE FROM {s}.instances WHERE {where} RETURNING instance_id
), h AS (
    DELETE FROM {s}.history
    WHERE task_hub = %(hub)s AND instance_id IN (SELECT instance_id FROM doomed)
), m AS (
    DELETE FROM {s}.inbox
    WHERE task_hub = %(hub)s AND instance_id IN (SELECT instance_id FROM doomed)
), a AS (
    DELETE FROM {s}.activity_tasks
    WHERE task_hub = %(hub)s AND instance_id IN (SELECT instance_id FROM doomed)
)
SELECT count(*) FROM doomed
"""

# The same function serves KEDA's postgresql scaler (see docs/scale-out.md).
BACKLOG = """
SELECT orchestrations, activities, scheduled FROM {s}.backlog(%(hub)s, %(now)s)
"""

NEXT_VISIBLE_AT = """
SELECT LEAST(
    (SELECT MIN(visible_at) FROM {s}.inbox
        WHERE task_hub = %(hub)s AND visible_at > %(now)s),
    (SELECT MIN(visible_at) FROM {s}.activity_tasks
        WHERE task_hub = %(hub)s AND visible_at > %(now)s),
    (SELECT MIN(lock_expires_at) FROM {s}.instances
        WHERE task_hub = %(hub)s AND lock_expires_at > %(now)s),
    (SELECT MIN(lock_expires_at) FROM {s}.activity_tasks
        WHERE task_hub = %(hub)s AND lock_expires_at > %(now)s)
)
"""
