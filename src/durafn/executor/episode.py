"""What an episode returns: the executor's side of the contract (history and new messages in;
new history events, actions and status out), whatever executor produced it."""

from __future__ import annotations

from dataclasses import dataclass, field

from durafn.core.history import EventRaised, ExecutionStarted, HistoryEvent
from durafn.core.status import FailureDetails, RuntimeStatus
from durafn.executor.actions import Action


@dataclass
class ContinueAsNewRequest:
    """The orchestrator asked to restart with ``input``, carrying ``carryover_events`` over."""

    input: str | None
    carryover_events: list[EventRaised] = field(default_factory=list)


@dataclass
class EpisodeResult:
    """What one episode produced. ``new_events`` are to be appended to the history."""

    new_events: list[HistoryEvent]
    actions: list[Action]
    status: RuntimeStatus
    output: str | None = None
    failure: FailureDetails | None = None
    custom_status: str | None = None
    continue_as_new: ContinueAsNewRequest | None = None
    started: ExecutionStarted | None = None
    # How many of the episode's messages were looked at; the rest came after the execution
    # ended (a terminate after a continue_as_new, say) and belong to what follows.
    applied: int = 0
    # Sub-orchestrations still running when the instance was terminated: they are terminated too.
    children_to_terminate: list[str] = field(default_factory=list)
    # Entity locks still held (or requested) when the execution ended: (entity, section) pairs
    # to unlock. Unlocks the code asked for itself are among ``actions``.
    locks_to_release: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_finished(self) -> bool:
        """True when the execution ended (completed, failed, terminated or continued as new)."""
        return self.status.is_terminal or self.status is RuntimeStatus.CONTINUED_AS_NEW
