"""The dashboard's routes: its page and assets at ``/``, its JSON under ``/dashboard/api``.

Every handler goes through the host's :class:`~durafn.AsyncClient`, as the management API does;
there is no other path to the store. Off loopback every route needs a key that opens the
management API (the ``durabletask`` or ``master`` key), given once as ``/?code=KEY``: the page
then keeps it in a cookie that is only sent to this host by this host's own pages
(``SameSite=Strict``). In read-only mode every action is refused with ``403``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from durafn.core.errors import InstanceNotFound, InstanceNotRunning
from durafn.core.status import RuntimeStatus
from durafn.dashboard.documents import history_json, instance_detail, instance_row
from durafn.dashboard.entities import list_entities, signal_entity
from durafn.dashboard.timeline import build_timeline, timeline_to_json
from durafn.host.errors import BadRequest, Unauthorized
from durafn.host.requests import client_of, presented_key, read_json_body, state_of

STATIC = Path(__file__).parent / "static"
API = "/dashboard/api"
KEY_COOKIE = "durafn_dashboard_key"
DEFAULT_PAGE_SIZE = 50
MAX_CHILDREN = 50
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

Endpoint = Callable[[Request], Awaitable[Response]]


def dashboard_routes(read_only: bool = False) -> list[BaseRoute]:
    """The dashboard's routes, to mount in a host (``durafn start``) or on their own."""

    def read(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            _authorize(request)
            return await endpoint(request)

        return guarded

    def act(endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> Response:
            _authorize(request)
            if read_only:
                return JSONResponse(
                    {"error": "Forbidden", "message": "this dashboard is read-only"},
                    status_code=403,
                )
            return await endpoint(request)

        return guarded

    async def info(request: Request) -> Response:
        client = client_of(request)
        return JSONResponse(
            {
                "taskHub": client.store.task_hub,
                "readOnly": read_only,
                "orchestrators": client.app.orchestrator_names if client.app else [],
                "entities": client.app.entity_names if client.app else [],
                "statuses": [s.value for s in RuntimeStatus],
            }
        )

    instance = f"{API}/instances/{{instance_id}}"
    return [
        Route("/", index, methods=["GET"]),
        Route("/dashboard/static/{name}", asset, methods=["GET"]),
        Route(f"{API}/info", read(info), methods=["GET"]),
        Route(f"{API}/instances", read(list_instances), methods=["GET"]),
        Route(f"{API}/counts", read(count_instances), methods=["GET"]),
        Route(instance, read(get_instance), methods=["GET"]),
        Route(f"{API}/orchestrators/{{name}}", act(start_orchestration), methods=["POST"]),
        Route(f"{instance}/raise-event", act(raise_event), methods=["POST"]),
        Route(f"{instance}/terminate", act(terminate), methods=["POST"]),
        Route(f"{instance}/suspend", act(suspend), methods=["POST"]),
        Route(f"{instance}/resume", act(resume), methods=["POST"]),
        Route(f"{instance}/purge", act(purge), methods=["POST"]),
        Route(f"{API}/bulk/terminate", act(bulk_terminate), methods=["POST"]),
        Route(f"{API}/bulk/purge", act(bulk_purge), methods=["POST"]),
        Route(f"{API}/entities", read(list_entities), methods=["GET"]),
        Route(f"{API}/entities/signal", act(signal_entity), methods=["POST"]),
    ]


# ------------------------------------------------------------------------------ keys


def _authorize(request: Request) -> None:
    """The management API's check, with the key also accepted from the dashboard's cookie."""
    keys = state_of(request).keys
    if keys is None:
        return
    presented = presented_key(request) or request.cookies.get(KEY_COOKIE)
    if not keys.allows("system", presented):
        raise Unauthorized(
            "the dashboard needs the management key: open /?code=KEY (see `durafn keys`)"
        )


# ------------------------------------------------------------------------------ page and assets


async def index(request: Request) -> Response:
    try:
        _authorize(request)
    except Unauthorized:
        return HTMLResponse(_KEY_PAGE, status_code=401, headers=_KEY_PAGE_HEADERS)
    response = FileResponse(STATIC / "index.html", headers=_SECURITY_HEADERS)
    code = request.query_params.get("code")
    if code and state_of(request).keys is not None:
        response.set_cookie(KEY_COOKIE, code, httponly=True, samesite="strict", path="/")
    return response


_ASSETS = {p.name for p in STATIC.iterdir() if p.suffix in _CONTENT_TYPES}


async def asset(request: Request) -> Response:
    _authorize(request)
    name = request.path_params["name"]
    if name not in _ASSETS:
        return JSONResponse({"error": "NotFound", "message": f"no asset {name!r}"}, 404)
    path = STATIC / name
    return FileResponse(
        path, media_type=_CONTENT_TYPES[path.suffix], headers=dict(_SECURITY_HEADERS)
    )


# Served without a key, so it cannot load the (guarded) style sheet: its style is inline.
_KEY_PAGE_HEADERS = {
    **_SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "WWW-Authenticate": "x-functions-key",
}
_KEY_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>durafn dashboard: key required</title>
<style>
body { font: 15px system-ui, sans-serif; display: grid; place-items: center; height: 90vh;
  background: #f6f7f9; color: #1d2330; }
form { background: #fff; padding: 28px 32px; border-radius: 10px; width: 380px;
  box-shadow: 0 1px 3px rgba(0,0,0,.12); }
input { display: block; width: 100%; margin: 6px 0 16px; padding: 8px; box-sizing: border-box; }
button { padding: 8px 14px; background: #2f6fde; color: #fff; border: 0; border-radius: 6px; }
</style></head>
<body><form method="get" action="/" class="key-form">
<h1>durafn</h1>
<p>This dashboard is served off loopback and needs the management key
(<code>durafn keys</code> shows it).</p>
<label>Management key <input type="password" name="code" autofocus required></label>
<button type="submit">Open the dashboard</button>
</form></body></html>
"""


# ------------------------------------------------------------------------------ reading


async def list_instances(request: Request) -> Response:
    filters = _filters(request)
    params = request.query_params
    page = await client_of(request).get_status_by(
        **filters,
        page_size=_page_size(params.get("top")),
        continuation_token=params.get("token") or None,
    )
    return JSONResponse(
        {
            "instances": [instance_row(s) for s in page.instances],
            "continuationToken": page.continuation_token,
        }
    )


async def count_instances(request: Request) -> Response:
    """Counts per status for the filters other than the status (the list's tabs)."""
    filters = _filters(request)
    filters.pop("runtime_status")
    counts = await client_of(request).count_instances_by_status(**filters)
    return JSONResponse(
        {"counts": {s.value: n for s, n in counts.items()}, "total": sum(counts.values())}
    )


async def get_instance(request: Request) -> Response:
    client = client_of(request)
    instance_id = request.path_params["instance_id"]
    status = await client.get_status(instance_id, show_history=True, show_history_output=True)
    if status is None:
        return JSONResponse(
            {"error": "InstanceNotFound", "message": f"no instance with id {instance_id!r}"},
            status_code=404,
        )
    history = status.history or []
    now = client.clock.now()
    children = []
    for event in history:
        child_id = getattr(event, "instance_id", None)
        if event.kind == "SubOrchestrationInstanceCreated" and child_id:
            child = await client.get_status(child_id, show_input=False)
            children.append(
                {
                    "instanceId": child_id,
                    "name": getattr(event, "name", None),
                    "runtimeStatus": child.runtime_status.value if child else None,
                }
            )
            if len(children) >= MAX_CHILDREN:
                break
    timeline = build_timeline(history, status.runtime_status, status.created_time, now)
    return JSONResponse(
        {
            "instance": instance_detail(status),
            "history": history_json(history),
            "timeline": timeline_to_json(timeline),
            "children": children,
            "now": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    )


# ------------------------------------------------------------------------------ actions


async def start_orchestration(request: Request) -> Response:
    body = await _object_body(request)
    instance_id = body.get("instanceId") or None
    if instance_id is not None and not isinstance(instance_id, str):
        raise BadRequest("instanceId must be a string")
    started = await client_of(request).start_new(
        request.path_params["name"], body.get("input"), instance_id=instance_id
    )
    return JSONResponse({"id": started}, status_code=202)


async def raise_event(request: Request) -> Response:
    body = await _object_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("name (the event's name) is required")
    await client_of(request).raise_event(request.path_params["instance_id"], name, body.get("data"))
    return JSONResponse({"accepted": True}, status_code=202)


async def terminate(request: Request) -> Response:
    reason = (await _object_body(request)).get("reason")
    await client_of(request).terminate(request.path_params["instance_id"], reason or None)
    return JSONResponse({"accepted": True}, status_code=202)


async def suspend(request: Request) -> Response:
    reason = (await _object_body(request)).get("reason")
    await client_of(request).suspend(request.path_params["instance_id"], reason or None)
    return JSONResponse({"accepted": True}, status_code=202)


async def resume(request: Request) -> Response:
    reason = (await _object_body(request)).get("reason")
    await client_of(request).resume(request.path_params["instance_id"], reason or None)
    return JSONResponse({"accepted": True}, status_code=202)


async def purge(request: Request) -> Response:
    instance_id = request.path_params["instance_id"]
    deleted = await client_of(request).purge_instance_history(instance_id)
    if deleted == 0:
        return JSONResponse(
            {"error": "InstanceNotFound", "message": f"no instance with id {instance_id!r}"},
            status_code=404,
        )
    return JSONResponse({"instancesDeleted": deleted})


async def bulk_terminate(request: Request) -> Response:
    """Terminate every unfinished instance the filters match; ``dryRun`` only counts them."""
    body = await _object_body(request)
    filters = _filters_from(body)
    asked = filters.pop("runtime_status")
    statuses = [s for s in RuntimeStatus if not s.is_terminal and (asked is None or s in asked)]
    client = client_of(request)
    if body.get("dryRun"):
        counts = await client.count_instances_by_status(**filters)
        return JSONResponse({"count": sum(counts[s] for s in statuses), "dryRun": True})
    reason = body.get("reason") or "terminated from the dashboard"
    terminated = 0
    token: str | None = None
    while True:
        page = await client.get_status_by(
            runtime_status=statuses, page_size=1000, continuation_token=token, **filters
        )
        for status in page.instances:
            try:
                await client.terminate(status.instance_id, reason)
            except (InstanceNotRunning, InstanceNotFound):  # finished or purged meanwhile
                continue
            terminated += 1
        token = page.continuation_token
        if token is None:
            return JSONResponse({"count": terminated, "dryRun": False})


async def bulk_purge(request: Request) -> Response:
    """Purge every finished instance the filters match; ``dryRun`` only counts them."""
    body = await _object_body(request)
    filters = _filters_from(body)
    asked = filters.pop("runtime_status")
    statuses = [s for s in RuntimeStatus if s.is_terminal and (asked is None or s in asked)]
    client = client_of(request)
    if body.get("dryRun"):
        counts = await client.count_instances_by_status(**filters)
        return JSONResponse({"count": sum(counts[s] for s in statuses), "dryRun": True})
    if not statuses:
        return JSONResponse({"count": 0, "dryRun": False})
    deleted = await client.purge_instance_history_by(
        created_time_from=filters["created_time_from"],
        created_time_to=filters["created_time_to"],
        runtime_status=statuses,
        name=filters["name"],
        instance_id_prefix=filters["instance_id_prefix"],
    )
    return JSONResponse({"count": deleted, "dryRun": False})


# ------------------------------------------------------------------------------ parsing


_FILTER_KEYS = ("status", "name", "prefix", "from", "to")


def _filters(request: Request) -> dict[str, Any]:
    """The list's filters from the query string (``status=A,B&name=&prefix=&from=&to=``)."""
    params = request.query_params
    return _filters_from(
        {key: params.get(key) for key in ("status", "name", "prefix", "from", "to")}
    )


def _filters_from(source: dict[str, Any]) -> dict[str, Any]:
    """The filters of a query string or of a bulk action's body, as client keyword arguments."""
    status = source.get("status")
    if isinstance(status, str):
        status = [item.strip() for item in status.split(",") if item.strip()]
    if status is not None and not isinstance(status, list):
        raise BadRequest("status must be a list of runtime statuses")
    try:
        statuses = frozenset(RuntimeStatus(s) for s in status) if status else None
    except ValueError:
        known = ", ".join(s.value for s in RuntimeStatus)
        raise BadRequest(f"unknown runtime status in {status!r}; use {known}") from None
    return {
        "runtime_status": statuses,
        "name": _text(source.get("name"), "name"),
        "instance_id_prefix": _text(source.get("prefix"), "prefix"),
        "created_time_from": _time(source.get("from"), "from"),
        "created_time_to": _time(source.get("to"), "to"),
    }


def _text(value: Any, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string")
    return value


def _time(value: Any, what: str) -> datetime | None:
    """An ISO 8601 time; without an offset it is taken as UTC."""
    text = _text(value, what)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{what} must be an ISO 8601 time, got {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _page_size(value: str | None) -> int:
    if not value:
        return DEFAULT_PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= 1000:
        raise BadRequest(f"top must be a whole number from 1 to 1000, got {value!r}")
    return int(value)


async def _object_body(request: Request) -> dict[str, Any]:
    body = await read_json_body(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {json.dumps(body)[:80]}")
    return body
