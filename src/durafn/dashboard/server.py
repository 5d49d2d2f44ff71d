"""``durafn dashboard``: the dashboard alone over a store, without workers or HTTP functions."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator

import uvicorn
from starlette.applications import Starlette

from durafn.client.async_client import AsyncClient
from durafn.dashboard.routes import dashboard_routes
from durafn.host.errors import exception_handlers
from durafn.host.keys import HostKeys, is_loopback
from durafn.host.requests import HostState
from durafn.store.base import Store


def create_dashboard_app(
    client: AsyncClient, keys: HostKeys | None, read_only: bool = False
) -> Starlette:
    """The dashboard as an ASGI application of its own; ``keys=None`` opens it to anyone."""
    asgi = Starlette(routes=dashboard_routes(read_only), exception_handlers=exception_handlers())
    asgi.state.durafn = HostState(client=client, keys=keys)
    return asgi


async def serve_dashboard(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 7072,
    *,
    read_only: bool = False,
    require_keys: bool | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the dashboard until SIGINT/SIGTERM. Off loopback (or with ``require_keys``) every
    route needs the management key of the host keys file, as ``durafn start`` does."""
    keys_required = not is_loopback(host) if require_keys is None else require_keys
    keys = HostKeys.load_or_create() if keys_required else None
    client = AsyncClient(store)
    asgi = create_dashboard_app(client, keys, read_only)
    shown_host = "localhost" if is_loopback(host) else host
    mode = " (read-only)" if read_only else ""
    announce(f"Dashboard{mode}: http://{shown_host}:{port}/")
    if keys is not None:
        announce(
            f"Open it with the management key: http://{shown_host}:{port}/?code={keys.durabletask}"
        )
    config = uvicorn.Config(
        asgi, host=host, port=port, log_level="warning", lifespan="off", server_header=False
    )
    server = _Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)
    try:
        await server.serve()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        asgi.state.durafn.close()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling, which would re-raise SIGTERM at exit: a stop
    asked for is a clean exit (code 0), as for ``durafn start``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
