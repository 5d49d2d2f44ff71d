"""Runtime: a worker and a client over one store, in the current process."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

from durafn.app import App
from durafn.client.async_client import AsyncClient
from durafn.client.client import Client
from durafn.client.portal import LoopThread
from durafn.store import Store, open_store
from durafn.worker.clock import Clock
from durafn.worker.worker import Worker, WorkerOptions


class Runtime:
    """Runs ``app`` in the background of this process.

    Blocking code::

        with df.Runtime(app, store="sqlite:///hub.db") as rt:
            instance_id = rt.client.start_new("hello_cities")
            rt.client.wait_for_completion(instance_id)

    Async code uses ``async with df.Runtime(app) as rt:`` and ``rt.async_client``. ``store`` is a
    URL or an open store; without one, ``$DURAFN_STORE`` or ``sqlite:///durafn.db`` is used.
    """

    def __init__(
        self,
        app: App,
        store: str | Store | None = None,
        *,
        clock: Clock | None = None,
        options: WorkerOptions | None = None,
    ) -> None:
        self.app = app
        self._store_arg = store
        self._clock = clock
        self._options = options
        self._portal: LoopThread | None = None
        self._stop: asyncio.Event | None = None
        self._running: Future[None] | asyncio.Task[None] | None = None
        self._store: Store | None = None
        self._client: Client | None = None
        self._async_client: AsyncClient | None = None
        self._worker: Worker | None = None

    def _open(self) -> Store:
        store = (
            self._store_arg if isinstance(self._store_arg, Store) else open_store(self._store_arg)
        )
        self._store = store
        self._worker = Worker(self.app, store, clock=self._clock, options=self._options)
        self._async_client = AsyncClient(store, app=self.app, clock=self._clock)
        self._async_client.local_worker = self._worker
        return store

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            raise RuntimeError("the runtime is not running; use it in a with block")
        return self._worker

    @property
    def client(self) -> Client:
        """A blocking client bound to this runtime's store (inside ``with`` only)."""
        if self._client is None:
            raise RuntimeError(
                "rt.client exists inside `with Runtime(...)`; in `async with` use rt.async_client"
            )
        return self._client

    @property
    def async_client(self) -> AsyncClient:
        if self._async_client is None:
            raise RuntimeError("the runtime is not running; use it in a with block")
        return self._async_client

    # ------------------------------------------------------------------ blocking use

    def __enter__(self) -> Runtime:
        self._open()
        portal = LoopThread("durafn-runtime")
        self._portal = portal
        self._stop = portal.run(_new_event())
        self._running = asyncio.run_coroutine_threadsafe(self.worker.run(self._stop), portal.loop)
        self._client = Client._bound(self.async_client, portal)
        return self

    def __exit__(self, *exc: object) -> None:
        portal, stop, running = self._portal, self._stop, self._running
        assert portal is not None and stop is not None and isinstance(running, Future)
        portal.loop.call_soon_threadsafe(stop.set)
        try:
            running.result()
        finally:
            if self._store is not None and not isinstance(self._store_arg, Store):
                portal.run(self._store.close())
            portal.close()
            self._client = None

    # ------------------------------------------------------------------ async use

    async def __aenter__(self) -> Runtime:
        self._open()
        self._stop = asyncio.Event()
        self._running = asyncio.create_task(self.worker.run(self._stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._stop is not None and isinstance(self._running, asyncio.Task)
        self._stop.set()
        try:
            await self._running
        finally:
            if self._store is not None and not isinstance(self._store_arg, Store):
                await self._store.close()


async def _new_event() -> asyncio.Event:
    return asyncio.Event()
