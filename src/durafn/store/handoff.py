"""Outcomes handed from a store's thread back to the event loop of the caller waiting for them."""

from __future__ import annotations

import asyncio
from typing import Any


def resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """On the caller's loop: settle ``future`` with a result (``ok``) or an exception, unless
    the caller stopped waiting (cancelled) meanwhile."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
