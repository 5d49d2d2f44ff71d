"""The PostgreSQL store's steps: checkpoints of the common forms, one statement each
(``CHECKPOINT_STEP``, ``CHECKPOINT_END``), or several instances' together
(``CHECKPOINT_STEPS``, ``CHECKPOINT_ENDS``; see ``Database.write_grouped``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from durafn.core.errors import LeaseLost, StoreError
from durafn.core.history import dump_event, history_rows
from durafn.store import postgres_sql as q
from durafn.store.base import Checkpoint, OrchestrationWorkItem, dump_failure, to_micros
from durafn.store.postgres_changes import NOTIFY_PAYLOAD
from durafn.store.postgres_connections import Group, Session
from durafn.store.postgres_queries import RAISED_PREFIX, TERMINAL, PostgresQueries


class Step:
    """A checkpoint of the common forms on its way to the database, alone or with others: the
    parameters of ``CHECKPOINT_STEP`` or ``CHECKPOINT_END``, and how it went once committed."""

    __slots__ = ("checkpoint", "fenced", "values", "waiting")

    def __init__(self, checkpoint: Checkpoint, values: dict[str, Any]) -> None:
        self.checkpoint = checkpoint
        self.values = values
        # Whether its fence held (its lease and held activities were still the caller's).
        self.fenced = False
        # Whether messages may wait in its inbox (see ``Store.checkpoint``).
        self.waiting = True


def is_step(cp: Checkpoint) -> bool:
    """Whether ``cp`` only records an episode and schedules activities, or ends an instance
    and tells its parent orchestration (one statement)."""
    parent = cp.parent_message
    return not (
        cp.restart is not None
        # Activities free for any worker from an instance that stays held: rare, general path.
        or (cp.activities and cp.activities_held_until != cp.hold_until)
        or cp.messages
        or cp.sub_orchestrations
        or cp.new_instances
        or (parent is not None and parent.instance_id.startswith("@"))
        or cp.entity_state is not None
    )


# ``CHECKPOINT_STEPS`` arrays with one element per step: (array, key in ``Step.values``).
_PER_STEP = (
    ("iids", "iid"),
    ("eids", "eid"),
    ("tokens", "token"),
    ("statuses", "status"),
    ("outputs", "output"),
    ("customs", "custom"),
    ("failures", "failure"),
    ("lengths", "length"),
    ("firsts", "first"),
    ("dropped", "dropped"),
    ("holds", "hold"),
    ("watch", "watch"),
    ("wakes", "notify"),
    ("nows", "now"),
    ("parents", "parent"),
    ("parent_eids", "parent_eid"),
    ("parent_ats", "parent_at"),
    ("parent_events", "parent_event"),
)
# The lists of each step, flattened: (array, the array of whose step each element is, key).
_FLATTENED = (
    ("done", "done_k", "done"),
    ("seqs", "seq_k", "seqs"),
    ("events", "event_k", "events"),
    ("sequences", None, "sequences"),
    ("event_ids", "activity_k", "event_ids"),
    ("names", None, "names"),
    ("inputs", None, "inputs"),
)


def group_parameters(steps: list[Step]) -> dict[str, list[Any]]:
    """The arrays of ``CHECKPOINT_STEPS`` or ``CHECKPOINT_ENDS`` for ``steps`` (numbered from
    1 in order; each statement reads the arrays it needs)."""
    arrays: dict[str, list[Any]] = {name: [] for name, _ in _PER_STEP}
    arrays.update({name: [] for name, _, _ in _FLATTENED})
    arrays.update({k_name: [] for _, k_name, _ in _FLATTENED if k_name})
    arrays["ndone"] = []
    for k, step in enumerate(steps, start=1):
        values = step.values
        for name, key in _PER_STEP:
            arrays[name].append(values[key])
        for name, k_name, key in _FLATTENED:
            items = values[key]
            arrays[name] += items
            if k_name:
                arrays[k_name] += [k] * len(items)
        arrays["ndone"].append(len(values["done"]))
    return arrays


class PostgresSteps(PostgresQueries):
    """The steps of :class:`~durafn.store.postgres.PostgresStore`, which inherits them: a
    checkpoint of the common forms as one statement, alone or with others'."""

    def _stepped(self, item: OrchestrationWorkItem, step: Step, fenced: bool) -> bool:
        if not fenced:
            raise LeaseLost(
                f"lease on instance {item.instance_id!r} (or on an activity it ran in place) "
                "was lost before its checkpoint"
            )
        return step.waiting

    def _checkpoint_step(
        self, item: OrchestrationWorkItem, cp: Checkpoint, now: datetime
    ) -> tuple[Callable[[Session], bool], Group, Step, Callable[[], None]]:
        """A checkpoint of the common forms (see ``is_step``) as one statement: its write, the
        group it may share a statement with, its ``Step`` (whether messages may wait in the
        inbox, see ``Store.checkpoint``, once committed), and its commit hook."""
        n = to_micros(now)
        hold = to_micros(cp.hold_until) if cp.hold_until is not None else None
        done = sorted(set(cp.completed_activities))
        rows = history_rows(item.history_length, cp.new_events)
        finished = cp.status.is_terminal
        statement = q.CHECKPOINT_END if finished else q.CHECKPOINT_STEP
        parent = cp.parent_message if finished else None
        # An ending episode's activities would be deleted with the rest of its tasks.
        activities = [] if finished else cp.activities
        values = self._key(
            item.instance_id,
            eid=item.execution_id,
            token=item.lock_token,
            done=done,
            status=cp.status.value,
            output=cp.output,
            custom=cp.custom_status,
            failure=dump_failure(cp.failure),
            now=n,
            length=item.history_length + len(cp.new_events),
            dropped=cp.dropped_events,
            hold=hold,
            seqs=cp.consumed,
            first=item.history_length,
            # One history row for the step's events (a few for many, see ``history_rows``).
            sequences=[sequence for sequence, _ in rows],
            events=[text for _, text in rows],
            held_by=item.lock_token if hold is not None else None,
            event_ids=[a.event_id for a in activities],
            names=[a.name for a in activities],
            inputs=[a.input for a in activities],
            raised=RAISED_PREFIX,
            parent=parent.instance_id if parent else None,
            parent_eid=parent.execution_id if parent else None,
            parent_at=to_micros(parent.visible_at or now) if parent else None,
            parent_event=dump_event(parent.event) if parent else None,
            terminal=TERMINAL,
            notify=cp.wakes,
            channel=self._db.changes.channel,
            sender=NOTIFY_PAYLOAD,
            watch=hold is not None,
        )

        step = Step(cp, values)

        def tx(s: Session) -> bool:
            try:
                row = s.fetchone(self._sql(statement), values)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.table_name == "history":
                    raise LeaseLost(
                        f"history of {item.instance_id!r} was extended by another worker"
                    ) from exc
                raise StoreError(
                    f"an activity of {item.instance_id!r} is already scheduled: {exc}"
                ) from exc
            s.changed = cp.wakes
            step.fenced = bool(row and row[0])
            step.waiting = not (step.fenced and row is not None and row[2] is False)
            return step.fenced

        def on_commit() -> None:
            # The statement commits whether or not the fence held; only a held fence did work.
            if step.fenced and cp.on_commit is not None:
                cp.on_commit()

        together = self._ends_together if finished else self._steps_together
        return tx, together, step, on_commit

    def _steps_together(self, s: Session, steps: list[Step]) -> list[bool]:
        """The steps of several instances (``CHECKPOINT_STEP`` each) in one statement,
        ``CHECKPOINT_STEPS``; whether each one's fence held (see ``Database.write_grouped``)."""
        return self._together(s, q.CHECKPOINT_STEPS, steps)

    def _ends_together(self, s: Session, steps: list[Step]) -> list[bool]:
        """The ends of several instances (``CHECKPOINT_END`` each) in one statement,
        ``CHECKPOINT_ENDS``; whether each one's fence held."""
        return self._together(s, q.CHECKPOINT_ENDS, steps)

    def _together(self, s: Session, statement: str, steps: list[Step]) -> list[bool]:
        rows = s.fetchall(
            self._sql(statement),
            {
                **group_parameters(steps),
                "hub": self.task_hub,
                "raised": RAISED_PREFIX,
                "terminal": TERMINAL,
                "channel": self._db.changes.channel,
                "sender": NOTIFY_PAYLOAD,
            },
        )
        for step, (fenced, watched, _) in zip(steps, rows, strict=True):
            step.fenced = bool(fenced)
            step.waiting = not (step.fenced and watched is False)
            s.changed = s.changed or (step.fenced and step.checkpoint.wakes)
        return [step.fenced for step in steps]
