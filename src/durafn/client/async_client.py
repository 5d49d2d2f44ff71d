"""AsyncClient: the one implementation of every client operation."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from durafn.app import App
from durafn.client.entities import EntityClient
from durafn.core import codec
from durafn.core.errors import InstanceNotFound
from durafn.core.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
)
from durafn.core.ids import new_instance_id, validate_event_name, validate_instance_id
from durafn.core.status import OrchestrationStatus, RuntimeStatus
from durafn.core.times import as_utc_optional
from durafn.http.messages import HttpRequest, HttpResponse
from durafn.http.urls import base_url_of, management_urls
from durafn.store import Store, open_store
from durafn.store.base import InstanceQuery, InstanceRecord, NewInstance, OrchestrationWorkItem
from durafn.worker.checkpoint import new_execution_id
from durafn.worker.clock import Clock, SystemClock


@dataclass
class OrchestrationStatusPage:
    """One page of :meth:`AsyncClient.get_status_by`; pass ``continuation_token`` for the next."""

    instances: list[OrchestrationStatus]
    continuation_token: str | None


def _created(
    creation: asyncio.Future[OrchestrationWorkItem],
) -> OrchestrationWorkItem | None:
    if creation.cancelled() or creation.exception() is not None:
        return None
    return creation.result()


class LocalWorker(Protocol):
    """A worker in this process that takes the instances a client starts (see
    ``Worker.reserve`` and ``Worker.adopt``)."""

    def reserve(self) -> tuple[str, timedelta] | None: ...

    def adopt(self, item: OrchestrationWorkItem | None) -> None: ...


class AsyncClient(EntityClient):
    """Starts, queries and steers orchestration instances, and signals and reads entities, in
    one task hub.

    ``store`` is a store URL (see :func:`durafn.store.open_store`; default ``$DURAFN_STORE`` or
    ``sqlite:///durafn.db``) or an open store. When ``app`` is given, orchestrator names are
    checked at ``start_new``; otherwise an unknown name fails the instance when a worker runs it.
    """

    def __init__(
        self,
        store: str | Store | None = None,
        *,
        app: App | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._owns_store = not isinstance(store, Store)
        self.store: Store = store if isinstance(store, Store) else open_store(store)
        self.app = app
        self.clock = clock or SystemClock()
        # Set by the host: where its management API is served, and the key its URLs carry.
        self.http_base_url: str | None = None
        self.http_key: str | None = None
        # Set by a runtime or host that runs a worker beside this client: instances it starts
        # go straight to that worker (created leased to it) while it has a free slot.
        self.local_worker: LocalWorker | None = None

    async def close(self) -> None:
        """Close the store if this client opened it."""
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ starting

    async def start_new(
        self,
        orchestration_function_name: str | Callable[..., Any],
        input: Any = None,
        *,
        instance_id: str | None = None,
        start_at: datetime | None = None,
    ) -> str:
        """Start an instance of an orchestrator and return its instance id.

        Raises ``InstanceAlreadyExists`` if ``instance_id`` names an unfinished instance (a
        finished one is replaced, history and all), ``FunctionNotFound`` for an orchestrator
        the client's app does not register, ``TypeError`` for an input that cannot be encoded,
        ``ValueError`` for a malformed instance id. ``start_at`` delays the start.
        """
        name = self._orchestrator_name(orchestration_function_name)
        instance_id = (
            new_instance_id() if instance_id is None else validate_instance_id(instance_id)
        )
        encoded = codec.encode_optional(input, what=f"input of orchestrator {name!r}")
        start_at = as_utc_optional(start_at, "start_at")
        now = self.clock.now()
        started = ExecutionStarted(
            timestamp=now,
            name=name,
            execution_id=new_execution_id(),
            input=encoded,
            scheduled_start_time=start_at,
        )
        new = NewInstance(instance_id, started, start_at)
        worker = self.local_worker
        slot = None if worker is None or start_at is not None else worker.reserve()
        if worker is None or slot is None:
            await self.store.create_instance(new, now)
            return instance_id
        owner, lease = slot
        # Shielded: a caller cancelled while the creation commits must not strand an instance
        # leased to the worker; the worker takes whatever the creation ends with.
        creating = asyncio.ensure_future(self.store.create_instance_leased(new, now, owner, lease))
        try:
            item = await asyncio.shield(creating)
        except asyncio.CancelledError:
            creating.add_done_callback(lambda done: worker.adopt(_created(done)))
            raise
        except BaseException:
            worker.adopt(None)
            raise
        worker.adopt(item)
        return instance_id

    def _orchestrator_name(self, name_or_func: str | Callable[..., Any]) -> str:
        if self.app is not None:
            name = self.app.name_of(name_or_func, "orchestrator")
            self.app.get_orchestrator(name)
            return name
        if isinstance(name_or_func, str):
            if not name_or_func:
                raise ValueError("orchestrator name must not be empty")
            return name_or_func
        raise TypeError(
            "without an app the client cannot tell a function's registered name: pass the "
            "orchestrator's name, or create the client with app="
        )

    # ------------------------------------------------------------------ querying

    async def get_status(
        self,
        instance_id: str,
        *,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = True,
    ) -> OrchestrationStatus | None:
        """The instance's status, or ``None`` if there is no such instance.

        ``show_history`` adds the history events of the current execution; without
        ``show_history_output`` their payloads are left out.
        """
        validate_instance_id(instance_id)
        record = await self.store.get_instance(instance_id)
        if record is None:
            return None
        status = _status(record, show_input)
        if show_history:
            events = await self.store.get_history(instance_id)
            status.history = events if show_history_output else [_strip(e) for e in events]
        return status

    async def get_status_by(
        self,
        runtime_status: Iterable[RuntimeStatus | str] | None = None,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        name: str | None = None,
        instance_id_prefix: str | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
        *,
        show_input: bool = False,
    ) -> OrchestrationStatusPage:
        """A page of instances matching every given filter, newest first."""
        if not 1 <= page_size <= 1000:
            raise ValueError("page_size must be between 1 and 1000")
        query = InstanceQuery(
            runtime_status=_statuses(runtime_status),
            created_from=as_utc_optional(created_time_from, "created_time_from"),
            created_to=as_utc_optional(created_time_to, "created_time_to"),
            name=name,
            instance_id_prefix=instance_id_prefix,
            page_size=page_size,
            continuation_token=continuation_token,
        )
        page = await self.store.query_instances(query)
        return OrchestrationStatusPage(
            [_status(r, show_input) for r in page.instances], page.continuation_token
        )

    async def count_instances_by_status(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        name: str | None = None,
        instance_id_prefix: str | None = None,
        *,
        runtime_status: Iterable[RuntimeStatus | str] | None = None,
    ) -> dict[RuntimeStatus, int]:
        """How many instances match the filters, per runtime status (statuses with none are 0).

        One aggregate query in the store, however many instances match.
        """
        query = InstanceQuery(
            runtime_status=_statuses(runtime_status),
            created_from=as_utc_optional(created_time_from, "created_time_from"),
            created_to=as_utc_optional(created_time_to, "created_time_to"),
            name=name,
            instance_id_prefix=instance_id_prefix,
        )
        counts = dict.fromkeys(RuntimeStatus, 0)
        counts.update(await self.store.count_instances(query))
        return counts

    async def wait_for_completion(
        self, instance_id: str, timeout: float | timedelta | None = None
    ) -> OrchestrationStatus:
        """Wait until the instance finishes and return its final status.

        Raises builtin ``TimeoutError`` after ``timeout`` (seconds or a timedelta), and
        ``InstanceNotFound`` if there is no such instance.
        """
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            token = await self.store.change_token()
            status = await self.get_status(instance_id)
            if status is None:
                raise InstanceNotFound(instance_id)
            if status.is_finished:
                return status
            remaining = 1.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"instance {instance_id!r} is still {status.runtime_status.value} after "
                    f"{seconds} s"
                )
            await self.store.wait_for_change(token, min(remaining, 1.0))

    # ------------------------------------------------------------------ HTTP helpers

    def create_http_management_payload(
        self, instance_id: str, *, base_url: str | None = None
    ) -> dict[str, str]:
        """The management URLs of an instance (``id``, ``statusQueryGetUri``, ...).

        ``base_url`` defaults to the address of the host this client runs in.
        """
        validate_instance_id(instance_id)
        base = base_url or self.http_base_url
        if base is None:
            raise ValueError("no base URL: pass base_url= (the host sets it for its clients)")
        return management_urls(base, instance_id, self.store.task_hub, self.http_key)

    def create_check_status_response(self, req: HttpRequest, instance_id: str) -> HttpResponse:
        """A 202 response pointing at the instance's status URL (``Location``, ``Retry-After``)
        with the management URLs as its JSON body, built from the request's base URL."""
        payload = self.create_http_management_payload(instance_id, base_url=base_url_of(req.url))
        return HttpResponse.json(
            payload,
            status_code=202,
            headers={"Location": payload["statusQueryGetUri"], "Retry-After": "10"},
        )

    async def wait_for_completion_or_create_check_status_response(
        self,
        req: HttpRequest,
        instance_id: str,
        timeout_in_milliseconds: int = 10_000,
        retry_interval_in_milliseconds: int = 1_000,
    ) -> HttpResponse:
        """The instance's output (200) if it finishes within the timeout, else the 202
        check-status response. A failed or terminated instance answers 500 or 200 with its
        status document."""
        del retry_interval_in_milliseconds  # the store tells us when something changed
        try:
            status = await self.wait_for_completion(
                instance_id, timeout=timeout_in_milliseconds / 1000
            )
        except TimeoutError:
            return self.create_check_status_response(req, instance_id)
        if status.runtime_status is RuntimeStatus.COMPLETED:
            return HttpResponse.json(status.output)
        from durafn.http.status_json import status_to_json

        code = 500 if status.runtime_status is RuntimeStatus.FAILED else 200
        return HttpResponse.json(status_to_json(status), status_code=code)

    # ------------------------------------------------------------------ steering

    async def raise_event(self, instance_id: str, event_name: str, data: Any = None) -> None:
        """Send an external event; the orchestrator receives it at ``wait_for_external_event``.

        Raises ``InstanceNotFound``, or ``InstanceNotRunning`` for a finished instance.
        """
        validate_instance_id(instance_id)
        validate_event_name(event_name)
        encoded = codec.encode_optional(data, what=f"data of event {event_name!r}")
        await self._send(
            instance_id, EventRaised(timestamp=self.clock.now(), name=event_name, input=encoded)
        )

    async def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Stop the instance; it ends as Terminated with ``reason`` as its output."""
        await self._send(
            instance_id, ExecutionTerminated(timestamp=self.clock.now(), reason=_reason(reason))
        )

    async def suspend(self, instance_id: str, reason: str | None = None) -> None:
        """Pause the instance: it keeps receiving messages but runs no code until resumed."""
        await self._send(
            instance_id, ExecutionSuspended(timestamp=self.clock.now(), reason=_reason(reason))
        )

    async def resume(self, instance_id: str, reason: str | None = None) -> None:
        """Resume a suspended instance."""
        await self._send(
            instance_id, ExecutionResumed(timestamp=self.clock.now(), reason=_reason(reason))
        )

    async def _send(self, instance_id: str, event: HistoryEvent) -> None:
        validate_instance_id(instance_id)
        await self.store.send_message(instance_id, event, self.clock.now())

    # ------------------------------------------------------------------ purging

    async def purge_instance_history(self, instance_id: str) -> int:
        """Delete a finished instance and its history; returns 1, or 0 if it does not exist.

        Raises ``InstanceStillRunning`` for an unfinished instance.
        """
        validate_instance_id(instance_id)
        return await self.store.purge_instance(instance_id)

    async def purge_instance_history_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Iterable[RuntimeStatus | str] | None = None,
        *,
        name: str | None = None,
        instance_id_prefix: str | None = None,
    ) -> int:
        """Delete every finished instance matching the filters; returns how many."""
        query = InstanceQuery(
            runtime_status=_statuses(runtime_status),
            created_from=as_utc_optional(created_time_from, "created_time_from"),
            created_to=as_utc_optional(created_time_to, "created_time_to"),
            name=name,
            instance_id_prefix=instance_id_prefix,
        )
        return await self.store.purge_instances(query)


def _reason(reason: Any) -> str | None:
    if reason is not None and not isinstance(reason, str):
        raise TypeError("reason must be a str")
    return reason


def _statuses(values: Iterable[RuntimeStatus | str] | None) -> frozenset[RuntimeStatus] | None:
    if values is None:
        return None
    if isinstance(values, str | RuntimeStatus):
        values = [values]
    try:
        return frozenset(RuntimeStatus(v) for v in values)
    except ValueError:
        known = ", ".join(s.value for s in RuntimeStatus)
        raise ValueError(f"unknown runtime status in {list(values)!r}; use {known}") from None


def _status(record: InstanceRecord, show_input: bool) -> OrchestrationStatus:
    return OrchestrationStatus(
        instance_id=record.instance_id,
        name=record.name,
        runtime_status=record.status,
        created_time=record.created_at,
        last_updated_time=record.updated_at,
        input=codec.decode(record.input) if show_input else None,
        output=codec.decode(record.output),
        custom_status=codec.decode(record.custom_status),
        failure_details=record.failure,
        parent_instance_id=record.parent_instance_id,
        scheduled_start_time=record.scheduled_start_at,
    )


def _strip(event: HistoryEvent) -> HistoryEvent:
    payloads = {f: None for f in ("input", "result") if hasattr(event, f)}
    return dataclasses.replace(event, **cast(dict[str, Any], payloads)) if payloads else event
