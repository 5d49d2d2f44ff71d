"""The episodes of one leased instance, from its claim until a commit lets it go.

:class:`Episodes` keeps what runs from one episode to the next while the worker holds the
instance (activities run in place): the executor, the results taken but not yet committed, the
activities whose results the next commit records, the last checkpoint committed. Its steps are
plain calls, so that the event loop (:meth:`Worker._run_episodes`) and an activity's thread
going on with the next step (:mod:`durafn.worker.held`) run them alike; only one of them runs
them at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from durafn.core.history import ExecutionStarted, HistoryEvent
from durafn.executor.locks import held_locks
from durafn.executor.orchestration import OrchestrationExecutor
from durafn.store.base import ActivityTask, Checkpoint, OrchestrationWorkItem
from durafn.worker.checkpoint import (
    IN_PLACE_SEQ,
    build_checkpoint,
    failed_checkpoint,
    task_id_of,
)

if TYPE_CHECKING:
    from durafn.worker.held import HeldActivities
    from durafn.worker.worker import Worker

log = logging.getLogger("durafn.worker")


@dataclass
class Step:
    """An episode's checkpoint to commit, and what it means for the instance: whether the
    commit keeps it (``hold``), and the activities to run in place once it has committed."""

    checkpoint: Checkpoint
    start: list[ActivityTask]
    hold: bool
    finished: bool


class Episodes:
    """The state of a leased instance across its episodes (see the module docstring)."""

    def __init__(
        self,
        worker: Worker,
        item: OrchestrationWorkItem,
        executor: OrchestrationExecutor | None,
        history: list[HistoryEvent],
        held: HeldActivities,
    ) -> None:
        self.worker = worker
        self.item = item
        self.executor = executor
        self.history = history
        self.held = held
        # Results the code took while other activities still ran, not committed yet.
        self.deferred: list[HistoryEvent] = []
        # Activities run in place whose results the next commit records.
        self.done: list[int] = []
        # The last checkpoint committed while holding the instance.
        self.committed: Checkpoint | None = None

    def run(self, now: datetime) -> Step | None:
        """Run an episode of ``item.messages``: the step to commit, or None when it only took
        results while other activities still run (they are committed with the next step)."""
        item, held = self.item, self.held
        fed = [m for m in item.messages if m.seq == IN_PLACE_SEQ]
        try:
            if self.executor is None:
                self.executor = OrchestrationExecutor(self.worker.app, item.instance_id)
                self.executor.replay(self.history)
            result = self.executor.run_episode([m.event for m in item.messages], now)
            checkpoint = build_checkpoint(item, result, now)
        except Exception as exc:
            log.exception("the episode of %s could not run; failing it", item.instance_id)
            executor = self.executor
            started = next((e for e in self.history if isinstance(e, ExecutionStarted)), None)
            if started is None and executor is not None:
                started = executor.started
            # The history fetched for a replay is whole; a replay that raised holds only part.
            past = self.history if self.history or executor is None else executor.history
            self.executor = None
            checkpoint = failed_checkpoint(item, started, exc, now, held_locks(past))
        self.done += [task_id_of(m.event) for m in fed]
        finished = checkpoint.status.is_terminal or checkpoint.restart is not None
        if held.running and not finished and _no_news(checkpoint, self.committed):
            # Results that let the code go on to await another of the running activities:
            # nothing to tell anyone yet; they are committed with the episode that has news.
            self.deferred += checkpoint.new_events
            return None
        start = (
            []
            if finished or self.executor is None or self.worker._stopping()
            else held.startable(self.executor, checkpoint)
        )
        if checkpoint.restart is None:
            # The results the code took meanwhile stay in the history, even as it ends.
            checkpoint.new_events = self.deferred + checkpoint.new_events
        if not finished:
            checkpoint.completed_activities = self.done
        hold = not finished and bool(start or held.running)
        return Step(checkpoint, start, hold, finished)

    def committed_step(self, step: Step) -> None:
        """Once a held step has committed (or, its next activity started ahead, only its
        commit is left): what the instance's row now says. Again for the same step, nothing."""
        checkpoint, item = step.checkpoint, self.item
        if checkpoint is self.committed:
            return
        self.deferred, self.done = [], []
        # The item stays what the instance's row says: the store may then leave alone what a
        # step does not change.
        self.committed = checkpoint
        item.status = checkpoint.status
        item.history_length += len(checkpoint.new_events)
        assert checkpoint.hold_until is not None
        item.locked_until = checkpoint.hold_until

    def kept(self, step: Step) -> OrchestrationExecutor | None:
        """The executor to keep in the cache once ``step``, which let the instance go, has
        committed."""
        return None if step.finished else self.executor


def _no_news(checkpoint: Checkpoint, committed: Checkpoint | None) -> bool:
    """Whether committing ``checkpoint`` now would only record results (see
    :meth:`Episodes.run`): nothing it does, and a status and custom status the same as the
    ``committed`` one's."""
    return committed is not None and not (
        checkpoint.consumed
        or checkpoint.activities
        or checkpoint.messages
        or checkpoint.sub_orchestrations
        or checkpoint.new_instances
        or checkpoint.dropped_events
        or checkpoint.status is not committed.status
        or checkpoint.custom_status != committed.custom_status
    )
