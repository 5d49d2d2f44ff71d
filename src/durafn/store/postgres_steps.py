"""The PostgreSQL store's steps: checkpoints of the common forms, one statement each
(``CHECKPOINT_STEP``, ``CHECKPOINT_END``), or several instances' together
(``CHECKPOINT_STEPS``, ``CHECKPOINT_ENDS``; see ``Database.write_grouped``)."""

from __future__ import annotations

from typing import Any

from durafn.store.base import Checkpoint


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
    arrays["ndone"], arrays["sequences"] = [], []
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
        arrays["sequences"] += range(values["first"], values["first"] + len(values["events"]))
    return arrays
