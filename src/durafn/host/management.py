"""The management API under ``/runtime/webhooks/durabletask``, with Durable Functions routes.

Every handler translates one request into one :class:`~durafn.AsyncClient` call; the mapping of
errors to status codes lives in :mod:`durafn.host.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from durafn.client.async_client import AsyncClient
from durafn.client.entities import EntityMetadata
from durafn.core.entities import EntityId
from durafn.core.status import RuntimeStatus
from durafn.host.errors import BadRequest
from durafn.host.requests import client_of, read_json_body, require_key
from durafn.http.status_json import status_to_json
from durafn.http.urls import MANAGEMENT_PREFIX, base_url_of

CONTINUATION_HEADER = "x-ms-continuation-token"

Endpoint = Callable[[Request], Awaitable[Response]]


def _client(request: Request) -> AsyncClient:
    """The client of a management request, once its key and task hub are checked.

    ``taskHub`` (as the management URLs carry it) must name the hub this host serves, matched
    without regard to case as Durable Functions does: a request meant for another hub must not
    act on this one. ``connection`` is accepted and ignored.
    """
    require_key(request, "system")
    client = client_of(request)
    task_hub = request.query_params.get("taskHub")
    if task_hub and task_hub.lower() != client.store.task_hub.lower():
        raise BadRequest(f"this host serves task hub {client.store.task_hub!r}, not {task_hub!r}")
    return client


async def start_orchestration(request: Request) -> Response:
    client = _client(request)
    name = _orchestrator_name(client, request.path_params["function_name"])
    instance_id = request.path_params.get("instance_id")
    body = await read_json_body(request)
    instance_id = await client.start_new(name, body, instance_id=instance_id)
    payload = client.create_http_management_payload(
        instance_id, base_url=base_url_of(str(request.url))
    )
    return JSONResponse(
        payload,
        status_code=202,
        headers={"Location": payload["statusQueryGetUri"], "Retry-After": "10"},
    )


def _orchestrator_name(client: AsyncClient, name: str) -> str:
    """``name``, or the one registered orchestrator it names when case is ignored (function
    names in Durable Functions URLs are not case-sensitive)."""
    if client.app is None or name in client.app.orchestrator_names:
        return name
    same = [n for n in client.app.orchestrator_names if n.lower() == name.lower()]
    return same[0] if len(same) == 1 else name


async def get_instance(request: Request) -> Response:
    client = _client(request)
    params = request.query_params
    show_history = _flag(params.get("showHistory"))
    show_input = _flag(params.get("showInput"), default=True)
    # Payloads are fetched whenever history is asked for: inputs in the history follow
    # showInput, results follow showHistoryOutput (as in Durable Functions).
    status = await client.get_status(
        request.path_params["instance_id"],
        show_history=show_history,
        show_history_output=show_history,
        show_input=show_input,
    )
    if status is None:
        return _not_found(request.path_params["instance_id"])
    if status.runtime_status is RuntimeStatus.PENDING:
        status.history = None  # not started: no history to show, and no key (as in DF)
    document = status_to_json(
        status,
        show_history_output=_flag(params.get("showHistoryOutput")),
        show_history_input=show_input,
    )
    if not status.is_finished:
        return JSONResponse(
            document,
            status_code=202,
            headers={"Location": str(request.url), "Retry-After": "5"},
        )
    code = 200
    if status.runtime_status is RuntimeStatus.FAILED and _flag(
        params.get("returnInternalServerErrorOnFailure")
    ):
        code = 500
    return JSONResponse(document, status_code=code)


async def list_instances(request: Request) -> Response:
    client = _client(request)
    params = request.query_params
    top = _int(params.get("top"), "top", default=100)
    page = await client.get_status_by(
        runtime_status=_statuses(request),
        created_time_from=_time(params.get("createdTimeFrom"), "createdTimeFrom"),
        created_time_to=_time(params.get("createdTimeTo"), "createdTimeTo"),
        instance_id_prefix=params.get("instanceIdPrefix") or None,
        page_size=top,
        continuation_token=request.headers.get(CONTINUATION_HEADER) or None,
        show_input=_flag(params.get("showInput"), default=True),
    )
    # Always sent, empty on the last page, as Durable Functions does: clients loop while it is
    # non-empty.
    return JSONResponse(
        [status_to_json(s) for s in page.instances],
        headers={CONTINUATION_HEADER: page.continuation_token or ""},
    )


async def purge_instance(request: Request) -> Response:
    deleted = await _client(request).purge_instance_history(request.path_params["instance_id"])
    if deleted == 0:
        return _not_found(request.path_params["instance_id"])
    return JSONResponse({"instancesDeleted": deleted})


async def purge_instances(request: Request) -> Response:
    client = _client(request)
    params = request.query_params
    created_from = _time(params.get("createdTimeFrom"), "createdTimeFrom")
    if created_from is None:
        raise BadRequest("createdTimeFrom is required to purge many instances")
    deleted = await client.purge_instance_history_by(
        created_time_from=created_from,
        created_time_to=_time(params.get("createdTimeTo"), "createdTimeTo"),
        runtime_status=_statuses(request),
    )
    if deleted == 0:
        return JSONResponse(
            {"error": "NotFound", "message": "no finished instance matched"}, status_code=404
        )
    return JSONResponse({"instancesDeleted": deleted})


async def raise_event(request: Request) -> Response:
    client = _client(request)
    data = await read_json_body(request)
    await client.raise_event(
        request.path_params["instance_id"], request.path_params["event_name"], data
    )
    return Response(status_code=202)


async def terminate(request: Request) -> Response:
    await _client(request).terminate(
        request.path_params["instance_id"], request.query_params.get("reason")
    )
    return Response(status_code=202)


async def suspend(request: Request) -> Response:
    await _client(request).suspend(
        request.path_params["instance_id"], request.query_params.get("reason")
    )
    return Response(status_code=202)


async def resume(request: Request) -> Response:
    await _client(request).resume(
        request.path_params["instance_id"], request.query_params.get("reason")
    )
    return Response(status_code=202)


async def restart(request: Request) -> Response:
    """Start the instance's orchestrator again with its original input.

    With ``restartWithNewInstanceId=true`` (the default, as in Durable Functions) the new run
    gets a new id; otherwise the finished instance is replaced under its own id.
    """
    client = _client(request)
    instance_id = request.path_params["instance_id"]
    status = await client.get_status(instance_id)
    if status is None:
        return _not_found(instance_id)
    new_id = (
        None
        if _flag(request.query_params.get("restartWithNewInstanceId"), default=True)
        else instance_id
    )
    started = await client.start_new(status.name, status.input, instance_id=new_id)
    payload = client.create_http_management_payload(started, base_url=base_url_of(str(request.url)))
    return JSONResponse(
        payload,
        status_code=202,
        headers={"Location": payload["statusQueryGetUri"], "Retry-After": "10"},
    )


async def signal_entity(request: Request) -> Response:
    """Signal an entity: ``?op=`` names the operation, the body is its input (202)."""
    client = _client(request)
    entity = EntityId(request.path_params["entity_name"], request.path_params["entity_key"])
    operation = request.query_params.get("op")
    if not operation:
        raise BadRequest("op is required: the name of the operation to signal")
    data = await read_json_body(request)
    await client.signal_entity(entity, operation, data)
    return Response(status_code=202)


async def get_entity(request: Request) -> Response:
    """The entity's state (200), or 404 when it has none."""
    client = _client(request)
    entity = EntityId(request.path_params["entity_name"], request.path_params["entity_key"])
    state = await client.read_entity_state(entity)
    if not state.entity_exists:
        return JSONResponse(
            {"error": "EntityNotFound", "message": f"entity {str(entity)!r} has no state"},
            status_code=404,
        )
    return JSONResponse(state.entity_state)


async def list_entities(request: Request) -> Response:
    """A page of entities (of one name, with ``/entities/{name}``), newest first."""
    client = _client(request)
    params = request.query_params
    fetch_state = _flag(params.get("fetchState"))
    page = await client.get_entities(
        name=request.path_params.get("entity_name"),
        page_size=_int(params.get("top"), "top", default=100),
        continuation_token=request.headers.get(CONTINUATION_HEADER) or None,
        include_deleted=_flag(params.get("includeDeleted")),
        include_state=fetch_state,
    )
    return JSONResponse(
        [_entity_json(e, fetch_state) for e in page.entities],
        headers={CONTINUATION_HEADER: page.continuation_token or ""},
    )


def _entity_json(entity: EntityMetadata, with_state: bool) -> dict[str, object]:
    document: dict[str, object] = {
        "entityId": {"name": entity.entity_id.name, "key": entity.entity_id.key},
        "lastOperationTime": entity.last_modified_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if with_state:
        document["state"] = entity.state
    if entity.locked_by is not None:
        document["lockedBy"] = entity.locked_by
    return document


def management_routes() -> list[Route]:
    base = MANAGEMENT_PREFIX
    instance = f"{base}/instances/{{instance_id}}"
    # One route per path, so a wrong method gets a 405 whose Allow header lists every method
    # of the path (two routes on one path would only list the first route's methods).
    return [
        Route(f"{base}/orchestrators/{{function_name}}", start_orchestration, methods=["POST"]),
        Route(
            f"{base}/orchestrators/{{function_name}}/{{instance_id}}",
            start_orchestration,
            methods=["POST"],
        ),
        _by_method(f"{base}/instances", GET=list_instances, DELETE=purge_instances),
        _by_method(instance, GET=get_instance, DELETE=purge_instance),
        Route(f"{instance}/raiseEvent/{{event_name}}", raise_event, methods=["POST"]),
        Route(f"{instance}/terminate", terminate, methods=["POST"]),
        Route(f"{instance}/suspend", suspend, methods=["POST"]),
        Route(f"{instance}/resume", resume, methods=["POST"]),
        Route(f"{instance}/restart", restart, methods=["POST"]),
        Route(f"{base}/entities", list_entities, methods=["GET"]),
        Route(f"{base}/entities/{{entity_name}}", list_entities, methods=["GET"]),
        _by_method(
            f"{base}/entities/{{entity_name}}/{{entity_key}}", GET=get_entity, POST=signal_entity
        ),
    ]


def _by_method(path: str, **endpoints: Endpoint) -> Route:
    """One route serving ``path`` with a handler per method (HEAD is served by GET's)."""

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return Route(path, dispatch, methods=list(endpoints))


def _statuses(request: Request) -> list[str] | None:
    """``runtimeStatus``: a comma list, maybe repeated (``runtimeStatus=A,B&runtimeStatus=C``)."""
    statuses = [
        item.strip()
        for value in request.query_params.getlist("runtimeStatus")
        for item in value.split(",")
        if item.strip()
    ]
    return statuses or None


def _not_found(instance_id: str) -> Response:
    return JSONResponse(
        {"error": "InstanceNotFound", "message": f"no instance with id {instance_id!r}"},
        status_code=404,
    )


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise BadRequest(f"expected true or false, got {value!r}")


def _int(value: str | None, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {value!r}") from None
    if not 1 <= number <= 1000:
        raise BadRequest(f"{name} must be between 1 and 1000")
    return number


_DATE_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})"
)


def _time(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 date-time with its offset (``2026-01-02T03:04:05Z``), or ``None``."""
    if value is None:
        return None
    if not _DATE_TIME.fullmatch(value):
        raise BadRequest(
            f"{name} must be an ISO 8601 date-time with an offset, such as "
            f"2026-01-02T03:04:05Z; got {value!r}"
        )
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} is not a valid date-time: {value!r}") from None
