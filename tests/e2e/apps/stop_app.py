"""The app of the stop test: an activity that runs for ten minutes unless $STOP_APP_FAST
names a file that exists, and that says when it starts (in $STOP_APP_STARTED)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import durafn as df

app = df.App()


@app.activity
def long_task(value: int) -> int:
    Path(os.environ["STOP_APP_STARTED"]).touch()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not Path(os.environ["STOP_APP_FAST"]).exists():
        time.sleep(0.05)
    return value * 2


@app.orchestrator
def long_flow(ctx: df.OrchestrationContext):
    return (yield ctx.call_activity(long_task, ctx.get_input()))
