"""Device monitor: an entity per device notices when its heartbeats stop, with scheduled signals.

Every heartbeat records the beat and schedules a `check` signal to the entity itself, one
timeout later. When the check arrives and no newer beat came meanwhile, the device is offline:
the entity starts an `alert` orchestration. Nothing polls, and nothing sleeps in memory: a
scheduled signal is a message that becomes visible at its time.

Run it:  python examples/device_monitor.py
"""

import time
import uuid
from datetime import timedelta

import durafn as df

app = df.App()

TIMEOUT = timedelta(seconds=1.5)


@app.entity
def device(ctx: df.EntityContext):
    state = ctx.get_state(lambda: {"beats": 0, "status": "unknown", "last": None})
    if ctx.operation_name == "heartbeat":
        beat = ctx.get_input()  # a unique id of this heartbeat
        state.update(beats=state["beats"] + 1, status="online", last=beat)
        ctx.set_state(state)
        ctx.signal_entity(ctx.entity_id, "check", beat, scheduled_time=TIMEOUT)
    elif ctx.operation_name == "check":
        if state["status"] == "online" and state["last"] == ctx.get_input():
            state["status"] = "offline"
            ctx.set_state(state)
            ctx.start_new_orchestration(
                "alert", ctx.entity_key, instance_id=f"alert-{ctx.entity_key}-{state['last']}"
            )
    elif ctx.operation_name == "reset":
        ctx.delete_state()


@app.orchestrator
def alert(ctx: df.OrchestrationContext):
    return (yield ctx.call_activity(notify_operator, ctx.get_input()))


@app.activity
def notify_operator(device_id: str) -> str:
    """Would page someone; returns the message it sent."""
    return f"device {device_id} sent no heartbeat for {TIMEOUT.total_seconds()} s"


def state_of(client: df.Client, device_id: str) -> dict:
    return client.read_entity_state(df.EntityId("device", device_id)).entity_state


if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///device_monitor.db") as rt:
        client = rt.client
        run = uuid.uuid4().hex[:8]  # beats of earlier runs never match this run's checks
        for device_id in ("dev-1", "dev-2"):
            client.signal_entity(df.EntityId("device", device_id), "reset")
        # dev-1 beats three times and goes silent; dev-2 beats every 0.2 s for 3 s.
        for n in range(3):
            client.signal_entity(df.EntityId("device", "dev-1"), "heartbeat", f"{run}-{n}")
        for n in range(15):
            client.signal_entity(df.EntityId("device", "dev-2"), "heartbeat", f"{run}-{n}")
            time.sleep(0.2)
        alerted = client.wait_for_completion(f"alert-dev-1-{run}-2", timeout=30)
        dev1 = state_of(client, "dev-1")
        print(f"dev-1: {dev1['status']} after {dev1['beats']} heartbeats; alert: {alerted.output}")
        while state_of(client, "dev-2")["beats"] < 15:
            time.sleep(0.05)
        dev2 = state_of(client, "dev-2")
        print(f"dev-2: {dev2['status']} after {dev2['beats']} heartbeats")
