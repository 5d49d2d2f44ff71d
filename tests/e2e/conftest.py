"""Fixtures of the end-to-end tests: one SQLite file per test, and polling without sleeping long."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A fresh SQLite task hub in this test's own directory."""
    return f"sqlite:///{tmp_path}/hub.db"


def poll(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Call ``check`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """``wait_until(check, timeout=10, what=...)``: poll ``check`` until it is truthy."""
    return poll
