"""The OpenAPI 3 document of the management API, served at ``.../durabletask/openapi.json``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from durafn.http.urls import MANAGEMENT_PREFIX

_ERROR = {"$ref": "#/components/schemas/Error"}
_STATUS = {"$ref": "#/components/schemas/InstanceStatus"}
_PAYLOAD = {"$ref": "#/components/schemas/ManagementUrls"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed input (bad JSON, bad id, unknown orchestrator, bad query parameter).",
        401: "A key is required (off loopback): pass ?code= or x-functions-key.",
        404: "No such instance (or entity).",
        409: "Conflict: the instance id is in use by an unfinished instance.",
        410: "The instance has already finished.",
        413: "The request body is over the host's limit.",
    }
    return {str(code): _json(_ERROR, text[code]) for code in codes}


def _param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


_INSTANCE_ID = _param(
    "instanceId", "path", {"type": "string", "minLength": 1, "maxLength": 256}, "The instance id."
)
_REASON = _param("reason", "query", {"type": "string"}, "Why; recorded with the instance.")
_HUB = [
    _param(
        "taskHub",
        "query",
        {"type": "string"},
        "The task hub; when given it must be the host's (matched without regard to case).",
    ),
    _param("connection", "query", {"type": "string"}, "Accepted and ignored."),
]
_FLAG = {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])?$"}
_TIME = {"type": "string", "format": "date-time"}
_STATUSES = "Pending,Running,Completed,ContinuedAsNew,Failed,Canceled,Terminated,Suspended"
_BODY = {
    "required": False,
    "content": {"application/json": {"schema": {}}},
    "description": "Any JSON value (the input or event data); may be empty.",
}


def _start() -> dict[str, Any]:
    return {
        "summary": "Start an instance of an orchestrator",
        "requestBody": _BODY,
        "responses": {
            "202": _json(_PAYLOAD, "Started; the body holds the management URLs."),
            **_errors(400, 401, 409, 413),
        },
    }


def _control(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [_INSTANCE_ID, _REASON],
        "responses": {"202": {"description": "Accepted."}, **_errors(400, 401, 404, 410)},
    }


def build_openapi() -> dict[str, Any]:
    """The document; it describes exactly the routes of :mod:`durafn.host.management`."""
    base = MANAGEMENT_PREFIX
    instance = f"{base}/instances/{{instanceId}}"
    filters = [
        _param(
            "runtimeStatus", "query", {"type": "string"}, f"Comma-separated statuses: {_STATUSES}."
        ),
        _param("createdTimeFrom", "query", _TIME, "Created at or after (ISO 8601)."),
        _param("createdTimeTo", "query", _TIME, "Created at or before (ISO 8601)."),
    ]
    paths: dict[str, dict[str, Any]] = {
        f"{base}/orchestrators/{{functionName}}": {
            "parameters": [
                _param(
                    "functionName",
                    "path",
                    {"type": "string", "minLength": 1},
                    "The orchestrator's name.",
                )
            ],
            "post": _start(),
        },
        f"{base}/orchestrators/{{functionName}}/{{instanceId}}": {
            "parameters": [
                _param(
                    "functionName",
                    "path",
                    {"type": "string", "minLength": 1},
                    "The orchestrator's name.",
                ),
                _INSTANCE_ID,
            ],
            "post": _start(),
        },
        f"{base}/instances": {
            "get": {
                "summary": "List instances, newest first",
                "parameters": [
                    *filters,
                    _param(
                        "instanceIdPrefix",
                        "query",
                        {"type": "string"},
                        "Only ids starting with this.",
                    ),
                    _param(
                        "top",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                        "Page size (default 100).",
                    ),
                    _param("showInput", "query", _FLAG, "Include inputs (default true)."),
                    _param(
                        "x-ms-continuation-token",
                        "header",
                        {"type": "string"},
                        "Token of the next page, from the previous response.",
                    ),
                ],
                "responses": {
                    "200": {
                        **_json({"type": "array", "items": _STATUS}, "One page."),
                        "headers": {
                            "x-ms-continuation-token": {
                                "schema": {"type": "string"},
                                "description": "Token of the next page; empty on the last.",
                            }
                        },
                    },
                    **_errors(400, 401),
                },
            },
            "delete": {
                "summary": "Purge finished instances matching the filters",
                "parameters": [filters[0], {**filters[1], "required": True}, filters[2]],
                "responses": {
                    "200": _json(_PURGED, "Purged."),
                    "404": _json(_ERROR, "Nothing matched."),
                    **_errors(400, 401),
                },
            },
        },
        instance: {
            "parameters": [_INSTANCE_ID],
            "get": {
                "summary": "Get an instance's status",
                "parameters": [
                    _param("showHistory", "query", _FLAG, "Include the history."),
                    _param("showHistoryOutput", "query", _FLAG, "Include payloads in the history."),
                    _param("showInput", "query", _FLAG, "Include the input (default true)."),
                    _param(
                        "returnInternalServerErrorOnFailure",
                        "query",
                        _FLAG,
                        "Answer 500 for a failed instance.",
                    ),
                ],
                "responses": {
                    "200": _json(_STATUS, "Finished (Completed, Failed, Terminated)."),
                    "202": _json(_STATUS, "Pending, Running, Suspended or ContinuedAsNew."),
                    "500": _json(_STATUS, "Failed, with returnInternalServerErrorOnFailure."),
                    **_errors(400, 401, 404),
                },
            },
            "delete": {
                "summary": "Purge a finished instance and its history",
                "responses": {"200": _json(_PURGED, "Purged."), **_errors(400, 401, 404, 409)},
            },
        },
        f"{instance}/raiseEvent/{{eventName}}": {
            "parameters": [
                _INSTANCE_ID,
                _param(
                    "eventName", "path", {"type": "string", "minLength": 1}, "The event's name."
                ),
            ],
            "post": {
                "summary": "Send an external event to an instance",
                "requestBody": _BODY,
                "responses": {
                    "202": {"description": "Accepted."},
                    **_errors(400, 401, 404, 410, 413),
                },
            },
        },
        f"{instance}/terminate": {"post": _control("Terminate an instance")},
        f"{instance}/suspend": {"post": _control("Suspend an instance")},
        f"{instance}/resume": {"post": _control("Resume a suspended instance")},
        f"{instance}/restart": {
            "post": {
                "summary": "Start the instance's orchestrator again with the same input",
                "parameters": [
                    _INSTANCE_ID,
                    _param(
                        "restartWithNewInstanceId",
                        "query",
                        _FLAG,
                        "New id (default true) or replace the finished instance.",
                    ),
                ],
                "responses": {
                    "202": _json(_PAYLOAD, "Started."),
                    **_errors(400, 401, 404, 409),
                },
            },
        },
    }
    paths.update(_entity_paths(base))
    for item in paths.values():  # every route takes the task hub parameters of the URLs
        item["parameters"] = [*item.get("parameters", []), *_HUB]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "durafn management API",
            "version": "1",
            "description": "The Durable Functions HTTP management API, as served by durafn.",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }


_ENTITY_NAME = _param(
    "entityName",
    "path",
    {"type": "string", "minLength": 1},
    "The entity's name (case-insensitive).",
)
_ENTITY_KEY = _param("entityKey", "path", {"type": "string", "minLength": 1}, "The entity's key.")


def _entity_list(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [
            _param("fetchState", "query", _FLAG, "Include each entity's state (default false)."),
            _param(
                "includeDeleted",
                "query",
                _FLAG,
                "Include entities without a state (default false).",
            ),
            _param(
                "top",
                "query",
                {"type": "integer", "minimum": 1, "maximum": 1000},
                "Page size (default 100).",
            ),
            _param(
                "x-ms-continuation-token",
                "header",
                {"type": "string"},
                "Token of the next page, from the previous response.",
            ),
        ],
        "responses": {
            "200": {
                **_json({"type": "array", "items": _ENTITY}, "One page."),
                "headers": {
                    "x-ms-continuation-token": {
                        "schema": {"type": "string"},
                        "description": "Token of the next page; empty on the last.",
                    }
                },
            },
            **_errors(400, 401),
        },
    }


def _entity_paths(base: str) -> dict[str, dict[str, Any]]:
    return {
        f"{base}/entities": {"get": _entity_list("List entities, newest first")},
        f"{base}/entities/{{entityName}}": {
            "parameters": [_ENTITY_NAME],
            "get": _entity_list("List the entities of one name, newest first"),
        },
        f"{base}/entities/{{entityName}}/{{entityKey}}": {
            "parameters": [_ENTITY_NAME, _ENTITY_KEY],
            "get": {
                "summary": "Get an entity's state",
                "responses": {
                    "200": _json({}, "The entity's state (any JSON value)."),
                    **_errors(400, 401, 404),
                },
            },
            "post": {
                "summary": "Signal an entity (one-way operation); creates it if needed",
                "parameters": [
                    _param(
                        "op",
                        "query",
                        {"type": "string", "minLength": 1},
                        "The operation's name.",
                        required=True,
                    )
                ],
                "requestBody": {**_BODY, "description": "The operation's input (any JSON value)."},
                "responses": {
                    "202": {"description": "Accepted."},
                    **_errors(400, 401, 413),
                },
            },
        },
    }


_PURGED = {
    "type": "object",
    "required": ["instancesDeleted"],
    "properties": {"instancesDeleted": {"type": "integer", "minimum": 1}},
}

_URL_FIELDS = (
    "id",
    "statusQueryGetUri",
    "sendEventPostUri",
    "terminatePostUri",
    "purgeHistoryDeleteUri",
    "restartPostUri",
    "suspendPostUri",
    "resumePostUri",
)

_ENTITY = {"$ref": "#/components/schemas/Entity"}

_SCHEMAS: dict[str, Any] = {
    "Entity": {
        "type": "object",
        "required": ["entityId", "lastOperationTime"],
        "properties": {
            "entityId": {
                "type": "object",
                "required": ["name", "key"],
                "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
            },
            "lastOperationTime": _TIME,
            "state": {"nullable": True},
            "lockedBy": {"type": "string"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    },
    "InstanceStatus": {
        "type": "object",
        "required": ["name", "instanceId", "runtimeStatus", "createdTime", "lastUpdatedTime"],
        "properties": {
            "name": {"type": "string"},
            "instanceId": {"type": "string"},
            "runtimeStatus": {"type": "string", "enum": _STATUSES.split(",")},
            "input": {"nullable": True},
            "customStatus": {"nullable": True},
            "output": {"nullable": True},
            "createdTime": _TIME,
            "lastUpdatedTime": _TIME,
            "failureDetails": {"type": "object"},
            "historyEvents": {"type": "array", "items": {"type": "object"}},
        },
    },
    "ManagementUrls": {
        "type": "object",
        "required": list(_URL_FIELDS),
        "properties": {name: {"type": "string"} for name in _URL_FIELDS},
    },
}


async def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(build_openapi())


def openapi_routes() -> list[Route]:
    return [Route(f"{MANAGEMENT_PREFIX}/openapi.json", openapi_document, methods=["GET"])]
