"""Shared request plumbing of the host: the client, keys and bounded JSON bodies."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from durafn.app import AuthLevel
from durafn.client.async_client import AsyncClient
from durafn.client.client import Client
from durafn.client.portal import LoopThread
from durafn.core.errors import PayloadTooLarge
from durafn.host.errors import BadRequest, Unauthorized
from durafn.host.keys import HostKeys
from durafn.http.messages import DEFAULT_MAX_BODY_BYTES
from durafn.worker.worker import Worker

_BLOCKING_LOCK = threading.Lock()


@dataclass
class HostState:
    """What every request handler may need, kept in ``app.state.durafn``."""

    client: AsyncClient
    keys: HostKeys | None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # The worker running in the same process, when there is one (``durafn start``).
    worker: Worker | None = None
    _portal: LoopThread | None = None
    _blocking: Client | None = None

    def blocking_client(self) -> Client:
        """A blocking twin of ``client`` for plain ``def`` HTTP functions (run in threads)."""
        with _BLOCKING_LOCK:
            if self._blocking is None:
                self._portal = LoopThread("durafn-http-client")
                self._blocking = Client._bound(self.client, self._portal)
            return self._blocking

    def close(self) -> None:
        if self._portal is not None:
            self._portal.close()


def state_of(request: Request) -> HostState:
    state: HostState = request.app.state.durafn
    return state


def client_of(request: Request) -> AsyncClient:
    return state_of(request).client


def presented_key(request: Request) -> str | None:
    return request.query_params.get("code") or request.headers.get("x-functions-key")


def require_key(request: Request, level: AuthLevel | str) -> None:
    """Raise ``Unauthorized`` unless the request carries a key granting ``level``.

    Without host keys (a loopback address) every request is allowed.
    """
    keys = state_of(request).keys
    if keys is not None and not keys.allows(level, presented_key(request)):
        raise Unauthorized(
            "this route needs a key: pass ?code=KEY or an x-functions-key "
            "header (see `durafn keys`)"
        )


async def read_body(request: Request) -> bytes:
    """The request body, refusing (413) anything over the host's limit without reading it all."""
    limit = state_of(request).max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json_body(request: Request) -> Any:
    """The body parsed as JSON (``None`` when empty); ``BadRequest`` when it is not JSON."""
    body = await read_body(request)
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
