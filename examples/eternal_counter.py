"""Eternal orchestration: a counter that restarts itself with `ctx.continue_as_new`.

Every execution handles one "add" event, then restarts the instance with the new total as its
input. The instance id stays the same while the history starts empty again, so a counter that
runs for years never accumulates a long history. Events that arrive while an execution is
finishing are carried over to the next one (`preserve_unprocessed_events=True`). The counter
stops once the total reaches its limit.

Run it:  python examples/eternal_counter.py
"""

import durafn as df

app = df.App()


@app.orchestrator
def counter(ctx: df.OrchestrationContext):
    state = ctx.get_input()

    amount = yield ctx.wait_for_external_event("add")
    state = {**state, "total": state["total"] + amount, "generation": state["generation"] + 1}
    ctx.set_custom_status(state)

    if state["total"] >= state["limit"]:
        return state

    # Ends this execution here (the code below it never runs) and starts the next one.
    ctx.continue_as_new(state, preserve_unprocessed_events=True)


if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///eternal_counter.db") as rt:
        instance_id = rt.client.start_new(
            counter, {"total": 0, "generation": 0, "limit": 15}, instance_id="counter"
        )
        for amount in (1, 2, 3, 4, 5):
            rt.client.raise_event(instance_id, "add", amount)

        status = rt.client.wait_for_completion(instance_id, timeout=30)
        state = status.output
        print(
            f"total {state['total']} reached the limit of {state['limit']} "
            f"after {state['generation']} executions"
        )

        # The stored history is the last execution's only: one start, one event.
        kinds = [e.kind for e in rt.client.get_status(instance_id, show_history=True).history]
        print(
            f"history: {kinds.count('ExecutionStarted')} ExecutionStarted, "
            f"{kinds.count('EventRaised')} EventRaised"
        )
