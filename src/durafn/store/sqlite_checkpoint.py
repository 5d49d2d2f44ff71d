"""The statements of a SQLite checkpoint, their parameters built apart from the transaction.

A checkpoint's common statements (the instance row's update, the task rows of the activities
run in place that it records, its history row, the task rows of the activities it schedules)
take parameters built from the work item and the checkpoint alone. Built before the
transaction, on a thread with time to spare (an activity's thread while the commit before
waits for the disk, see :mod:`durafn.worker.held`), they leave the committing thread only the
statements to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durafn.core.history import history_rows
from durafn.store.base import Checkpoint, OrchestrationWorkItem, dump_failure, to_micros


@dataclass(slots=True)
class CheckpointStatements:
    """The parameters of a checkpoint's common statements (:func:`checkpoint_statements`)."""

    now: int
    # The SET clause of the instance row's update, and its parameters (with its WHERE's).
    sets: str
    values: list[Any]
    # The task rows of the activities run in place whose results it records.
    done: list[tuple[Any, ...]]
    # Its history rows (one, or none without events), and the task rows of the activities it
    # schedules.
    history: list[tuple[Any, ...]]
    activities: list[tuple[Any, ...]]


def checkpoint_statements(
    task_hub: str, item: OrchestrationWorkItem, cp: Checkpoint, now: datetime
) -> CheckpointStatements:
    """The parameters of a checkpoint's common statements: the instance row's update, the
    activities run in place that it records, its history row, the activities it
    schedules. Reads ``item`` and ``cp`` only: they must not change until it commits."""
    hub, iid = task_hub, item.instance_id
    n = to_micros(now)
    finished = cp.status.is_terminal
    restart = cp.restart
    execution_id = restart.execution_id if restart else item.execution_id
    hold = to_micros(cp.hold_until) if cp.hold_until is not None else None
    # Only what changes is SET: SQLite rewrites the index entries of every column SET, even
    # to the value it had, and a step of a held chain changes neither its status nor its
    # lease (the worker keeps ``hold_until`` while the lease has time left).
    sets = [
        "output=?, custom_status=?, failure=?, updated_at=?, completed_at=?, "
        "execution_id=?, history_length=?"
    ]
    values: list[Any] = [
        cp.output,
        cp.custom_status,
        dump_failure(cp.failure),
        n,
        n if finished else None,
        execution_id,
        0 if restart else item.history_length + len(cp.new_events),
    ]
    if restart is not None or cp.status is not item.status:
        sets.append("status=?")
        values.append(cp.status.value)
    if restart is not None:
        sets.append("input=?")
        values.append(restart.input)
    if cp.entity_state is not None:
        sets.append("entity_state=?")
        values.append(cp.entity_state)
    if hold is None:
        sets.append("locked_by=NULL, lock_expires_at=NULL")
    elif cp.hold_until != item.locked_until:
        sets.append("lock_expires_at=?")
        values.append(hold)
    # The row's history length is the one the episode extends: a worker behind it (its
    # history appended to by another meanwhile) changes nothing. The history's key alone
    # would not tell, as a row holds the events of a whole checkpoint.
    values += (hub, iid, item.lock_token, item.history_length)
    eid = item.execution_id
    done = [(hub, iid, eid, e, item.lock_token) for e in sorted(set(cp.completed_activities))]
    if restart is not None:
        return CheckpointStatements(n, ", ".join(sets), values, done, [], [])
    # One row for the step's events, keyed by the sequence number of its first (a few rows
    # for a checkpoint of many events, see ``history_rows``).
    history = [
        (hub, iid, eid, sequence, text)
        for sequence, text in history_rows(item.history_length, cp.new_events)
    ]
    # Held activities are leased under the instance's token: this worker runs them.
    # They are claimable elsewhere only once that lease expires.
    held = hold if cp.hold_activities else None
    held_by = item.lock_token if held is not None else None
    tries = 0 if held is None else 1
    visible = n if held is None else held
    activities = [
        (hub, iid, eid, a.event_id, a.name, a.input, visible, held_by, tries) for a in cp.activities
    ]
    return CheckpointStatements(n, ", ".join(sets), values, done, history, activities)
