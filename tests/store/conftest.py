"""The store conformance suite runs every test once per backend in :data:`BACKENDS`.

A backend is a function ``(tmp_path) -> base URL`` for :func:`durafn.store.open_store`, and
optionally a function in :data:`TEARDOWNS` that removes what the URL named once the test's
stores are closed. When a backend's server is unreachable its function calls
:func:`unavailable`, which skips the tests with a visible reason, or fails them when
``DURAFN_REQUIRE_<KIND>=1`` (CI sets it, so a missing server is never silently green).

PostgreSQL: the server named by ``$DURAFN_TEST_POSTGRES`` (default
``postgresql://postgres@127.0.0.1:5432/test``); each test gets a fresh PostgreSQL schema,
dropped afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

from durafn.store import Store, open_store, postgres_target

POSTGRES_ENV_VAR = "DURAFN_TEST_POSTGRES"
DEFAULT_TEST_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def memory_url(tmp_path: Path) -> str:
    # One process-wide registry holds every memory hub: a unique name isolates each test.
    return f"memory://conformance-{uuid.uuid4().hex}"


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def postgres_base_url() -> str:
    """The PostgreSQL database the tests use (without a schema)."""
    return os.environ.get(POSTGRES_ENV_VAR) or DEFAULT_TEST_POSTGRES


@functools.cache
def postgres_problem() -> str | None:
    """Why the test server cannot be used (asked once per session), or ``None``."""
    try:
        import psycopg

        conninfo = postgres_target(postgres_base_url()).conninfo
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"no PostgreSQL at {postgres_base_url()} ({' '.join(str(exc).split())})"
    return None


def require_postgres() -> str:
    """The test database's URL; skips (or fails) the test when it cannot be reached."""
    problem = postgres_problem()
    if problem is not None:
        unavailable("postgres", problem)
    return postgres_base_url()


def postgres_url(tmp_path: Path) -> str:
    base = require_postgres()
    schema = f"durafn_test_{uuid.uuid4().hex}"
    return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def drop_postgres_schema(url: str) -> None:
    import psycopg
    from psycopg import sql

    target = postgres_target(url)
    with psycopg.connect(target.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(target.schema))
        )


BACKENDS: dict[str, Callable[[Path], str]] = {
    "memory": memory_url,
    "sqlite": sqlite_url,
    "postgres": postgres_url,
}

TEARDOWNS: dict[str, Callable[[str], None]] = {
    "postgres": drop_postgres_schema,
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
        if task_hub is None:
            return self.url
        return f"{self.url}{'&' if urlsplit(self.url).query else '?'}task_hub={task_hub}"

    def open(self, task_hub: str | None = None) -> Store:
        """Another store object on the same database (closed after the test)."""
        store = open_store(self.url_for(task_hub))
        self.opened.append(store)
        return store


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind: str = request.param
    backend = Backend(kind, BACKENDS[kind](tmp_path))
    try:
        yield backend
    finally:
        for store in backend.opened:
            asyncio.run(store.close())
        teardown = TEARDOWNS.get(kind)
        if teardown is not None:
            teardown(backend.url)


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
