"""The app of the host tests (tests/e2e/test_host.py): orchestrators for every management route,
HTTP functions of every shape and auth level, and a multi-step orchestrator for shutdown."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from starlette.responses import PlainTextResponse

import durafn as df

app = df.App()


# ---------------------------------------------------------------- orchestrators


@app.orchestrator
def echo(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Finishes at once with its input."""
    return ctx.get_input()


@app.orchestrator
def wait_for_approval(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Waits for an "approval" event and returns its data with the input."""
    ctx.set_custom_status("waiting")
    approval = yield ctx.wait_for_external_event("approval")
    return {"input": ctx.get_input(), "approval": approval}


@app.orchestrator
def fail_now(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Fails: its only activity raises."""
    yield ctx.call_activity(explode, ctx.get_input())


@app.activity
def explode(what: Any) -> None:
    raise RuntimeError(f"boom: {what}")


@app.orchestrator
def sleep_long(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Waits an hour on a durable timer: stays Running for the whole test."""
    yield ctx.create_timer(timedelta(hours=1))
    return "woke up"


@app.orchestrator
def slow_steps(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Several short activities around a timer; returns ``(n + 6) * 10``."""
    n = ctx.get_input()
    total = n
    for step in range(3):
        total = yield ctx.call_activity(add, [total, step])  # n + 0 + 1 + 2
    yield ctx.create_timer(timedelta(seconds=1 + n % 3 * 0.3))
    total = yield ctx.call_activity(add, [total, 3])
    return (yield ctx.call_activity(multiply_by_ten, total))


@app.activity
def add(pair: list[int]) -> int:
    time.sleep(0.02)
    return pair[0] + pair[1]


@app.activity
def multiply_by_ten(value: int) -> int:
    time.sleep(0.02)
    return value * 10


@app.orchestrator
async def sleep_briefly(ctx: df.OrchestrationContext) -> str:
    """An async orchestrator that waits ``input`` seconds on a timer."""
    await ctx.create_timer(timedelta(seconds=ctx.get_input()))
    return "rested"


# ---------------------------------------------------------------- HTTP functions


@app.route("sync/{name}", methods=["POST"])
def start_sync(req: df.HttpRequest, client: df.Client) -> dict[str, Any]:
    """A plain ``def`` with the blocking client; returns a dict (JSON)."""
    instance_id = client.start_new(req.route_params["name"], req.get_json())
    return {"id": instance_id, "tag": req.params.get("tag"), "type": req.headers["Content-Type"]}


@app.route("async/{name}", methods=["POST"])
async def start_async(req: df.HttpRequest, client: df.AsyncClient) -> df.HttpResponse:
    """An ``async def`` with the async client; returns the check-status response."""
    instance_id = await client.start_new(req.route_params["name"], req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.route("wait/{name}", methods=["POST"])
async def start_and_wait(req: df.HttpRequest, client: df.AsyncClient) -> df.HttpResponse:
    """Waits up to ``?timeout_ms=`` for the instance: its output, or the 202 response."""
    instance_id = await client.start_new(req.route_params["name"], req.get_json())
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=int(req.params.get("timeout_ms", "10000"))
    )


@app.route("items/{item_id}/parts/{part}", methods=["GET"])
def show_item(req: df.HttpRequest) -> df.HttpResponse:
    """Route and query parameters, answered as an HttpResponse with a header."""
    text = f"{req.route_params['item_id']}/{req.route_params['part']}?{req.params.get('q')}"
    return df.HttpResponse(text, status_code=201, headers={"X-Item": req.route_params["item_id"]})


@app.route("items/{item_id}/parts/{part}", methods=["DELETE"])
def delete_item(req: df.HttpRequest) -> None:
    """Returns nothing: 204."""


@app.route("plain", methods=["GET"])
async def plain(req: df.HttpRequest) -> PlainTextResponse:
    """Returns a Starlette response as it is."""
    return PlainTextResponse("plain text", headers={"X-Kind": "starlette"})


@app.route("open", methods=["GET"], auth_level="anonymous")
def open_door(req: df.HttpRequest) -> dict[str, str]:
    return {"level": "anonymous"}


@app.route("guarded", methods=["GET"], auth_level="function")
def guarded(req: df.HttpRequest) -> dict[str, str]:
    return {"level": "function"}


@app.route("admin-only", methods=["GET"], auth_level="admin")
def admin_only(req: df.HttpRequest) -> dict[str, str]:
    return {"level": "admin"}
