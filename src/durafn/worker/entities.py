"""Entity batches: run the entity executor on a leased entity's messages, and what to commit."""

from __future__ import annotations

import logging
from datetime import datetime

from durafn.app import App
from durafn.core.history import ExecutionStarted
from durafn.core.status import RuntimeStatus
from durafn.executor.entity import EntityBatchResult, execute_entity
from durafn.store.base import Checkpoint, NewInstance, OrchestrationWorkItem, OutgoingMessage
from durafn.worker.checkpoint import new_execution_id

log = logging.getLogger("durafn.worker")

# The most messages one batch takes from the inbox. A batch runs user code between two commits,
# so its length bounds how long the entity's state waits to be saved; the messages beyond it
# stay queued, in order, for the next batch.
MAX_BATCH_MESSAGES = 1_000


def run_entity_batch(
    app: App, item: OrchestrationWorkItem, now: datetime, limit: int = MAX_BATCH_MESSAGES
) -> Checkpoint:
    """Apply the first ``limit`` messages of ``item`` (a leased entity) in one batch; the
    checkpoint writes the entity's new state, consumes those messages and sends what the
    operations sent. Pure, and may run on any thread (operations are plain functions)."""
    batch = item.messages[: max(1, limit)]
    result = execute_entity(app, item.instance_id, item.entity_state, [m.event for m in batch], now)
    _log_failed_signals(item.instance_id, result)
    return Checkpoint(
        new_events=[],
        consumed=[m.seq for m in batch],
        status=RuntimeStatus.RUNNING,
        entity_state=result.state.dump(),
        messages=[
            OutgoingMessage(s.instance_id, s.event, s.execution_id, s.visible_at)
            for s in result.sends
        ],
        new_instances=[
            NewInstance(
                start.instance_id,
                ExecutionStarted(
                    timestamp=now,
                    name=start.name,
                    execution_id=new_execution_id(),
                    input=start.input,
                ),
            )
            for start in result.starts
        ],
    )


def _log_failed_signals(instance_id: str, result: EntityBatchResult) -> None:
    # A failed call goes back to its caller; a failed signal has no one to tell but the log.
    for outcome in result.outcomes:
        if outcome.failure is not None:
            log.log(
                logging.DEBUG if outcome.reply_sent else logging.WARNING,
                "operation %r of entity %s failed (request %s from %s): %s: %s",
                outcome.operation,
                instance_id,
                outcome.request_id,
                outcome.caller or "a client",
                outcome.failure.error_type,
                outcome.failure.message,
            )
