"""An async orchestrator awaiting real asyncio machinery fails cleanly, leaving nothing behind."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import timedelta

import pytest

import durafn as df
from durafn.testing import VirtualRuntime

app = df.App()


@app.orchestrator
async def gathers(ctx: df.OrchestrationContext) -> None:
    await asyncio.gather(ctx.create_timer(timedelta(seconds=1)))


@app.orchestrator
async def sleeps(ctx: df.OrchestrationContext) -> None:
    await asyncio.sleep(1)


@pytest.mark.parametrize("name", ["gathers", "sleeps"])
def test_awaiting_asyncio_fails_the_instance_with_a_hint(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="asyncio"), VirtualRuntime(app) as rt:
        status = rt.run_to_completion(rt.client.start_new(name))
        gc.collect()
    assert status.runtime_status is df.RuntimeStatus.FAILED
    assert status.failure_details is not None
    assert "await only durafn tasks" in status.failure_details.message
    assert not [r for r in caplog.records if r.name == "asyncio"]
