"""VirtualRuntime: a deterministic, in-memory runtime for tests of orchestrations."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from durafn.app import App
from durafn.client.async_client import AsyncClient
from durafn.client.client import Client
from durafn.client.portal import LoopThread
from durafn.core.errors import InstanceNotFound
from durafn.core.status import OrchestrationStatus
from durafn.store import Store, open_store
from durafn.worker.clock import VirtualClock
from durafn.worker.worker import Worker, WorkerOptions


class VirtualRuntime:
    """Runs ``app`` in the calling thread's pace, with a :class:`VirtualClock`.

    ``activities`` replaces activities by name (mocks); ``store`` defaults to a fresh in-memory
    store; ``start`` is the virtual clock's initial time. Nothing runs in the background: work
    happens inside :meth:`run_until_idle`, :meth:`advance` and :meth:`run_to_completion`.
    """

    def __init__(
        self,
        app: App,
        *,
        activities: Mapping[str, Callable[..., Any]] | None = None,
        store: str | Store | None = None,
        start: datetime | None = None,
    ) -> None:
        self.app = app.replaced(activities) if activities else app
        self.clock = VirtualClock(start)
        self._store_arg = store or f"memory://durafn-test-{uuid.uuid4().hex}"
        self._portal: LoopThread | None = None
        self._store: Store | None = None
        self._worker: Worker | None = None
        self._client: Client | None = None

    def __enter__(self) -> VirtualRuntime:
        self._portal = LoopThread("durafn-virtual")
        store = (
            self._store_arg if isinstance(self._store_arg, Store) else open_store(self._store_arg)
        )
        self._store = store
        # No sticky cache: every episode replays the history, as after a restart, so a test
        # catches code that does not replay deterministically.
        self._worker = Worker(
            self.app, store, clock=self.clock, options=WorkerOptions(cache_size=0)
        )
        self._client = Client._bound(
            AsyncClient(store, app=self.app, clock=self.clock), self._portal
        )
        return self

    def __exit__(self, *exc: object) -> None:
        portal = self._require(self._portal)
        if self._worker is not None:
            self._worker.close()
        if self._store is not None and not isinstance(self._store_arg, Store):
            portal.run(self._store.close())
        portal.close()

    @staticmethod
    def _require(value: Any) -> Any:
        if value is None:
            raise RuntimeError("use the VirtualRuntime in a with block")
        return value

    @property
    def client(self) -> Client:
        """A blocking client on this runtime's store and virtual clock."""
        client: Client = self._require(self._client)
        return client

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def run_until_idle(self) -> None:
        """Run every episode and activity that is due now; virtual time does not move."""
        worker: Worker = self._require(self._worker)
        self._require(self._portal).run(worker.run_until_idle())

    def advance(self, delta: timedelta) -> None:
        """Let ``delta`` of virtual time pass, running everything that comes due, in order."""
        target = self.clock.now() + delta
        while True:
            self.run_until_idle()
            due = self._next_due()
            if due is None or due > target:
                break
            self.clock.advance_to(due)
        self.clock.advance_to(target)
        self.run_until_idle()

    def run_to_completion(
        self, instance_id: str, max_time: timedelta = timedelta(days=3650)
    ) -> OrchestrationStatus:
        """Run, jumping from one due timer to the next, until the instance finishes.

        Raises ``RuntimeError`` if it waits for something no timer will bring (an external
        event nobody raises), or if it is still running after ``max_time`` of virtual time.
        """
        limit = self.clock.now() + max_time
        while True:
            self.run_until_idle()
            status = self.client.get_status(instance_id)
            if status is None:
                raise InstanceNotFound(instance_id)
            if status.is_finished:
                return status
            due = self._next_due()
            if due is None:
                raise RuntimeError(
                    f"instance {instance_id!r} is {status.runtime_status.value} and waits for "
                    "something no timer will bring (an external event?); raise it first"
                )
            if due > limit:
                raise RuntimeError(f"instance {instance_id!r} still runs after {max_time}")
            self.clock.advance_to(due)

    def _next_due(self) -> datetime | None:
        store: Store = self._require(self._store)
        return self._require(self._portal).run(store.next_visible_at(self.clock.now()))  # type: ignore[no-any-return]
