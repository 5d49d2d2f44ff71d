"""Human interaction: wait for an approval, or escalate when nobody answers in time.

The orchestrator asks a manager for approval, then races an external event named "approval"
against a durable timer with `ctx.task_any`. Whichever finishes first wins; the losing timer
is cancelled. Waiting costs nothing: the instance is unloaded until the event or the timer
arrives, even if that takes days and the process restarts meanwhile.

Run it:  python examples/human_interaction.py
"""

from datetime import timedelta

import durafn as df

app = df.App()

DEFAULT_TIMEOUT = timedelta(days=3)


@app.orchestrator
def approval_workflow(ctx: df.OrchestrationContext):
    request = ctx.get_input()
    timeout = timedelta(seconds=request.get("timeout_seconds", DEFAULT_TIMEOUT.total_seconds()))

    yield ctx.call_activity(request_approval, request)

    # The deadline comes from the context's clock, never from datetime.now(): it must be the
    # same every time the orchestrator replays.
    deadline = ctx.current_utc_datetime + timeout
    timer = ctx.create_timer(deadline)
    answer = ctx.wait_for_external_event("approval")

    winner = yield ctx.task_any([answer, timer])
    if winner is answer:
        timer.cancel()  # the losing timer must not keep the instance alive
        decision = answer.result
        yield ctx.call_activity("record_decision", {"request": request["id"], **decision})
        outcome = "approved" if decision["approved"] else "rejected"
        return {"id": request["id"], "status": outcome, "by": decision["by"]}

    yield ctx.call_activity("escalate", request)
    return {"id": request["id"], "status": "escalated", "waited_seconds": timeout.total_seconds()}


@app.activity
def request_approval(request: dict) -> None:
    """Would send an e-mail or a chat message with approve/reject links."""


@app.activity
def record_decision(decision: dict) -> None:
    """Would write the decision to the expense system."""


@app.activity
def escalate(request: dict) -> str:
    """Would page the manager's manager."""
    return f"request {request['id']} escalated"


if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///human_interaction.db") as rt:
        # Short timeouts so that the demo ends in a couple of seconds; the default is 3 days.
        first = rt.client.start_new(
            approval_workflow,
            {"id": "expense-1", "amount": 120, "timeout_seconds": 2},
            instance_id="expense-1",
        )
        second = rt.client.start_new(
            approval_workflow,
            {"id": "expense-2", "amount": 950, "timeout_seconds": 2},
            instance_id="expense-2",
        )
        # Somebody clicks "approve" on the first request; nobody answers the second one.
        rt.client.raise_event(first, "approval", {"approved": True, "by": "alice"})

        for instance_id in (first, second):
            result = rt.client.wait_for_completion(instance_id, timeout=30).output
            if result["status"] == "escalated":
                waited = result["waited_seconds"]
                print(f"{result['id']}: escalated after {waited:g} s without an answer")
            else:
                print(f"{result['id']}: {result['status']} by {result['by']}")
