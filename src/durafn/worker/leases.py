"""Keeping the leases of orchestration episodes in flight.

An episode normally commits long before its lease ends, but a slow store, a large history to
fetch or a busy event loop can stretch one. One loop per worker renews every lease still held
once a third of it has passed, instead of one timer per episode. A renewal that finds the lease
gone only stops renewing: the store's fencing rejects that episode's commit anyway.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from durafn.core.errors import LeaseLost
from durafn.store.base import OrchestrationWorkItem, Store
from durafn.worker.clock import Clock

log = logging.getLogger("durafn.worker")


class LeaseKeeper:
    """Renews the leases of the orchestration work items a worker holds."""

    def __init__(self, store: Store, lease: timedelta, clock: Clock) -> None:
        self.store = store
        self.lease = lease
        self.clock = clock
        self._held: dict[int, OrchestrationWorkItem] = {}
        self.renewals = 0

    def hold(self, item: OrchestrationWorkItem) -> None:
        self._held[id(item)] = item

    def release(self, item: OrchestrationWorkItem) -> None:
        self._held.pop(id(item), None)

    async def run(self) -> None:
        """Renew due leases every third of a lease, until cancelled."""
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            await self.renew_due()

    async def renew_due(self) -> None:
        """Renew every held lease with less than two thirds of its time left."""
        now = self.clock.now()
        threshold = now + self.lease * 2 / 3
        due = [(k, item) for k, item in self._held.items() if item.locked_until <= threshold]
        # All at once: a worker may hold many instances, and their renewals share commits.
        await asyncio.gather(*(self._renew(key, item, now) for key, item in due))

    async def _renew(self, key: int, item: OrchestrationWorkItem, now: datetime) -> None:
        if key not in self._held:
            return  # its episode committed (and released the lease) meanwhile
        try:
            await self.store.renew_orchestration_lease(item, self.lease, now)
            self.renewals += 1
        except LeaseLost:
            if self._held.pop(key, None) is not None:
                log.warning("lost the lease on instance %s during its episode", item.instance_id)
        except Exception:
            log.exception("could not renew the lease on instance %s", item.instance_id)
