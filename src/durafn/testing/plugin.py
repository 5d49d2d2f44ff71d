"""The pytest plugin of durafn: a ``durafn_runtime`` fixture.

Define a ``durafn_app`` fixture returning your ``df.App``; ``durafn_runtime`` then gives a
ready :class:`~durafn.testing.VirtualRuntime` on a fresh in-memory store::

    @pytest.fixture
    def durafn_app():
        return app

    def test_hello(durafn_runtime):
        instance_id = durafn_runtime.client.start_new("hello_cities")
        assert durafn_runtime.run_to_completion(instance_id).output == [...]
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from durafn.app import App
from durafn.testing.runtime import VirtualRuntime


@pytest.fixture
def durafn_runtime(request: pytest.FixtureRequest) -> Iterator[VirtualRuntime]:
    """A :class:`VirtualRuntime` for the app your ``durafn_app`` fixture returns."""
    app = request.getfixturevalue("durafn_app")
    if not isinstance(app, App):
        raise TypeError(f"the durafn_app fixture must return a durafn.App, got {app!r}")
    with VirtualRuntime(app) as runtime:
        yield runtime
