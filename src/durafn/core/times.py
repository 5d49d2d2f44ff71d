"""Time values at the API edge: every datetime durafn stores is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime, what: str = "datetime") -> datetime:
    """``moment`` in UTC; a naive datetime is read as UTC (as Durable Functions does)."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def as_utc_optional(moment: datetime | None, what: str = "datetime") -> datetime | None:
    return None if moment is None else as_utc(moment, what)
