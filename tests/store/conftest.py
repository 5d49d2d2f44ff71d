"""The store conformance suite runs every test once per backend in :data:`BACKENDS`.

A backend is a function ``(tmp_path) -> base URL`` for :func:`durafn.store.open_store`. To add
one (PostgreSQL), add an entry; when its server is unreachable the function calls
:func:`unavailable`, which skips the tests with a visible reason, or fails them when
``DURAFN_REQUIRE_<KIND>=1`` (CI sets it, so a missing server is never silently green).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from durafn.store import Store, open_store


def memory_url(tmp_path: Path) -> str:
    # One process-wide registry holds every memory hub: a unique name isolates each test.
    return f"memory://conformance-{uuid.uuid4().hex}"


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


BACKENDS: dict[str, Callable[[Path], str]] = {
    "memory": memory_url,
    "sqlite": sqlite_url,
}


def unavailable(kind: str, reason: str) -> NoReturn:
    """Skip the tests of backend ``kind`` with ``reason``, or fail if it is required."""
    if os.environ.get(f"DURAFN_REQUIRE_{kind.upper()}") == "1":
        pytest.fail(f"{kind} store required (DURAFN_REQUIRE_{kind.upper()}=1): {reason}")
    pytest.skip(f"{kind} store unavailable: {reason}")


@dataclass
class Backend:
    """One backend under test: its kind and a URL; opens more stores on the same database."""

    kind: str
    url: str
    opened: list[Store] = field(default_factory=list)

    def url_for(self, task_hub: str | None = None) -> str:
        return self.url if task_hub is None else f"{self.url}?task_hub={task_hub}"

    def open(self, task_hub: str | None = None) -> Store:
        """Another store object on the same database (closed after the test)."""
        store = open_store(self.url_for(task_hub))
        self.opened.append(store)
        return store


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind: str = request.param
    backend = Backend(kind, BACKENDS[kind](tmp_path))
    yield backend
    for store in backend.opened:
        asyncio.run(store.close())


@pytest.fixture
def store(backend: Backend) -> Store:
    """A fresh, empty store (task hub ``default``) of each backend."""
    return backend.open()


@pytest.fixture
def known_bug(request: pytest.FixtureRequest, backend: Backend) -> Callable[[str, str], None]:
    """``known_bug(kind, reason)``: this test is expected to fail on backend ``kind`` (strict)."""

    def mark(kind: str, reason: str) -> None:
        if backend.kind == kind:
            request.applymarker(pytest.mark.xfail(reason=reason, strict=True))

    return mark
