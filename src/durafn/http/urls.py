"""The management URLs of an instance, as Durable Functions builds them."""

from __future__ import annotations

from urllib.parse import quote, urlencode, urlsplit

MANAGEMENT_PREFIX = "/runtime/webhooks/durabletask"


def base_url_of(request_url: str) -> str:
    """``scheme://host[:port]`` of a request URL."""
    parts = urlsplit(request_url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {request_url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def management_urls(
    base_url: str, instance_id: str, task_hub: str, key: str | None = None
) -> dict[str, str]:
    """The ``id`` and ``...Uri`` fields of a check-status payload for ``instance_id``."""
    instance = f"{base_url.rstrip('/')}{MANAGEMENT_PREFIX}/instances/{quote(instance_id, safe='')}"
    query = {"taskHub": task_hub, "connection": "Storage"}
    if key:
        query["code"] = key
    qs = urlencode(query)
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{instance}?{qs}",
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{qs}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{qs}",
        "purgeHistoryDeleteUri": f"{instance}?{qs}",
        "restartPostUri": f"{instance}/restart?{qs}",
        "suspendPostUri": f"{instance}/suspend?reason={{text}}&{qs}",
        "resumePostUri": f"{instance}/resume?reason={{text}}&{qs}",
    }
