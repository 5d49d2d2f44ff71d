"""Retry options for activities and sub-orchestrations; retries are durable timers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from durafn.core.status import FailureDetails

# The longest single retry wait: a durable timer a year out is as good as never.
_MAX_DELAY = 366 * 24 * 3600.0


@dataclass(frozen=True)
class RetryOptions:
    """How a failed activity or sub-orchestration is retried.

    The n-th retry waits ``first_retry_interval * backoff_coefficient ** (n - 1)``, capped by
    ``max_retry_interval``. ``max_number_of_attempts`` counts the first attempt. Retrying stops
    once ``retry_timeout`` has passed since the first attempt, or when ``handle`` (given the
    :class:`FailureDetails`) returns ``False``. The waits are durable timers in the history.
    """

    first_retry_interval: timedelta
    max_number_of_attempts: int
    backoff_coefficient: float = 1.0
    max_retry_interval: timedelta | None = None
    retry_timeout: timedelta | None = None
    handle: Callable[[FailureDetails], bool] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.first_retry_interval, timedelta):
            raise TypeError("first_retry_interval must be a timedelta")
        if self.first_retry_interval <= timedelta(0):
            raise ValueError("first_retry_interval must be positive")
        if self.max_number_of_attempts < 1:
            raise ValueError("max_number_of_attempts must be at least 1")
        if self.backoff_coefficient < 1.0:
            raise ValueError("backoff_coefficient must be at least 1.0")

    def delay_before(self, attempt: int) -> timedelta:
        """The wait before attempt number ``attempt`` (2 for the first retry)."""
        # In float seconds, capped before it becomes a timedelta: a long backoff series must
        # not overflow.
        try:
            seconds = self.first_retry_interval.total_seconds() * (
                self.backoff_coefficient ** (attempt - 2)
            )
        except OverflowError:
            seconds = float("inf")
        cap = self.max_retry_interval.total_seconds() if self.max_retry_interval else _MAX_DELAY
        return timedelta(seconds=min(seconds, cap, _MAX_DELAY))

    def should_retry(self, failure: FailureDetails, attempts_made: int, elapsed: timedelta) -> bool:
        """Whether another attempt follows ``attempts_made`` failed ones."""
        if attempts_made >= self.max_number_of_attempts:
            return False
        if self.handle is not None and not self.handle(failure):
            return False
        if self.retry_timeout is not None:
            return elapsed + self.delay_before(attempts_made + 1) <= self.retry_timeout
        return True
