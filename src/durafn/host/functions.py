"""The app's HTTP functions, served under ``/api``."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from durafn.app import App, HttpRoute
from durafn.client.async_client import AsyncClient
from durafn.client.client import Client
from durafn.host.requests import read_body, require_key, state_of
from durafn.http.messages import HttpRequest, HttpResponse
from durafn.http.status_json import to_plain_json

Endpoint = Callable[[Request], Awaitable[Response]]


def function_routes(app: App) -> list[Route]:
    """One Starlette route per path; functions sharing a path split it by method, so a wrong
    method gets a 405 whose Allow header lists every method of the path."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for route in app.routes:
        endpoint = _endpoint(route)
        by_path.setdefault(route.route, {}).update(dict.fromkeys(route.methods, endpoint))
    return [_route(path, endpoints) for path, endpoints in by_path.items()]


def _route(path: str, endpoints: dict[str, Endpoint]) -> Route:
    async def dispatch(request: Request) -> Response:
        method = request.method
        if method == "HEAD" and method not in endpoints:
            method = "GET"
        return await endpoints[method](request)

    return Route(f"/api/{path}", dispatch, methods=list(endpoints))


def _endpoint(route: HttpRoute) -> Endpoint:
    is_async = inspect.iscoroutinefunction(route.func)
    injected = _injections(route.func, is_async)

    async def endpoint(request: Request) -> Response:
        require_key(request, route.auth_level)
        body = await read_body(request)
        req = HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=request.headers,  # case-insensitive, as in azure.functions
            params=dict(request.query_params),
            route_params=dict(request.path_params),
            body=body,
        )
        state = state_of(request)
        values: dict[str, Any] = {}
        for name, kind in injected.items():
            if kind == "request":
                values[name] = req
            elif kind == "async_client":
                values[name] = state.client
            else:
                values[name] = state.blocking_client()
        if is_async:
            result = await route.func(**values)
        else:
            result = await run_in_threadpool(route.func, **values)
        return to_response(result)

    return endpoint


def _injections(func: Callable[..., Any], is_async: bool) -> dict[str, str]:
    """Which argument gets the request and which a client, read from annotations and names."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable annotations: fall back to names and positions
        hints = {}
    plan: dict[str, str] = {}
    for position, param in enumerate(inspect.signature(func).parameters.values()):
        hint = hints.get(param.name)
        if hint is AsyncClient:
            plan[param.name] = "async_client"
        elif hint is Client:
            plan[param.name] = "client"
        elif hint is HttpRequest or (position == 0 and hint is None and param.name != "client"):
            plan[param.name] = "request"
        elif param.name == "client":
            plan[param.name] = "async_client" if is_async else "client"
        elif param.default is inspect.Parameter.empty:
            raise TypeError(
                f"HTTP function {func.__name__!r}: cannot fill parameter {param.name!r}; "
                "take a df.HttpRequest and optionally a df.AsyncClient (or df.Client)"
            )
    return plan


def to_response(result: Any) -> Response:
    """What an HTTP function returned, as a Starlette response."""
    if isinstance(result, Response):
        return result
    if isinstance(result, HttpResponse):
        return Response(
            result.get_body(),
            status_code=result.status_code,
            headers=result.headers,
            media_type=result.mimetype,
        )
    if result is None:
        return Response(status_code=204)
    return JSONResponse(to_plain_json(result))
