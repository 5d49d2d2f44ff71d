"""Property-based fuzzing of the management API from its own OpenAPI document: never a 5xx."""

from __future__ import annotations

import uuid

import hypothesis
import schemathesis
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.applications import Starlette

import durafn as df
from durafn.host.server import create_asgi_app
from durafn.store import open_store

app = df.App()


@app.orchestrator
def greet(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    return f"Hello {ctx.get_input()}!"


@app.entity
def counter(ctx: df.EntityContext) -> None:
    ctx.set_state(ctx.get_state(lambda: 0) + 1)


def build_host() -> Starlette:
    store = open_store(f"memory://fuzz-{uuid.uuid4().hex}")
    return create_asgi_app(app, df.AsyncClient(store, app=app), keys=None)


schema = schemathesis.openapi.from_asgi("/runtime/webhooks/durabletask/openapi.json", build_host())


@schema.parametrize()
@hypothesis.settings(
    max_examples=40, deadline=None, suppress_health_check=list(hypothesis.HealthCheck)
)
def test_management_api_never_answers_5xx(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    case.validate_response(
        response,
        checks=(status_code_conformance, response_schema_conformance, negative_data_rejection),
    )
