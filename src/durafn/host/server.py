"""``durafn start``: one process serving HTTP functions, the management API and the workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from durafn.app import App
from durafn.client.async_client import AsyncClient
from durafn.dashboard.routes import dashboard_routes
from durafn.host.errors import exception_handlers
from durafn.host.functions import function_routes
from durafn.host.keys import HostKeys, is_loopback
from durafn.host.management import management_routes
from durafn.host.metrics import metrics_routes
from durafn.host.openapi import openapi_routes
from durafn.host.requests import HostState
from durafn.http.messages import DEFAULT_MAX_BODY_BYTES
from durafn.store.base import Store
from durafn.worker.worker import Worker, WorkerOptions

log = logging.getLogger("durafn.host")


@dataclass(frozen=True)
class HostOptions:
    """How ``durafn start`` serves. ``require_keys=None`` means: only off loopback."""

    host: str = "127.0.0.1"
    port: int = 7071
    require_keys: bool | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    worker: WorkerOptions = field(default_factory=WorkerOptions)

    @property
    def keys_required(self) -> bool:
        return not is_loopback(self.host) if self.require_keys is None else self.require_keys


def create_asgi_app(
    app: App,
    client: AsyncClient,
    keys: HostKeys | None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The host's ASGI application (usable on its own, e.g. under another ASGI server)."""
    routes: list[BaseRoute] = [
        *function_routes(app),
        *management_routes(),
        *openapi_routes(),
        *metrics_routes(),
        *dashboard_routes(),
    ]
    asgi = Starlette(routes=routes, exception_handlers=exception_handlers())
    asgi.state.durafn = HostState(client=client, keys=keys, max_body_bytes=max_body_bytes)
    return asgi


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the host stops the server and the workers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def describe(app: App, base_url: str) -> list[str]:
    """What the host serves, listed the way ``func start`` lists functions."""
    lines = ["Functions:", ""]
    for route in app.routes:
        methods = ",".join(route.methods)
        lines.append(f"        {route.name}: [{methods}] {base_url}/api/{route.route}")
    for name in app.orchestrator_names:
        lines.append(f"        {name}: orchestrationTrigger")
    for name in app.activity_names:
        lines.append(f"        {name}: activityTrigger")
    lines += ["", f"Management API: {base_url}/runtime/webhooks/durabletask/instances"]
    lines += [f"Metrics: {base_url}/metrics"]
    lines += [f"Dashboard: {base_url}/"]
    return lines


async def serve(
    app: App, store: Store, options: HostOptions, announce: Callable[[str], None] = print
) -> None:
    """Serve until SIGINT/SIGTERM, then stop taking work, finish what is in flight, return."""
    keys = HostKeys.load_or_create() if options.keys_required else None
    shown_host = "localhost" if is_loopback(options.host) else options.host
    base_url = f"http://{shown_host}:{options.port}"
    client = AsyncClient(store, app=app)
    client.http_base_url = base_url
    client.http_key = keys.durabletask if keys else None
    asgi = create_asgi_app(app, client, keys, options.max_body_bytes)
    config = uvicorn.Config(
        asgi,
        host=options.host,
        port=options.port,
        log_level="warning",
        lifespan="off",
        server_header=False,
    )
    server = _Server(config)
    worker = Worker(app, store, options=options.worker)
    asgi.state.durafn.worker = worker
    client.local_worker = worker
    stop = asyncio.Event()

    def shut_down() -> None:
        stop.set()
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shut_down)
    for line in describe(app, base_url):
        announce(line)
    if keys is not None:
        announce(
            f"Keys are required: function key {keys.default}, "
            f"management key {keys.durabletask} (see `durafn keys`)"
        )
    serving = asyncio.create_task(server.serve())
    working = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.wait({serving, working}, return_when=asyncio.FIRST_COMPLETED)
        shut_down()
        await asyncio.gather(serving, working)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        asgi.state.durafn.close()
        log.info("host stopped")
