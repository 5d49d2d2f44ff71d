"""``HttpRequest`` and ``HttpResponse``: what an HTTP function receives and may return.

The names follow ``azure.functions`` so Durable Functions code reads the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The largest request body the host reads (16 MiB): larger ones are refused with 413.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request to one of the app's HTTP functions."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    route_params: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def get_body(self) -> bytes:
        """The raw request body."""
        return self.body

    def get_json(self) -> Any:
        """The body parsed as JSON; ``None`` for an empty body.

        Raises ``ValueError`` for a body that is not JSON (the host answers 400).
        """
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the request body is not valid JSON: {exc}") from exc


class HttpResponse:
    """An HTTP response an HTTP function may return.

    ``body`` is text or bytes; ``mimetype`` defaults to ``text/plain`` (``application/json``
    when built with :meth:`json`).
    """

    def __init__(
        self,
        body: str | bytes | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        mimetype: str | None = None,
        charset: str = "utf-8",
    ) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = dict(headers or {})
        self.mimetype = mimetype or "text/plain"
        self.charset = charset
        if body is None:
            self._body = b""
        elif isinstance(body, str):
            self._body = body.encode(charset)
        elif isinstance(body, bytes | bytearray):
            self._body = bytes(body)
        else:
            raise TypeError("HttpResponse body must be str or bytes; use HttpResponse.json()")

    @classmethod
    def json(
        cls, value: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None
    ) -> HttpResponse:
        """A JSON response of ``value``."""
        return cls(
            json.dumps(value), status_code=status_code, headers=headers, mimetype="application/json"
        )

    def get_body(self) -> bytes:
        return self._body

    def __repr__(self) -> str:
        return f"HttpResponse(status_code={self.status_code}, mimetype={self.mimetype!r})"
