from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent

# Tier-1 tests are pure and fast; a test that needs more than this is a bug (a stuck replay).
UNIT_TEST_TIMEOUT_SECONDS = 5


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TEST_TIMEOUT_SECONDS))


@pytest.fixture(params=["generator", "async"])
def form(request: pytest.FixtureRequest) -> str:
    """Every orchestration scenario runs as a generator and as an ``async def`` orchestrator."""
    return str(request.param)
