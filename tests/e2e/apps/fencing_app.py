"""The app of the fencing test: an episode that lingers, so a worker can be paused inside it.

When the orchestrator runs past the first activity for real (not replaying), it drops a marker
file named after its process into $FENCING_DIR and sleeps $FENCING_SLEEP seconds: the test
pauses the worker there, lets its lease expire and watches another worker take over.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import durafn as df

app = df.App()


@app.activity
def echo(value: Any) -> Any:
    return value


@app.orchestrator
def lingering(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity("echo", "first")
    if not ctx.is_replaying:
        marker = Path(os.environ["FENCING_DIR"]) / f"episode-{os.getpid()}"
        marker.write_text(ctx.instance_id)
        time.sleep(float(os.environ.get("FENCING_SLEEP", "3")))
    second = yield ctx.call_activity("echo", "second")
    return [first, second]
