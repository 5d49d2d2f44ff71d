"""Fixtures of the end-to-end tests: one SQLite file per test, and polling without sleeping long."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from harness import poll

POSTGRES_SERVER = os.environ.get(
    "DURAFN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A fresh SQLite task hub in this test's own directory."""
    return f"sqlite:///{tmp_path}/hub.db"


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``wait_until(check, timeout=10, what=...)``: poll ``check`` until it is truthy."""
    return poll


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A task hub in a fresh PostgreSQL schema, dropped afterwards.

    Skips with the reason when no server answers, unless ``DURAFN_REQUIRE_POSTGRES=1`` (CI).
    """
    try:
        psycopg.connect(POSTGRES_SERVER, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("DURAFN_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but unreachable at {POSTGRES_SERVER}: {exc}")
        pytest.skip(f"no PostgreSQL server at {POSTGRES_SERVER}: {exc}")
    schema = f"durafn_e2e_{uuid.uuid4().hex[:12]}"
    try:
        yield f"{POSTGRES_SERVER}?schema={schema}"
    finally:
        # A fresh connection: a test may have terminated every connection it found.
        with psycopg.connect(POSTGRES_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
