"""Small helpers shared by the end-to-end tests: polling for a condition, a free port."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest


def poll(
    check: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "condition",
    interval: float = 0.02,
) -> Any:
    """Call ``check`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
