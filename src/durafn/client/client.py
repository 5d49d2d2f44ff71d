"""Client: the blocking twin of :class:`AsyncClient`, sharing its implementation."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from durafn.app import App
from durafn.client.async_client import AsyncClient
from durafn.client.portal import LoopThread
from durafn.http.messages import HttpRequest, HttpResponse
from durafn.store import Store
from durafn.worker.clock import Clock

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Client, P], R]:
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._portal.run(method(self._async, *args, **kwargs))

    functools.update_wrapper(call, method)
    return call


class Client:
    """Starts, queries and steers instances; every method blocks until done.

    Same arguments, errors and return values as :class:`AsyncClient`.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        app: App | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._async = AsyncClient(store, app=app, clock=clock)
        self._portal = LoopThread("durafn-client")
        self._owns_portal = True

    @classmethod
    def _bound(cls, async_client: AsyncClient, portal: LoopThread) -> Client:
        """A client sharing an existing loop and store (used by ``Runtime``)."""
        client = cls.__new__(cls)
        client._portal = portal
        client._owns_portal = False
        client._async = async_client
        return client

    @property
    def async_client(self) -> AsyncClient:
        return self._async

    start_new = _blocking(AsyncClient.start_new)
    get_status = _blocking(AsyncClient.get_status)
    get_status_by = _blocking(AsyncClient.get_status_by)
    count_instances_by_status = _blocking(AsyncClient.count_instances_by_status)
    wait_for_completion = _blocking(AsyncClient.wait_for_completion)
    raise_event = _blocking(AsyncClient.raise_event)
    terminate = _blocking(AsyncClient.terminate)
    suspend = _blocking(AsyncClient.suspend)
    resume = _blocking(AsyncClient.resume)
    purge_instance_history = _blocking(AsyncClient.purge_instance_history)
    purge_instance_history_by = _blocking(AsyncClient.purge_instance_history_by)
    signal_entity = _blocking(AsyncClient.signal_entity)
    read_entity_state = _blocking(AsyncClient.read_entity_state)
    get_entities = _blocking(AsyncClient.get_entities)
    clean_entity_storage = _blocking(AsyncClient.clean_entity_storage)
    wait_for_completion_or_create_check_status_response = _blocking(
        AsyncClient.wait_for_completion_or_create_check_status_response
    )

    def create_http_management_payload(
        self, instance_id: str, *, base_url: str | None = None
    ) -> dict[str, str]:
        """The management URLs of an instance (see the AsyncClient method)."""
        return self._async.create_http_management_payload(instance_id, base_url=base_url)

    def create_check_status_response(self, req: HttpRequest, instance_id: str) -> HttpResponse:
        """The 202 check-status response; see :meth:`AsyncClient.create_check_status_response`."""
        return self._async.create_check_status_response(req, instance_id)

    def close(self) -> None:
        """Close the store (if this client opened it) and the client's loop thread."""
        if self._owns_portal:
            self._portal.run(self._async.close())
            self._portal.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
