"""The dashboard's entity routes: list entities with their state, signal an operation."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from durafn.client.entities import EntityMetadata
from durafn.core.entities import EntityId
from durafn.dashboard.documents import precise
from durafn.host.errors import BadRequest
from durafn.host.requests import client_of, read_json_body
from durafn.http.status_json import to_plain_json

DEFAULT_PAGE_SIZE = 50


async def list_entities(request: Request) -> Response:
    """A page of entities (of ``name``, if given), newest first, with their states."""
    params = request.query_params
    top = params.get("top") or str(DEFAULT_PAGE_SIZE)
    if not top.isdigit() or not 1 <= int(top) <= 1000:
        raise BadRequest(f"top must be a whole number from 1 to 1000, got {top!r}")
    page = await client_of(request).get_entities(
        name=params.get("name") or None,
        page_size=int(top),
        continuation_token=params.get("token") or None,
        include_deleted=params.get("deleted") == "true",
    )
    return JSONResponse(
        {
            "entities": [entity_json(e) for e in page.entities],
            "continuationToken": page.continuation_token,
        }
    )


def entity_json(entity: EntityMetadata) -> dict[str, Any]:
    return {
        "instanceId": entity.entity_id.instance_id,
        "name": entity.entity_id.name,
        "key": entity.entity_id.key,
        "exists": entity.entity_exists,
        "state": to_plain_json(entity.state),
        "lastModifiedTime": precise(entity.last_modified_time),
        "lockedBy": entity.locked_by,
        "backlogQueueSize": entity.backlog_queue_size,
    }


async def signal_entity(request: Request) -> Response:
    """Send an operation to the entity ``{name, key}`` (created if it does not exist)."""
    body = await read_json_body(request)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object: {name, key, operation, input}")
    name, key, operation = body.get("name"), body.get("key"), body.get("operation")
    if not isinstance(name, str) or not isinstance(key, str):
        raise BadRequest("name and key (strings) address the entity")
    if not isinstance(operation, str) or not operation:
        raise BadRequest("operation (the operation's name) is required")
    entity = EntityId(name, key)
    await client_of(request).signal_entity(entity, operation, body.get("input"))
    return JSONResponse({"accepted": True, "instanceId": entity.instance_id}, status_code=202)
