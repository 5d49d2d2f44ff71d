"""A changed orchestrator fails its in-flight instances with a message naming both steps."""

from __future__ import annotations

import time
from pathlib import Path

import durafn as df


def build_app(first_step: str) -> df.App:
    app = df.App()

    @app.orchestrator(name="order")
    def order(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
        yield ctx.call_activity(first_step, ctx.get_input())
        yield ctx.call_activity("confirm", ctx.get_input())
        return "done"

    for name in ("charge", "ship", "confirm"):
        app.activity(name=name)(lambda order_id: order_id)
    return app


def test_changed_next_step_fails_the_instance_naming_both_steps(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/hub.db"
    # Version 1 schedules 'charge'; with no activity worker running, the instance waits there.
    v1_options = df.WorkerOptions(activities=False)
    with df.Runtime(build_app("charge"), store=store, options=v1_options) as rt:
        instance_id = rt.client.start_new("order", "o-1")
        deadline = time.monotonic() + 20
        while True:
            status = rt.client.get_status(instance_id, show_history=True)
            assert status is not None and status.history is not None
            if any(e.kind == "TaskScheduled" for e in status.history):
                break
            assert time.monotonic() < deadline, "version 1 never scheduled its first step"
            time.sleep(0.02)

    # Version 2 asks for 'ship' where the history recorded 'charge'.
    with df.Runtime(build_app("ship"), store=store) as rt:
        final = rt.client.wait_for_completion(instance_id, timeout=20)

    assert final.runtime_status is df.RuntimeStatus.FAILED
    assert final.failure_details is not None
    assert final.failure_details.error_type == "NonDeterminismError"
    message = final.failure_details.message
    assert "expected TaskScheduled 'charge' at #0" in message
    assert "code asked for CallActivity 'ship'" in message


def test_unchanged_code_resumes_in_a_new_process(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/hub.db"
    with df.Runtime(
        build_app("charge"), store=store, options=df.WorkerOptions(activities=False)
    ) as rt:
        instance_id = rt.client.start_new("order", "o-2")
        time.sleep(0.3)
    with df.Runtime(build_app("charge"), store=store) as rt:
        final = rt.client.wait_for_completion(instance_id, timeout=20)
    assert final.runtime_status is df.RuntimeStatus.COMPLETED
    assert final.output == "done"
